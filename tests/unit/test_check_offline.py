"""`dodo-cio check` pieces without a network: SSM and SQS through botocore's Stubber, HTTP faked; the optional
Dodo API key: needed by which strategies, and a warning, not a failure."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.stub import Stubber

from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig
from dodo_cio_cli import check
from dodo_cio_cli.check import RegionAnswer
from dodo_cio_cli.check_dodo_api import check_dodo_api_key, needs_dodo_api_key
from dodo_cio_cli.findings import Finding
from support.g4_http import FakeResponse, FakeSession

PATH = "/dodo-customerio"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-check-0001").decode()
SECRET_2 = "whsec_" + base64.b64encode(b"the-next-secret-after-rotation").decode()
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-dlq"
RETRY_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"


def _parameter(name: str, value: str, kind: str = "SecureString") -> dict[str, Any]:
    return {"Parameter": {"Name": f"{PATH}/{name}", "Type": kind, "Value": value, "Version": 1}}


# -- SSM --------------------------------------------------------------------------------------------


def test_parameters_all_present_and_secure(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    for name, value in (("webhook-secret", SECRET), ("customerio-site-id", "site"), ("customerio-api-key", "key")):
        stub.add_response("get_parameter", _parameter(name, value), {"Name": f"{PATH}/{name}", "WithDecryption": True})
    findings, values = check.check_parameters(client, PATH + "/")
    assert [f.status for f in findings] == ["ok", "ok", "ok"]
    assert values == {"webhook-secret": SECRET, "customerio-site-id": "site", "customerio-api-key": "key"}
    assert all(SECRET not in f.reason and SECRET not in f.hint for f in findings)


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


def test_credentials_accepted_in_the_configured_region() -> None:
    probe = FakeProbe({US: RegionAnswer(200, region="us", url=US)})
    finding = check.check_customerio("us", None, "site", "key", probe=probe)
    assert finding.status == "ok" and "workspace region us" in finding.reason
    assert probe.calls == [US]


def test_workspace_in_the_other_region_says_which_setting_to_change() -> None:
    probe = FakeProbe({"http://proxy": RegionAnswer(200, region="eu", url=EU)})
    finding = check.check_customerio("us", "http://proxy", "site", "key", probe=probe)
    assert finding.status == "FAIL"
    assert finding.reason == "your workspace is in eu; set CustomerioRegion=eu"
    assert "CustomerioRegion=eu" in finding.hint


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
def test_other_answers_fail_with_the_reason(answer: RegionAnswer, needle: str) -> None:
    finding = check.check_customerio("us", None, "s", "k", probe=FakeProbe({US: answer}))
    assert finding.status == "FAIL" and needle in finding.reason


def test_missing_credentials_skip_and_bad_region_fails() -> None:
    assert check.check_customerio("us", None, None, "k").status == "skip"
    bad = check.check_customerio("mars", None, "s", "k")
    assert bad.status == "FAIL" and "'us' or 'eu'" in bad.reason


def test_probe_sends_basic_auth_and_does_not_follow_redirects() -> None:
    session = FakeSession(FakeResponse(200, {"url": EU, "region": "EU", "environment_id": 7}))
    answer = check.probe_region(EU + "/", "site", "key", session=session)  # type: ignore[arg-type]
    assert answer == RegionAnswer(200, region="eu", url=EU)
    url, kwargs = session.calls[0]
    assert url == f"{EU}/api/v1/accounts/region"
    assert kwargs["allow_redirects"] is False
    assert kwargs["headers"]["Authorization"] == "Basic " + base64.b64encode(b"site:key").decode()


def test_probe_reports_redirects_unreadable_answers_and_connection_errors() -> None:
    import requests

    session = FakeSession(
        FakeResponse(301, headers={"Location": EU}), FakeResponse(200, "<html>"), requests.ConnectionError("refused")
    )
    probe: Any = check.probe_region
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
    warned = [*good, Finding("w", "WARN", "a gap", hint="close it")]
    assert check.exit_code(warned) == 0  # a warning is not a failure
    text = check.format_report(warned)
    assert "  WARN  w  a gap" in text and "hint: close it" in text
    assert text.endswith("all checks passed, 1 warning")
    both = [*bad, warned[-1], Finding("v", "WARN", "another")]
    assert check.format_report(both).endswith("1 problem found, 2 warnings, 1 check skipped")
    assert '"ok": true' in check.findings_json(warned)


# -- the optional Dodo API key: needed by which strategies, and a warning, not a failure ---------------

NAME = f"SSM {PATH}/dodo-api-key"


def config(identifier: str, contact_fields: str = "auto") -> MappingConfig:
    return MappingConfig(identifier=IdentifierStrategy.parse(identifier), contact_fields=contact_fields)


def test_which_deployments_need_the_key() -> None:
    by_email = needs_dodo_api_key(config("email"))
    assert by_email is not None and "waits on the retry queue" in by_email and "followed_by_payment" in by_email
    by_app_id = needs_dodo_api_key(config("metadata:app_user_id"))
    assert by_app_id is not None and "metadata key 'app_user_id'" in by_app_id
    by_id = needs_dodo_api_key(config("customer_id"))
    assert by_id is not None and "abandoned checkout" in by_id and "without an email" in by_id
    assert needs_dodo_api_key(config("customer_id", "dodo")) == by_id
    # The app owns the email: under customer_id nothing goes missing without the key.
    assert needs_dodo_api_key(config("customer_id", "app")) is None
    # Under metadata the app owns it by default, but the person must still be found.
    assert needs_dodo_api_key(config("metadata:app_user_id", "app")) is not None


def _not_found(stub: Stubber) -> None:
    stub.add_client_error(
        "get_parameter",
        "ParameterNotFound",
        "not found",
        expected_params={"Name": f"{PATH}/dodo-api-key", "WithDecryption": True},
    )


@pytest.mark.parametrize("identifier", ["customer_id", "email", "metadata:app_user_id"])
def test_a_missing_key_is_a_warning_with_the_command_to_store_it(ssm: tuple[Any, Stubber], identifier: str) -> None:
    client, stub = ssm
    _not_found(stub)
    finding = check_dodo_api_key(client, PATH, identifier)
    assert (finding.name, finding.status) == (NAME, "WARN")
    assert finding.reason.startswith("not stored: under ")
    assert f"aws ssm put-parameter --type SecureString --name {PATH}/dodo-api-key" in finding.hint
    assert "DodoApiMode" in finding.hint
    assert check.exit_code([finding]) == 0  # the bridge works without it


def test_not_needed_when_the_app_owns_the_email_under_customer_id(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    _not_found(stub)
    finding = check_dodo_api_key(client, PATH, "customer_id", "app")
    assert finding.status == "ok" and "not needed" in finding.reason


@pytest.mark.parametrize(
    ("kind", "identifier", "status", "says"),
    [
        ("SecureString", "email", "ok", "looked up in Dodo's API"),
        ("String", "customer_id", "FAIL", "SecureString"),  # plaintext fails like every other parameter
    ],
)
def test_a_stored_key_is_judged_by_its_type_and_never_shown(
    ssm: tuple[Any, Stubber], kind: str, identifier: str, status: str, says: str
) -> None:
    client, stub = ssm
    stub.add_response("get_parameter", _parameter("dodo-api-key", "dodo-k3y", kind))
    finding = check_dodo_api_key(client, PATH, identifier)
    assert finding.status == status and says in finding.reason + finding.hint
    assert "dodo-k3y" not in check.findings_json([finding])
