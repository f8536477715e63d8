"""`dodo-cio check` for a Pipelines deployment, without a network: the probe faked, SSM stubbed.

The sandbox runs of the same check are in tests/integration/test_check.py; here every answer a
host might give (including ones the sandbox never gives, like a proxy that authenticates nobody)
is played through `check_pipelines`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.stub import Stubber

from dodo_cio.delivery.pipelines.client import PIPELINES_HOSTS
from dodo_cio_cli import api_choice, check, check_pipelines
from dodo_cio_cli.check_pipelines import CONTROL_KEY, PipelinesAnswer
from support.g4_http import FakeResponse, FakeSession

US, EU = PIPELINES_HOSTS["us"], PIPELINES_HOSTS["eu"]
KEY = "pipelines-key-for-unit-tests"
PATH = "/dodo-customerio"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-pipelines").decode()


class FakeProbe:
    """Answers by (base URL, whether the key is the made-up control key); records each call."""

    def __init__(self, answers: dict[tuple[str, bool], PipelinesAnswer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, base_url: str, api_key: str, **kwargs: Any) -> PipelinesAnswer:
        self.calls.append((base_url, "control" if api_key == CONTROL_KEY else api_key))
        return self.answers.get((base_url, api_key == CONTROL_KEY), PipelinesAnswer(None, error="unreachable"))


def _checks_with(answers: dict[tuple[str, bool], PipelinesAnswer], **kwargs: Any) -> tuple[Any, FakeProbe]:
    probe = FakeProbe(answers)
    region = kwargs.pop("region", "us")
    url = kwargs.pop("url", None)
    return check_pipelines.check_pipelines(region, url, KEY, probe=probe, **kwargs), probe


@pytest.mark.parametrize("status", [200, 400])
def test_a_key_past_authentication_is_ok_once_a_made_up_key_is_refused(status: int) -> None:
    finding, probe = _checks_with({(US, False): PipelinesAnswer(status), (US, True): PipelinesAnswer(401)})
    assert finding.status == "ok", finding
    assert f"accepted by {US}" in finding.reason and "it carried no data" in finding.reason
    assert ("(400)" in finding.reason) is (status == 400)
    assert probe.calls == [(US, KEY), (US, "control")]
    assert KEY not in finding.reason + finding.hint


@pytest.mark.parametrize("control", [PipelinesAnswer(200), PipelinesAnswer(400), PipelinesAnswer(None, error="gone")])
def test_a_host_that_lets_a_made_up_key_through_proves_nothing(control: PipelinesAnswer) -> None:
    finding, _ = _checks_with({(US, False): PipelinesAnswer(400), (US, True): control}, url=US)
    assert finding.status == "FAIL" and "cannot tell whether the key is right" in finding.reason
    assert "CustomerioPipelinesUrl" in finding.hint


def test_a_rejected_key_says_where_to_find_the_right_one() -> None:
    rejected = {(url, control): PipelinesAnswer(401) for url in (US, EU) for control in (False, True)}
    finding, probe = _checks_with(rejected)
    assert finding.status == "FAIL" and finding.reason == "Customer.io rejected the Pipelines API key (HTTP 401)"
    assert "customerio-pipelines-api-key" in finding.hint and "Data Pipelines" in finding.hint
    assert probe.calls == [(US, KEY), (EU, KEY)]  # the other region asked too: not there either


def test_a_source_in_the_other_region_names_the_setting_to_change() -> None:
    answers = {(US, False): PipelinesAnswer(401), (EU, False): PipelinesAnswer(200), (EU, True): PipelinesAnswer(401)}
    finding, probe = _checks_with(answers)
    assert finding.status == "FAIL"
    assert finding.reason == "your Pipelines source is in eu; set CustomerioRegion=eu"
    assert probe.calls == [(US, KEY), (EU, KEY), (EU, "control")]


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
        (PipelinesAnswer(308, location=f"{EU}/batch"), f"redirects to {EU}/batch", "CustomerioRegion"),
    ],
)
def test_other_answers_fail_with_the_reason(answer: PipelinesAnswer, reason: str, hint: str) -> None:
    finding, probe = _checks_with({(US, False): answer})
    assert finding.status == "FAIL" and reason in finding.reason and hint in finding.hint
    assert probe.calls == [(US, KEY)]  # no control request when the key itself was not past authentication


def test_no_key_skips_and_bad_settings_fail_before_any_request() -> None:
    probe = FakeProbe({})
    assert check_pipelines.check_pipelines("us", None, None, probe=probe).status == "skip"
    region = check_pipelines.check_pipelines("mars", None, KEY, probe=probe)
    assert region.status == "FAIL" and "'us' or 'eu'" in region.reason
    url = check_pipelines.check_pipelines("us", "https://cdp.customer.io/v2", KEY, probe=probe)
    assert url.status == "FAIL" and "ending in /v1" in url.reason
    assert probe.calls == []


# -- the probe itself -------------------------------------------------------------------------------


def test_the_probe_is_an_empty_strict_mode_batch_with_the_key_as_the_user() -> None:
    session = FakeSession(FakeResponse(200))
    answer = check_pipelines.probe_pipelines(US + "/", KEY, session=session)  # type: ignore[arg-type]
    assert answer == PipelinesAnswer(200)
    ((url, kwargs),) = session.calls
    assert url == f"{US}/batch"
    assert json.loads(kwargs["data"]) == {"batch": []}  # no call in it: nothing to create
    headers = kwargs["headers"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert headers["X-Strict-Mode"] == "1"
    assert kwargs["allow_redirects"] is False


def test_the_probe_reports_redirects_bodies_and_transport_failures() -> None:
    import requests

    session = FakeSession(
        FakeResponse(301, headers={"Location": f"{EU}/batch"}),
        FakeResponse(400, '{"meta":{"errors":["batch is empty"]}}\n'),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
    )
    probe: Any = check_pipelines.probe_pipelines
    assert probe(US, KEY, session=session).location == f"{EU}/batch"
    assert probe(US, KEY, session=session) == PipelinesAnswer(400, error='{"meta":{"errors":["batch is empty"]}}')
    assert "cannot reach" in probe(US, KEY, session=session).error
    assert "no answer" in probe(US, KEY, session=session, timeout=2).error


# -- the whole run, and where the API comes from ----------------------------------------------------


def _parameter(name: str, value: str) -> dict[str, Any]:
    return {"Parameter": {"Name": f"{PATH}/{name}", "Type": "SecureString", "Value": value, "Version": 1}}


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
    assert [url for url, _ in session.calls] == [f"{EU}/batch", f"{EU}/batch"]
    assert KEY not in check.findings_json(findings)


def test_choose_api_takes_the_flag_then_the_stack_then_the_environment() -> None:
    stack = {"CustomerioApi": "pipelines"}
    assert api_choice.choose_api("track", stack, stack=True, env={}) == "track"
    assert api_choice.choose_api(None, stack, stack=True, env={"CUSTOMERIO_API": "track"}) == "pipelines"
    # A stack deployed before the parameter existed delivers with Track, whatever the shell says.
    assert api_choice.choose_api(None, {}, stack=True, env={"CUSTOMERIO_API": "pipelines"}) == "track"
    assert api_choice.choose_api(None, {}, stack=False, env={"CUSTOMERIO_API": " Pipelines "}) == "pipelines"
    assert api_choice.choose_api(None, {}, stack=False, env={}) == "track"
    with pytest.raises(ValueError, match=r"\$CUSTOMERIO_API must be track or pipelines, not 'cdp'"):
        api_choice.choose_api(None, {}, stack=False, env={"CUSTOMERIO_API": "cdp"})
    with pytest.raises(ValueError, match="the stack's CustomerioApi"):
        api_choice.choose_api(None, {"CustomerioApi": "v2"}, stack=True)
