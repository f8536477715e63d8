"""`make run` end to end: LocalBridge (moto + sandbox + HTTP) driven over real loopback HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

from dodo_cio_cli import cli, sender
from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET
from dodo_cio_local.local_run import LocalBridge, LocalBridgeInfo, LocalRunError, read_template
from support.aws import queue_properties as template_resource

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"
WRONG_SECRET = "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalBridge, LocalBridgeInfo]]:
    # The sandbox is used only when no real credentials are given; make sure none leak in.
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(key, raising=False)
    before = _environ()
    # These tests look at the ingest path; with the retry drain running, a parked delivery could be
    # delivered before a test looks at the queue. The drain has its own tests (test_retry_event_source).
    bridge = LocalBridge(port=0, sandbox_port=0, secret=DEV_WEBHOOK_SECRET, drain=False)
    info = bridge.start()
    try:
        yield bridge, info
    finally:
        bridge.stop()
    assert _environ() == before, "LocalBridge.stop() must restore the environment"
    assert bridge.handler_module is not None
    assert bridge.handler_module._service is None


def test_queues_follow_the_template_then_status_page_routes_and_binary_bodies(local) -> None:
    bridge, info = local
    template = read_template()
    sqs = boto3.client("sqs", region_name="us-east-1")
    attrs = sqs.get_queue_attributes(QueueUrl=info.queue_url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=info.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert attrs["VisibilityTimeout"] == template.retry_queue.attributes["VisibilityTimeout"]
    assert attrs["MessageRetentionPeriod"] == template.retry_queue.attributes["MessageRetentionPeriod"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == template.max_receive_count
    # The quarantine queue as the template has it: 1 MiB messages (a 256 KB body grows when kept), no redrive.
    quarantine = sqs.get_queue_attributes(QueueUrl=info.quarantine_url, AttributeNames=["All"])["Attributes"]
    props = template_resource("QuarantineQueue")
    assert quarantine["MaximumMessageSize"] == str(props["MaximumMessageSize"])
    assert quarantine["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])
    assert "RedrivePolicy" not in quarantine
    page = requests.get(info.status_url, timeout=5).json()
    assert page["webhook_url"] == info.webhook_url
    assert page["sandbox_url"] == info.sandbox_url
    assert page["queues"]["retry_queue"]["visible"] == 0
    assert page["queues"]["dead_letter_queue"]["visible"] == 0
    assert page["aws"]["endpoint"] == info.aws_endpoint and info.aws_endpoint.startswith("http://127.0.0.1:")
    assert page["aws"]["quarantine_queue_url"] == info.quarantine_url
    base = info.webhook_url.rsplit("/webhooks/dodo", 1)[0]
    assert requests.get(base + "/nope", timeout=5).status_code == 404
    wrong_method = requests.get(info.webhook_url, timeout=5)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    # Not UTF-8: travels base64-encoded in the event, verifies, fails JSON parsing, and is kept.
    response = sender.send_webhook(b"\xff\xfe not json", url=info.webhook_url, secret=info.secret)
    assert (response.status_code, response.json()["status"]) == (202, "quarantined")
    assert bridge.sandbox is not None and bridge.sandbox.requests == []
    assert bridge.queue_depths()["quarantine_queue"]["visible"] == 1


def test_customerio_api_pipelines_delivers_to_the_sandbox_v1_from_both_functions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`CUSTOMERIO_API=pipelines make run`: the sandbox's Pipelines key seeded, its /v1 given to both functions.
    `dodo-cio replay --local` needs no Pipelines support of its own: it signs with the run's secret (from its SSM,
    not $DODO_WEBHOOK_SECRET) and the event's `messageId` derives from the original webhook id."""
    from dodo_cio.configuration.settings import Settings
    from dodo_cio.platform.times import to_unix_ms
    from dodo_cio.platform.ulid import deterministic_ulid

    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DODO_WEBHOOK_SECRET", WRONG_SECRET)  # a deployment's secret: replay --local must not use it
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    bridge = LocalBridge(port=0, sandbox_port=0, drain=False)
    info = bridge.start()
    try:
        sandbox = bridge.sandbox
        assert sandbox is not None and info.customerio_api == "pipelines"
        assert info.pipelines_url == sandbox.pipelines_url
        settings = read_template(bridge.template)
        assert settings.retry_environment["CUSTOMERIO_API"] == "track"  # the template's default, overridden
        running = Settings.from_env()  # the one environment both handlers read in this process
        assert (running.customerio_api, running.pipelines_url) == ("pipelines", sandbox.pipelines_url)
        base = info.webhook_url.removesuffix("/webhooks/dodo")
        assert cli.main(["replay", str(PAYMENT), "--local-url", base, "--webhook-id", "msg_replayed"]) == 0
        assert '{"status":"delivered"}' in capsys.readouterr().out
        assert [(r.path.split("/")[1], r.status) for r in sandbox.requests] == [("v1", 200)]
        assert sandbox.accepted_ops() == []
        (event,) = [c for c in sandbox.accepted_calls() if c["type"] == "track"]
        sent_at = to_unix_ms(json.loads(PAYMENT.read_bytes())["timestamp"]) or 0
        assert (event["event"], event["messageId"]) == (
            "payment.succeeded",
            deterministic_ulid("msg_replayed", sent_at),
        )
    finally:
        bridge.stop()


def test_sandbox_rate_limit_makes_a_workspace_at_its_limit_and_sets_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run --sandbox-rate-limit 3`: 429 with Retry-After above 3 a second; the bridge's budget follows."""
    from dodo_cio.configuration.settings import Settings

    monkeypatch.delenv("CUSTOMERIO_RATE_LIMIT_RPS", raising=False)
    bridge = LocalBridge(port=0, sandbox_port=0, secret=DEV_WEBHOOK_SECRET, drain=False, sandbox_rate_limit=3)
    bridge.start()
    try:
        assert bridge.sandbox is not None and bridge.sandbox.rate_limit == 3
        running = Settings.from_env()
        assert (running.rate_limit_rps, running.ingest_max_concurrency) == (3, 1)  # one local container
        assert running.ingest_rate_per_container == 1.5
    finally:
        bridge.stop()


def test_real_credentials_skip_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """With credentials the bridge uses the Track URL it is given (here a stand-in, never the internet)."""
    from dodo_cio_local.sandbox import TrackSandbox

    with TrackSandbox(site_id="real-site", api_key="real-key") as stand_in:
        url = stand_in.base_url
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", url)
        bridge = LocalBridge(port=0, customerio_site_id="real-site", customerio_api_key="real-key")
        info = bridge.start()
        try:
            assert bridge.sandbox is None and info.sandbox_url is None
            assert info.track_url == url
            answer = sender.send_webhook(PAYMENT.read_bytes(), url=info.webhook_url, secret=info.secret)
            assert answer.json() == {"status": "delivered"}
            assert [r.status for r in stand_in.requests] == [200]
        finally:
            bridge.stop()
    assert os.environ["CUSTOMERIO_TRACK_URL"] == url  # the user's setting is left alone


def test_bad_options_are_clear_errors_and_leave_nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    before = _environ()
    with pytest.raises(LocalRunError, match="sandbox-rate-limit"):
        LocalBridge(port=0, sandbox_port=0, sandbox_rate_limit=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bridge = LocalBridge(port=0, sandbox_port=0, aws_port=taken.getsockname()[1], drain=False)
        with pytest.raises(LocalRunError, match="--aws-port"):
            bridge.start()
    assert bridge.info is None and bridge.aws.endpoint is None
    assert _environ() == before
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    bridge = LocalBridge(port=0, sandbox_port=0, customerio_site_id="real-site", customerio_api_key="real-key")
    with pytest.raises(LocalRunError, match="CUSTOMERIO_API"):
        bridge.start()
    assert bridge.info is None


def test_check_local_checks_what_the_run_emulates_and_delivers_to(local, capsys) -> None:
    """`dodo-cio check --local`: the run's SSM secrets, the sandbox's credentials and region, its queues."""
    from dodo_cio_cli import cli

    _, info = local
    base = info.webhook_url.removesuffix("/webhooks/dodo")
    assert cli.main(["check", "--local-url", base]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "checking the local run at" in out and "FAIL" not in out
    local[0].sandbox.script(401)  # the sandbox refuses the credentials: the check says so, exit 1
    assert cli.main(["check", "--local-url", base]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_trace_local_shows_a_customers_records_and_what_waits_for_them(local, capsys) -> None:
    """A webhook through the API Gateway front to the sandbox, then `dodo-cio trace ID --local`: the directory,
    the summary, the duplicate check's answer, the parked message. (Every sample through the same handler:
    test_ingest_handler in process, test_load through a local run.)"""
    bridge, info = local
    base = info.webhook_url.removesuffix("/webhooks/dodo")
    doc = json.loads(PAYMENT.read_bytes())
    customer = doc["data"]["customer"]["customer_id"]
    first = sender.send_webhook(PAYMENT.read_bytes(), url=info.webhook_url, secret=info.secret, webhook_id="msg_tr1")
    assert (first.status_code, first.json()) == (200, {"status": "delivered"})
    assert first.headers["apigw-requestid"]  # through the API Gateway front
    assert info.sandbox_url == bridge.sandbox.base_url and [r.status for r in bridge.sandbox.requests] == [200]
    bridge.sandbox.script(503)
    doc["data"]["payment_id"] = "pay_trace_2"
    parked = sender.send_webhook(
        json.dumps(doc).encode(), url=info.webhook_url, secret=info.secret, webhook_id="msg_tr2"
    )
    assert parked.status_code == 202  # waits on the retry queue (this run does not drain it)

    assert cli.main(["trace", customer, "--local-url", base]) == 0
    out = capsys.readouterr().out
    assert f"customer {customer} is the Customer.io person" in out and "summary" in out
    assert "retry queue" in out and "msg_tr2" in out and "503" in out
    assert cli.main(["trace", "pay_trace_2", "--local-url", base]) == 0  # a payment: its customer, its parked ops
    out = capsys.readouterr().out
    assert f"payment pay_trace_2 belongs to customer {customer}" in out and "msg_tr2" in out
    assert "pay_trace_2: payment.succeeded received as webhook msg_tr2" in out  # its receipt
    assert cli.main(["trace", "msg_tr1", "--local-url", base, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert any("answered 200" in e["what"] for e in found["entries"]), found
    # The functions' own log lines, kept by the run as CloudWatch would keep them.
    logged = [e for e in found["entries"] if e["source"] == "ingest log"]
    assert logged and all("webhook_id=msg_tr1" in e["what"] for e in logged), found
    assert all(e["at"] for e in logged)
    assert cli.main(["trace", "cus_nobody_knows", "--local-url", base]) == 1
    assert "nothing found" in capsys.readouterr().out


def _rehearse(dodo_url: str, payment_id: str, *, withhold: bool) -> dict:
    """A payment.succeeded as Dodo would emit it, through the stand-in (held back with `withhold`)."""
    doc = json.loads(PAYMENT.read_bytes())
    doc["data"] = {**doc["data"], "payment_id": payment_id}
    url = f"{dodo_url}/__dodo/events" + ("?withhold=1" if withhold else "")
    answer = requests.post(url, data=json.dumps(doc).encode(), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_setup_local_then_a_withheld_webhook_is_reconciled_and_fixed(local, capsys) -> None:
    """The issue's rehearsal: setup leaves a working bridge; reconcile finds what Dodo held back; --fix sends it."""
    bridge, info = local
    base = info.webhook_url.removesuffix("/webhooks/dodo")
    dodo = bridge.dodo
    assert dodo is not None and info.dodo_api_url == dodo.base_url
    assert _rehearse(info.dodo_api_url, "pay_before_setup", withhold=False)["deliveries"] == []  # no endpoint yet

    assert cli.main(["setup", "--local-url", base]) == 0
    out = capsys.readouterr().out
    (endpoint,) = dodo.webhooks.values()
    assert endpoint["url"] == info.webhook_url and "payout.created" not in endpoint["filter_types"]
    assert "payment.succeeded" in endpoint["filter_types"] and endpoint["rate_limit"] >= 1
    ssm = boto3.client("ssm", region_name="us-east-1")
    stored = ssm.get_parameter(Name="/dodo-customerio/webhook-secret", WithDecryption=True)["Parameter"]
    assert stored["Value"] == endpoint["secret"] and stored["Type"] == "SecureString"
    assert endpoint["secret"] not in out and "setup is done" in out

    # Dodo signs with the endpoint's secret; the bridge verifies with what setup stored.
    (delivery,) = _rehearse(info.dodo_api_url, "pay_sent", withhold=False)["deliveries"]
    assert delivery["status"] == 200
    _rehearse(info.dodo_api_url, "pay_withheld", withhold=True)
    argv = ["reconcile", "--local-url", base, "--since", "2020-01-01"]  # no --base-url: the run's stand-in
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "MISSING  payment.succeeded      pay_withheld" in out and "pay_sent" not in out
    assert "pay_before_setup" in out  # sent while no endpoint existed: missing too
    assert cli.main([*argv, "--fix"]) == 0
    assert "sent payment.succeeded pay_withheld: HTTP 200" in capsys.readouterr().out
    assert cli.main(argv) == 0 and "nothing missing" in capsys.readouterr().out

    events = [op for op in bridge.sandbox.accepted_ops() if op["action"] == "event"]
    for payment_id in ("pay_sent", "pay_withheld", "pay_before_setup"):
        assert sum(1 for op in events if op["attributes"].get("payment_id") == payment_id) == 1, payment_id

    # Run again: nothing differs, so nothing is written to Dodo.
    patches_before = len(dodo.requests)
    assert cli.main(["setup", "--local-url", base]) == 0
    out = capsys.readouterr().out
    assert out.count("unchanged") >= 4 and "stored" not in out and "created" not in out
    assert not [r for r in dodo.requests[patches_before:] if r.method in ("POST", "PATCH")]
