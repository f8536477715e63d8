"""`dodo-cio backfill` end to end: the official SDK against a local fake of Dodo's list endpoints,
Customer.io as the local sandbox, which validates every op like the Track API and, for a Pipelines
deployment, every call against Customer.io's published Pipelines spec, auth and strict mode."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dodo_cio.delivery.pipelines.render import iso_time
from dodo_cio.platform.times import to_unix_ms
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio_cli import cli
from dodo_cio_local.dodo_standin import DodoStandIn
from dodo_cio_local.sandbox import ScriptedResponse, TrackSandbox
from support.aws import fake_credentials
from support.fake_stack import FakeStack

pytestmark = pytest.mark.network

SITE_ID = "backfill-site"
API_KEY = "backfill-key-1a2b"
N_CUSTOMERS = 250
STATUSES = {"active": 120, "on_hold": 5, "past_due": 3, "cancelled": 7, "expired": 2}
LIVE = ("active", "on_hold", "past_due")
# What the credentials check gets when requests are scripted (scripts answer in order, whatever the path).
REGION_OK = ScriptedResponse(200, body={"url": "http://sandbox", "region": "us", "environment_id": 1})
# The same for a Pipelines key: its empty batch accepted, then the made-up key's refused.
PIPELINES_KEY_OK = (ScriptedResponse(200), ScriptedResponse(401))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TrackSandbox]:
    logging.getLogger("dodo_cio_local.sandbox").setLevel(logging.WARNING)
    with TrackSandbox(site_id=SITE_ID, api_key=API_KEY) as box:
        yield box


@pytest.fixture
def cio(sandbox: TrackSandbox) -> TrackSandbox:
    sandbox.reset()
    return sandbox


@pytest.fixture
def dodo() -> Iterator[DodoStandIn]:
    with DodoStandIn.populated(N_CUSTOMERS, STATUSES) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dodo: DodoStandIn) -> Path:
    monkeypatch.chdir(tmp_path)  # the state file lands here; no customize.py here: the default mapping
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", dodo.api_key)
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", SITE_ID)
    monkeypatch.setenv("CUSTOMERIO_API_KEY", API_KEY)
    for name in (
        "CUSTOMERIO_API",
        "CUSTOMERIO_REGION",
        "CUSTOMERIO_TRACK_URL",
        "CUSTOMERIO_PIPELINES_URL",
        "CUSTOMERIO_PIPELINES_API_KEY",
        "CUSTOMERIO_IDENTIFIER",
        "CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID",
        "CUSTOMERIO_PROFILE_METADATA",
        "CUSTOMERIO_CONTACT_FIELDS",
        "DODO_PAYMENTS_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / ".backfill-state.json"


@pytest.fixture
def pipelines_env(env: Path, sandbox: TrackSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As `env` for a Pipelines deployment: its key in the environment, and no Track credentials at all."""
    monkeypatch.setenv("CUSTOMERIO_PIPELINES_API_KEY", sandbox.pipelines_key)
    monkeypatch.delenv("CUSTOMERIO_SITE_ID")
    monkeypatch.delenv("CUSTOMERIO_API_KEY")
    return env


def _backfill(dodo: DodoStandIn, cio: TrackSandbox, *argv: str, api: str = "track") -> int:
    to = ["--track-url", cio.base_url] if api == "track" else ["--api", api, "--pipelines-url", cio.pipelines_url]
    return cli.main(
        [
            "backfill",
            "--base-url",
            dodo.base_url,
            *to,
            "--statuses",
            ",".join(LIVE),
            "--rate",
            "1000",
            "--dodo-retries",
            "0",
            "--no-progress",
            *argv,
        ]
    )


def _posts(cio: TrackSandbox) -> list[Any]:
    return [r for r in cio.requests if r.method == "POST"]


def _identified(cio: TrackSandbox) -> list[dict[str, Any]]:
    return [op for op in cio.accepted_ops() if op["action"] == "identify"]


def test_customers_and_live_subscriptions_arrive_as_identify_ops(
    dodo: DodoStandIn, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backfill(dodo, cio) == 0
    out = capsys.readouterr().out
    posts = _posts(cio)  # the sandbox answers 404 off the Track paths, 413 past Customer.io's size limits
    assert posts and all(r.status == 200 for r in posts), [r.response for r in posts if r.status != 200]

    ops = cio.accepted_ops()
    assert {op["action"] for op in ops} == {"identify"}  # identify only by default
    customer_ops = [op for op in ops if "subscription_id" not in op["attributes"]]
    assert sorted(op["identifiers"]["id"] for op in customer_ops) == [f"cus_{n:05d}" for n in range(N_CUSTOMERS)]
    subscription_ops = [op for op in ops if "subscription_id" in op["attributes"]]
    expected = sorted(s["subscription_id"] for s in dodo.subscriptions if s["status"] in LIVE)
    assert sorted(op["attributes"]["subscription_id"] for op in subscription_ops) == expected
    assert {op["attributes"]["subscription_status"] for op in subscription_ops} == set(LIVE)
    assert all(isinstance(op["timestamp"], int) for op in ops)

    # Dodo was read page by page from 0 with the SDK: 3 pages of customers, then the empty page.
    assert dodo.pages_read("/customers") == [0, 1, 2, 3]
    assert dodo.pages_read("/subscriptions", "active") == [0, 1, 2]
    assert not dodo.pages_read("/subscriptions", "cancelled")
    assert "customers: 250 customers read, 250 sent (done)" in out

    state = json.loads(env.read_text())
    assert state["completed_at"] and state["listings"]["customers"]["delivered"] == N_CUSTOMERS

    # Running it again does nothing: the checkpoint says it is complete.
    cio.reset()
    assert _backfill(dodo, cio) == 0
    assert "already complete" in capsys.readouterr().out and not _posts(cio)


def test_dodo_failure_after_page_2_then_resume_sends_only_the_rest(
    dodo: DodoStandIn, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dodo.fail("/customers", 2, 500)
    assert _backfill(dodo, cio, "--page-size", "50") == 1
    err = capsys.readouterr().err
    assert "HTTP 500 reading customers page 2" in err
    assert "customers from page 2" in err and "run the same command again to resume" in err
    first = [op["identifiers"]["id"] for op in _identified(cio)]
    assert sorted(first) == [f"cus_{n:05d}" for n in range(100)]
    assert json.loads(env.read_text())["listings"]["customers"]["next_page"] == 2

    cio.reset()
    reads_before = len(dodo.requests)
    assert _backfill(dodo, cio, "--page-size", "50") == 0
    assert "resuming from" in capsys.readouterr().out
    resumed_reads = [int(r.query["page_number"]) for r in dodo.requests[reads_before:] if r.path == "/customers"]
    assert resumed_reads == [2, 3, 4, 5]
    second = [op["identifiers"]["id"] for op in _identified(cio) if "subscription_id" not in op["attributes"]]
    assert sorted(second) == [f"cus_{n:05d}" for n in range(100, N_CUSTOMERS)]  # nothing sent twice


def test_207_rejections_are_reported_and_the_rest_delivered(
    dodo: DodoStandIn, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejection = {"errors": [{"batch_index": 3, "reason": "invalid", "field": "attributes.email", "message": "bad"}]}
    cio.script(REGION_OK, ScriptedResponse(207, body=rejection))  # the credentials check, then page 0
    assert _backfill(dodo, cio, "--statuses", "on_hold") == 1
    captured = capsys.readouterr()
    assert "250 customers read, 249 sent, 1 failed" in captured.out
    assert "cus_00003: HTTP 207: attributes.email; invalid; bad" in captured.out
    assert "some objects were rejected" in captured.err
    failures = json.loads(env.read_text())["listings"]["customers"]["failures"]
    assert failures == [{"id": "cus_00003", "reason": "HTTP 207: attributes.email; invalid; bad"}]


@pytest.mark.parametrize(
    ("api", "variable", "value", "messages", "dodo_read"),
    [
        pytest.param(
            "track",
            "CUSTOMERIO_API_KEY",
            "revoked-key",
            ["Customer.io check failed: Customer.io rejected the site id / API key (HTTP 401)"],
            False,  # the credentials check comes first: nothing was read
            id="customerio",
        ),
        pytest.param(
            "pipelines",
            "CUSTOMERIO_PIPELINES_API_KEY",
            "a-revoked-key",
            ["Customer.io check failed: Customer.io rejected the Pipelines API key (HTTP 401)"],
            False,
            id="customerio-pipelines",
        ),
        pytest.param(
            "track",
            "DODO_PAYMENTS_API_KEY",
            "sk_test_wrong",
            ["Dodo Payments rejected the API key (HTTP 401) reading customers page 0", "--environment test_mode"],
            True,
            id="dodo",
        ),
    ],
)
def test_a_rejected_key_stops_the_backfill_before_sending(
    api: str,
    variable: str,
    value: str,
    messages: list[str],
    dodo_read: bool,
    dodo: DodoStandIn,
    cio: TrackSandbox,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert _backfill(dodo, cio, api=api) == 2
    err = capsys.readouterr().err
    for message in messages:
        assert message in err
    assert value not in err
    assert bool(dodo.requests) is dodo_read
    assert not (cio.accepted_calls() if api == "pipelines" else _posts(cio))  # Pipelines' probe is a POST


def test_eu_workspace_with_a_us_setting_is_refused(
    dodo: DodoStandIn, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TrackSandbox(site_id=SITE_ID, api_key=API_KEY, region="eu") as eu:
        assert _backfill(dodo, eu, "--region-cio", "us") == 2
        assert "your workspace is in eu; set CustomerioRegion=eu" in capsys.readouterr().err
        assert not [r for r in eu.requests if r.method == "POST"]


@pytest.mark.usefixtures("env")  # the state file and environment, not read here
@pytest.mark.parametrize("api", ["track", "pipelines"])
def test_keys_from_ssm_with_a_stack(
    api: str,
    dodo: DodoStandIn,
    cio: TrackSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stack names the API, its URL and the identifier; SSM holds that API's credentials only."""
    for name in ("DODO_PAYMENTS_API_KEY", "CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines" if api == "track" else "track")  # the shell's: not used
    fake_credentials(monkeypatch)
    parameters = {"SsmParameterPath": "/shop", "CustomerioRegion": "us", "CustomerioIdentifier": "email"}
    if api == "track":
        parameters |= {"CustomerioTrackUrl": cio.base_url}  # a stack deployed before CustomerioApi existed
        secrets = {"customerio-site-id": SITE_ID, "customerio-api-key": API_KEY}
    else:
        parameters |= {"CustomerioApi": "pipelines", "CustomerioPipelinesUrl": cio.pipelines_url}
        secrets = {"customerio-pipelines-api-key": cio.pipelines_key}

    with mock_aws():
        ssm = boto3.client("ssm")
        for name, value in {"dodo-api-key": dodo.api_key, **secrets}.items():
            ssm.put_parameter(Name=f"/shop/{name}", Value=value, Type="SecureString")
        stack = FakeStack(parameters)
        monkeypatch.setattr(cli, "_aws", lambda service, region: stack if service == "cloudformation" else ssm)
        code = cli.main(
            ["backfill", "--stack", "bridge", "--base-url", dodo.base_url, "--statuses", "on_hold", "--rate", "1000"]
        )
    assert code == 0, capsys.readouterr().err
    assert "identifier email" in capsys.readouterr().out  # the bridge's strategy, from the stack
    if api == "track":
        customers = [op["identifiers"] for op in _identified(cio) if "subscription_id" not in op["attributes"]]
        assert not cio.accepted_calls()
    else:
        customers = [c["userId"] for c in _calls(cio, "identify") if "subscription_id" not in c["traits"]]
        assert not cio.accepted_ops()
    assert len(customers) == N_CUSTOMERS and all("@" in str(who) for who in customers)


def test_a_wrong_base_url_is_a_usage_error(
    dodo: DodoStandIn, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["backfill", "--base-url", dodo.base_url + "/v9", "--track-url", cio.base_url, "--dodo-retries", "0"]
    )
    assert code == 2
    assert "answered HTTP 404 reading customers page 0" in capsys.readouterr().err


# -- into a Pipelines deployment (--api pipelines, or the stack's CustomerioApi) ---------------------


def _calls(cio: TrackSandbox, kind: str) -> list[dict[str, Any]]:
    return [c for c in cio.accepted_calls() if c["type"] == kind]


def test_pipelines_dry_run_then_customers_and_subscriptions_arrive_as_strict_mode_identify_calls(
    dodo: DodoStandIn, cio: TrackSandbox, pipelines_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backfill(dodo, cio, "--dry-run", "--identifier", "email", "--sample", "1", api="pipelines") == 0
    out = capsys.readouterr().out
    assert not cio.requests and not pipelines_env.exists()
    sample = json.loads(out.split("first 1:\n", 1)[1].splitlines()[0])
    assert sample["type"] == "identify" and sample["userId"] == "c***@example.com"  # masked
    assert "shown as the Pipelines API would get it" in out

    assert _backfill(dodo, cio, api="pipelines") == 0
    out = capsys.readouterr().out
    preflight, sent = cio.requests[:2], cio.requests[2:]
    empty = {"batch": []}  # the key's probe (accepted), then the made-up key's (refused): nothing created
    assert [(r.path, r.status, r.json) for r in preflight] == [("/v1/batch", 200, empty), ("/v1/batch", 401, empty)]
    assert sent and all(r.path.startswith("/v1/") and r.status == 200 for r in sent)
    assert all(r.headers.get("X-Strict-Mode") == "1" for r in cio.requests)
    assert not cio.accepted_ops()  # nothing went to Track

    identified = _calls(cio, "identify")
    customers = [c for c in identified if "subscription_id" not in c["traits"]]
    assert sorted(c["userId"] for c in customers) == [f"cus_{n:05d}" for n in range(N_CUSTOMERS)]
    subscriptions = sorted(c["traits"]["subscription_id"] for c in identified if "subscription_id" in c["traits"])
    assert subscriptions == sorted(s["subscription_id"] for s in dodo.subscriptions if s["status"] in LIVE)
    assert all(isinstance(c["timestamp"], str) and c["timestamp"].endswith("Z") for c in identified)
    assert not _calls(cio, "track")  # identify only by default
    assert f"Customer.io Pipelines API {cio.pipelines_url}" in out
    assert f"customers: {N_CUSTOMERS} customers read, {N_CUSTOMERS} sent (done)" in out
    assert "to the Pipelines API" in out
    assert json.loads(pipelines_env.read_text())["completed_at"]


def test_pipelines_events_repeat_their_message_id_and_subscription_objects_are_group_calls(
    dodo: DodoStandIn, cio: TrackSandbox, pipelines_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events carry the Dodo time and a message id a rerun repeats; objects go as the bridge's group calls."""
    monkeypatch.setenv("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", "4")  # the bridge's setting, read by the backfill
    argv = ("--no-customers", "--statuses", "on_hold", "--events")
    assert _backfill(dodo, cio, *argv, api="pipelines") == 0
    events = _calls(cio, "track")
    subs = {s["subscription_id"]: s for s in dodo.subscriptions if s["status"] == "on_hold"}
    assert len(events) == len(subs) == 5
    for event in events:
        sub = subs[event["properties"]["subscription_id"]]
        created_ms = to_unix_ms(sub["created_at"]) or 0
        assert event["event"] == "subscription.on_hold" and event["properties"]["backfill"] is True
        assert event["messageId"] == deterministic_ulid(f"backfill:{sub['subscription_id']}", created_ms)
        assert event["timestamp"] == iso_time(created_ms)
        assert event["userId"] == sub["customer"]["customer_id"]
    groups = _calls(cio, "group")
    assert sorted(g["groupId"] for g in groups) == sorted(subs)
    for group in groups:
        assert group["traits"]["object_type_id"] == "4"
        assert group["userId"] == subs[group["groupId"]]["customer"]["customer_id"]
    first = sorted(e["messageId"] for e in events)
    cio.reset()
    assert _backfill(dodo, cio, *argv, "--restart", api="pipelines") == 0
    assert sorted(e["messageId"] for e in _calls(cio, "track")) == first


def test_pipelines_outage_stops_resumably_and_a_rerun_finishes(
    dodo: DodoStandIn, cio: TrackSandbox, pipelines_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cio.script(*PIPELINES_KEY_OK, 503, 503)
    assert _backfill(dodo, cio, "--max-attempts", "2", "--no-customers", api="pipelines") == 1
    assert "Customer.io still failing after 2 attempts (HTTP 503" in capsys.readouterr().err
    assert json.loads(pipelines_env.read_text())["listings"]["subscriptions:active"]["next_page"] == 0
    assert _backfill(dodo, cio, "--no-customers", api="pipelines") == 0
    assert len(_calls(cio, "identify")) == sum(1 for s in dodo.subscriptions if s["status"] in LIVE)
