"""`dodo-cio check` pieces without a network: SSM and SQS through botocore's Stubber, HTTP faked; the optional
Dodo API key: needed by which strategies, and a warning, not a failure; a Pipelines deployment's key, its
probe faked. The sandbox runs of the same checks are in tests/integration/test_check.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from botocore.stub import Stubber

from dodo_cio.delivery.pipelines.client import PIPELINES_HOSTS
from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig
from dodo_cio_cli import api_choice, check, check_pipelines
from dodo_cio_cli.check import RegionAnswer
from dodo_cio_cli.check_dodo_api import check_dodo_api_key, needs_dodo_api_key
from dodo_cio_cli.check_pipelines import CONTROL_KEY, PipelinesAnswer
from dodo_cio_cli.findings import Finding
from support.fake_http import FakeResponse, FakeSession

PATH = "/dodo-customerio"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-check-0001").decode()
SECRET_2 = "whsec_" + base64.b64encode(b"the-next-secret-after-rotation").decode()
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-dlq"
RETRY_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"


def _parameter(name: str, value: str, kind: str = "SecureString") -> dict[str, Any]:
    return {"Parameter": {"Name": f"{PATH}/{name}", "Type": kind, "Value": value, "Version": 1}}


# -- SSM --------------------------------------------------------------------------------------------


def test_parameters_missing_plaintext_empty_and_undecryptable_are_each_reported(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    stub.add_client_error("get_parameter", "ParameterNotFound", "not found")
    stub.add_response("get_parameter", _parameter("customerio-site-id", "site", kind="String"))
    stub.add_client_error("get_parameter", "AccessDeniedException", "not authorized to perform kms:Decrypt")
    findings, values = check.check_parameters(client, PATH)
    missing, plaintext, denied = findings
    assert (missing.status, missing.reason) == ("FAIL", "not found")
    assert "aws ssm put-parameter --type SecureString --name /dodo-customerio/webhook-secret" in missing.hint
    assert plaintext.status == "FAIL" and "String" in plaintext.reason and "SecureString" in plaintext.hint
    assert denied.status == "FAIL" and denied.access_error and "kms:Decrypt" in denied.hint
    assert values == {"customerio-site-id": "site"}  # a plaintext value still works for the later checks
    assert check.exit_code(findings) == 2  # could not look: not the deployment's fault necessarily


def test_empty_parameter_fails(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    stub.add_response("get_parameter", _parameter("webhook-secret", "  "))
    stub.add_response("get_parameter", _parameter("customerio-site-id", "site"))
    stub.add_response("get_parameter", _parameter("customerio-api-key", "key"))
    findings, values = check.check_parameters(client, PATH)
    assert findings[0].status == "FAIL" and findings[0].reason == "is empty"
    assert "webhook-secret" not in values


def test_no_aws_credentials_at_all_is_an_operator_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import NoCredentialsError

    from dodo_cio_cli.aws_calls import OperatorError

    class NoCredentials:
        def get_parameter(self, **kwargs: Any) -> Any:
            raise NoCredentialsError()

    with pytest.raises(OperatorError, match="Unable to locate credentials"):
        check.check_parameters(NoCredentials(), PATH)  # type: ignore[arg-type]


# -- webhook secret ---------------------------------------------------------------------------------


def test_webhook_secret_counts_without_showing_it() -> None:
    one = check.check_webhook_secret(SECRET)
    assert (one.status, one.reason, one.hint) == ("ok", "1 secret, well-formed", "")
    two = check.check_webhook_secret(f"{SECRET} {SECRET_2}")
    assert two.status == "ok" and two.reason.startswith("2 secrets") and "rotation" in two.hint
    bare = check.check_webhook_secret(SECRET.removeprefix("whsec_"))
    assert bare.status == "ok" and "without the whsec_ prefix" in bare.reason


def test_malformed_webhook_secret_fails_naming_the_position_only() -> None:
    finding = check.check_webhook_secret(f"{SECRET} whsec_not*base64!")
    assert finding.status == "FAIL"
    assert "#2" in finding.reason and "not*base64" not in finding.reason
    assert "whsec_" in finding.hint
    assert check.check_webhook_secret(None).status == "skip"


# -- Customer.io ------------------------------------------------------------------------------------


class FakeProbe:
    """Answers by base URL; records the calls."""

    def __init__(self, answers: dict[str, RegionAnswer]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, base_url: str, site_id: str, api_key: str, **kwargs: Any) -> RegionAnswer:
        self.calls.append(base_url)
        return self.answers.get(base_url, RegionAnswer(None, error="unreachable"))


US, EU = "https://track.customer.io", "https://track-eu.customer.io"


def test_rejected_by_the_configured_host_but_accepted_by_the_other_region() -> None:
    probe = FakeProbe({EU: RegionAnswer(401, error="Unauthorized"), US: RegionAnswer(200, region="us", url=US)})
    finding = check.check_customerio("eu", None, "site", "key", probe=probe)
    assert finding.reason == "your workspace is in us; set CustomerioRegion=us"
    assert probe.calls == [EU, US]


def test_redirect_to_the_eu_host_is_a_region_mismatch() -> None:
    probe = FakeProbe({US: RegionAnswer(301, location=f"{EU}/api/v1/accounts/region")})
    finding = check.check_customerio("us", None, "site", "key", probe=probe)
    assert finding.reason == "your workspace is in eu; set CustomerioRegion=eu"


def test_bad_credentials() -> None:
    probe = FakeProbe({US: RegionAnswer(401), EU: RegionAnswer(401)})
    finding = check.check_customerio("us", None, "site", "key", probe=probe)
    assert (finding.status, finding.reason) == ("FAIL", "Customer.io rejected the site id / API key (HTTP 401)")
    assert "customerio-api-key" in finding.hint
    with_override = FakeProbe({"http://sandbox": RegionAnswer(401)})
    assert check.check_customerio("us", "http://sandbox", "s", "k", probe=with_override).status == "FAIL"
    assert with_override.calls == ["http://sandbox"]  # an override has no "other region" to ask


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (RegionAnswer(None, error="cannot reach https://track.customer.io/x: ConnectionError"), "cannot reach"),
        (RegionAnswer(503, error="busy"), "answered HTTP 503: busy"),
        (RegionAnswer(200), "without a region"),
    ],
)
def test_other_track_answers_fail_with_the_reason(answer: RegionAnswer, needle: str) -> None:
    finding = check.check_customerio("us", None, "s", "k", probe=FakeProbe({US: answer}))
    assert finding.status == "FAIL" and needle in finding.reason


def test_missing_credentials_skip_and_bad_region_fails() -> None:
    assert check.check_customerio("us", None, None, "k").status == "skip"
    bad = check.check_customerio("mars", None, "s", "k")
    assert bad.status == "FAIL" and "'us' or 'eu'" in bad.reason


def test_probe_sends_basic_auth_does_not_follow_redirects_and_reports_bad_answers() -> None:
    session = FakeSession(
        FakeResponse(200, {"url": EU, "region": "EU", "environment_id": 7}),
        FakeResponse(301, headers={"Location": EU}),
        FakeResponse(200, "<html>"),
        requests.ConnectionError("refused"),
    )
    probe: Any = check.probe_region
    assert probe(EU + "/", "site", "key", session=session) == RegionAnswer(200, region="eu", url=EU)
    url, kwargs = session.calls[0]
    assert url == f"{EU}/api/v1/accounts/region"
    assert kwargs["allow_redirects"] is False
    assert kwargs["headers"]["Authorization"] == "Basic " + base64.b64encode(b"site:key").decode()
    assert probe(US, "s", "k", session=session).location == EU
    assert probe(US, "s", "k", session=session).error == "the answer is not JSON"
    answer = probe(US, "s", "k", session=session)
    assert answer.status is None and "cannot reach" in answer.error


# -- queues -----------------------------------------------------------------------------------------


def _depth(visible: int, in_flight: int = 0) -> dict[str, Any]:
    return {
        "Attributes": {
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            "ApproximateNumberOfMessagesDelayed": "0",
        }
    }


def test_queues_exist_and_dlq_depth(sqs: tuple[Any, Stubber]) -> None:
    client, stub = sqs
    stub.add_response("get_queue_attributes", _depth(2, 1))
    stub.add_response("get_queue_attributes", _depth(3))
    findings = check.check_queues(client, {"RetryQueueUrl": RETRY_URL, "DeadLetterQueueUrl": DLQ_URL}, stack="bridge")
    retry, dlq = findings
    assert retry.status == "ok" and "3 waiting" in retry.reason
    assert dlq.status == "FAIL" and dlq.reason == "3 undelivered deliveries waiting"
    assert "dodo-cio dlq --stack bridge" in dlq.hint and "dodo-cio redrive --stack bridge" in dlq.hint


def test_missing_queue_and_missing_output(sqs: tuple[Any, Stubber]) -> None:
    client, stub = sqs
    stub.add_client_error("get_queue_attributes", "AWS.SimpleQueueService.NonExistentQueue", "gone")
    findings = check.check_queues(client, {"RetryQueueUrl": RETRY_URL})
    assert findings[0].status == "FAIL" and "does not exist" in findings[0].reason
    assert findings[1].status == "FAIL" and "DeadLetterQueueUrl" in findings[1].reason
    assert check.exit_code(findings) == 1


# -- report -----------------------------------------------------------------------------------------


def test_report_and_exit_codes() -> None:
    good = [Finding("a", "ok", "fine"), Finding("b", "ok", "fine too", hint="a note")]
    assert check.exit_code(good) == 0
    text = check.format_report(good, header="checking")
    assert text.splitlines()[0] == "checking" and text.endswith("all checks passed")
    assert "note: a note" in text
    bad = [*good, Finding("c", "FAIL", "broken", hint="fix it"), Finding("d", "skip", "needs c")]
    assert check.exit_code(bad) == 1
    text = check.format_report(bad)
    assert "  FAIL  c  broken" in text and "hint: fix it" in text
    assert text.endswith("1 problem found, 1 check skipped")
    assert '"ok": false' in check.findings_json(bad)
    # A warning does not fail the run (exit 0, "ok": true): tests/integration/test_check.py's runs.
    warned = [*good, Finding("w", "WARN", "a gap", hint="close it")]
    text = check.format_report(warned)
    assert "  WARN  w  a gap" in text and "hint: close it" in text
    both = [*bad, warned[-1], Finding("v", "WARN", "another")]
    assert check.format_report(both).endswith("1 problem found, 2 warnings, 1 check skipped")


# -- the optional Dodo API key: needed by which strategies, and a warning, not a failure ---------------

NAME = f"SSM {PATH}/dodo-api-key"


def config(identifier: str, contact_fields: str = "auto") -> MappingConfig:
    return MappingConfig(identifier=IdentifierStrategy.parse(identifier), contact_fields=contact_fields)


def test_which_deployments_need_the_key() -> None:
    """Metadata's reason, and customer_id with the app owning the email: tests/integration/test_check.py."""
    by_email = needs_dodo_api_key(config("email"))
    assert by_email is not None and "waits on the retry queue" in by_email and "followed_by_payment" in by_email
    by_id = needs_dodo_api_key(config("customer_id"))
    assert by_id is not None and "abandoned checkout" in by_id and "without an email" in by_id
    assert needs_dodo_api_key(config("customer_id", "dodo")) == by_id
    # Under metadata the app owns it by default, but the person must still be found.
    assert needs_dodo_api_key(config("metadata:app_user_id", "app")) is not None


@pytest.mark.parametrize("identifier", ["customer_id", "email", "metadata:app_user_id"])
def test_a_missing_key_is_a_warning_with_the_command_to_store_it(ssm: tuple[Any, Stubber], identifier: str) -> None:
    client, stub = ssm
    params = {"Name": f"{PATH}/dodo-api-key", "WithDecryption": True}
    stub.add_client_error("get_parameter", "ParameterNotFound", "not found", expected_params=params)
    finding = check_dodo_api_key(client, PATH, identifier)
    assert (finding.name, finding.status) == (NAME, "WARN")
    assert finding.reason.startswith("not stored: under ")
    assert f"aws ssm put-parameter --type SecureString --name {PATH}/dodo-api-key" in finding.hint
    assert "DodoApiMode" in finding.hint
    assert check.exit_code([finding]) == 0  # the bridge works without it


def test_a_plaintext_dodo_key_fails_like_every_other_parameter_and_is_never_shown(ssm: tuple[Any, Stubber]) -> None:
    """A SecureString one is ok: tests/integration/test_check.py's stack test."""
    client, stub = ssm
    stub.add_response("get_parameter", _parameter("dodo-api-key", "dodo-k3y", "String"))
    finding = check_dodo_api_key(client, PATH, "customer_id")
    assert finding.status == "FAIL" and "SecureString" in finding.reason + finding.hint
    assert "dodo-k3y" not in check.findings_json([finding])


# -- a Pipelines deployment: every answer a host might give, including ones the sandbox never gives ----

CDP_US, CDP_EU = PIPELINES_HOSTS["us"], PIPELINES_HOSTS["eu"]
KEY = "pipelines-key-for-unit-tests"


class PipelinesProbe:
    """Answers by (base URL, whether the key is the made-up control key); records each call."""

    def __init__(self, answers: dict[tuple[str, bool], PipelinesAnswer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, base_url: str, api_key: str, **kwargs: Any) -> PipelinesAnswer:
        self.calls.append((base_url, "control" if api_key == CONTROL_KEY else api_key))
        return self.answers.get((base_url, api_key == CONTROL_KEY), PipelinesAnswer(None, error="unreachable"))


def _checks_with(answers: dict[tuple[str, bool], PipelinesAnswer], **kwargs: Any) -> tuple[Any, PipelinesProbe]:
    probe = PipelinesProbe(answers)
    region = kwargs.pop("region", "us")
    url = kwargs.pop("url", None)
    return check_pipelines.check_pipelines(region, url, KEY, probe=probe, **kwargs), probe


@pytest.mark.parametrize("status", [200, 400])
def test_a_key_past_authentication_is_ok_once_a_made_up_key_is_refused(status: int) -> None:
    finding, probe = _checks_with({(CDP_US, False): PipelinesAnswer(status), (CDP_US, True): PipelinesAnswer(401)})
    assert finding.status == "ok", finding
    assert f"accepted by {CDP_US}" in finding.reason and "it carried no data" in finding.reason
    assert ("(400)" in finding.reason) is (status == 400)
    assert probe.calls == [(CDP_US, KEY), (CDP_US, "control")]
    assert KEY not in finding.reason + finding.hint


@pytest.mark.parametrize("control", [PipelinesAnswer(200), PipelinesAnswer(400), PipelinesAnswer(None, error="gone")])
def test_a_host_that_lets_a_made_up_key_through_proves_nothing(control: PipelinesAnswer) -> None:
    finding, _ = _checks_with({(CDP_US, False): PipelinesAnswer(400), (CDP_US, True): control}, url=CDP_US)
    assert finding.status == "FAIL" and "cannot tell whether the key is right" in finding.reason
    assert "CustomerioPipelinesUrl" in finding.hint


def test_a_rejected_key_says_where_to_find_the_right_one() -> None:
    rejected = {(url, control): PipelinesAnswer(401) for url in (CDP_US, CDP_EU) for control in (False, True)}
    finding, probe = _checks_with(rejected)
    assert finding.status == "FAIL" and finding.reason == "Customer.io rejected the Pipelines API key (HTTP 401)"
    assert "customerio-pipelines-api-key" in finding.hint and "Data Pipelines" in finding.hint
    assert probe.calls == [(CDP_US, KEY), (CDP_EU, KEY)]  # the other region asked too: not there either


def test_a_source_in_the_other_region_names_the_setting_to_change() -> None:
    answers = {
        (CDP_US, False): PipelinesAnswer(401),
        (CDP_EU, False): PipelinesAnswer(200),
        (CDP_EU, True): PipelinesAnswer(401),
    }
    finding, probe = _checks_with(answers)
    assert finding.status == "FAIL"
    assert finding.reason == "your Pipelines source is in eu; set CustomerioRegion=eu"
    assert probe.calls == [(CDP_US, KEY), (CDP_EU, KEY), (CDP_EU, "control")]


def test_an_override_has_no_other_region_to_ask() -> None:
    proxy = "http://proxy.internal/v1"
    finding, probe = _checks_with({(proxy, False): PipelinesAnswer(403)}, url=proxy)
    assert finding.status == "FAIL" and "HTTP 403" in finding.reason
    assert probe.calls == [(proxy, KEY)]


@pytest.mark.parametrize(
    ("answer", "reason", "hint"),
    [
        (PipelinesAnswer(None, error="cannot reach x: ConnectionError"), "cannot reach x", "network"),
        (PipelinesAnswer(503, error="busy"), "answered HTTP 503: busy", "try again"),
        (PipelinesAnswer(429), "answered HTTP 429", "try again"),
        (PipelinesAnswer(404, error="no route"), "/batch answered HTTP 404: no route", "CustomerioPipelinesUrl"),
        (PipelinesAnswer(308, location=f"{CDP_EU}/batch"), f"redirects to {CDP_EU}/batch", "CustomerioRegion"),
    ],
)
def test_other_pipelines_answers_fail_with_the_reason(answer: PipelinesAnswer, reason: str, hint: str) -> None:
    finding, probe = _checks_with({(CDP_US, False): answer})
    assert finding.status == "FAIL" and reason in finding.reason and hint in finding.hint
    assert probe.calls == [(CDP_US, KEY)]  # no control request when the key itself was not past authentication


def test_no_key_skips_and_bad_settings_fail_before_any_request() -> None:
    probe = PipelinesProbe({})
    assert check_pipelines.check_pipelines("us", None, None, probe=probe).status == "skip"
    region = check_pipelines.check_pipelines("mars", None, KEY, probe=probe)
    assert region.status == "FAIL" and "'us' or 'eu'" in region.reason
    url = check_pipelines.check_pipelines("us", "https://cdp.customer.io/v2", KEY, probe=probe)
    assert url.status == "FAIL" and "ending in /v1" in url.reason
    assert probe.calls == []


# -- the probe itself -------------------------------------------------------------------------------


def test_the_probe_is_an_empty_strict_mode_batch_and_reports_redirects_bodies_and_transport_failures() -> None:
    session = FakeSession(
        FakeResponse(200),
        FakeResponse(301, headers={"Location": f"{CDP_EU}/batch"}),
        FakeResponse(400, '{"meta":{"errors":["batch is empty"]}}\n'),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
    )
    probe: Any = check_pipelines.probe_pipelines
    assert probe(CDP_US + "/", KEY, session=session) == PipelinesAnswer(200)
    url, kwargs = session.calls[0]
    assert url == f"{CDP_US}/batch"
    assert json.loads(kwargs["data"]) == {"batch": []}  # no call in it: nothing to create
    headers = kwargs["headers"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert headers["X-Strict-Mode"] == "1"
    assert kwargs["allow_redirects"] is False
    assert probe(CDP_US, KEY, session=session).location == f"{CDP_EU}/batch"
    assert probe(CDP_US, KEY, session=session) == PipelinesAnswer(400, error='{"meta":{"errors":["batch is empty"]}}')
    assert "cannot reach" in probe(CDP_US, KEY, session=session).error
    assert "no answer" in probe(CDP_US, KEY, session=session, timeout=2).error


# -- the whole run, and where the API comes from ----------------------------------------------------


def test_a_pipelines_run_reads_and_verifies_the_pipelines_key_only(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    for name, value in (("webhook-secret", SECRET), ("customerio-pipelines-api-key", KEY)):
        stub.add_response("get_parameter", _parameter(name, value), {"Name": f"{PATH}/{name}", "WithDecryption": True})
    stub.add_client_error("get_parameter", "ParameterNotFound", "not found")  # the optional dodo-api-key
    session = FakeSession(FakeResponse(200), FakeResponse(401))  # the key, then the made-up key
    findings = check.run_checks(
        ssm=client,
        ssm_path=PATH,
        region="eu",
        track_url=None,
        api="pipelines",
        session=session,  # type: ignore[arg-type]
    )
    assert [(f.name, f.status) for f in findings] == [
        (f"SSM {PATH}/webhook-secret", "ok"),
        (f"SSM {PATH}/customerio-pipelines-api-key", "ok"),
        ("webhook secret", "ok"),
        ("Customer.io Pipelines key", "ok"),
        (f"SSM {PATH}/dodo-api-key", "WARN"),  # customer_id: abandoned checkouts of new customers (check_dodo_api)
    ]  # and the stub would have refused a read of the Track site id or key
    assert [url for url, _ in session.calls] == [f"{CDP_EU}/batch", f"{CDP_EU}/batch"]
    assert KEY not in check.findings_json(findings)


def test_choose_api_normalises_the_environment_and_names_a_bad_stack_value() -> None:
    """The order (flag, stack, environment, track): test_check.py's and test_backfill.py's stack runs."""
    assert api_choice.choose_api(None, {}, stack=False, env={"CUSTOMERIO_API": " Pipelines "}) == "pipelines"
    with pytest.raises(ValueError, match="the stack's CustomerioApi"):
        api_choice.choose_api(None, {"CustomerioApi": "v2"}, stack=True)
