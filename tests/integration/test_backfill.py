"""`dodo-cio backfill` end to end: the official SDK against a local fake of Dodo's list endpoints,
Customer.io as the local Track sandbox (which validates every op like the Track API)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dodo_cio.limits import MAX_BATCH_BYTES, MAX_OP_BYTES
from dodo_cio.ulid import deterministic_ulid
from dodo_cio_cli import backfill_source, cli
from dodo_cio_local.sandbox import ScriptedResponse, TrackSandbox
from support.aws import fake_credentials
from support.fake_dodo import FakeDodo

pytestmark = pytest.mark.network

SITE_ID = "backfill-site"
API_KEY = "backfill-key-1a2b"
N_CUSTOMERS = 250
STATUSES = {"active": 120, "on_hold": 5, "past_due": 3, "cancelled": 7, "expired": 2}
LIVE = ("active", "on_hold", "past_due")
# What the credentials check gets when requests are scripted (scripts answer in order, whatever the path).
REGION_OK = ScriptedResponse(200, body={"url": "http://sandbox", "region": "us", "environment_id": 1})


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
def dodo() -> Iterator[FakeDodo]:
    with FakeDodo.populated(N_CUSTOMERS, STATUSES) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dodo: FakeDodo) -> Path:
    monkeypatch.chdir(tmp_path)  # the state file lands here; no customize.py here: the default mapping
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", dodo.api_key)
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", SITE_ID)
    monkeypatch.setenv("CUSTOMERIO_API_KEY", API_KEY)
    for name in ("CUSTOMERIO_REGION", "CUSTOMERIO_TRACK_URL", "CUSTOMERIO_IDENTIFIER", "DODO_PAYMENTS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / ".backfill-state.json"


def _backfill(dodo: FakeDodo, cio: TrackSandbox, *argv: str) -> int:
    return cli.main(
        [
            "backfill",
            "--base-url",
            dodo.base_url,
            "--track-url",
            cio.base_url,
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


def _refused(dodo: FakeDodo, cio: TrackSandbox, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Runs the backfill, which must stop with exit status 2, and returns what it printed to stderr."""
    assert _backfill(dodo, cio, *argv) == 2
    return capsys.readouterr().err


def _posts(cio: TrackSandbox) -> list[Any]:
    return [r for r in cio.requests if r.method == "POST"]


def _identified(cio: TrackSandbox) -> list[dict[str, Any]]:
    return [op for op in cio.accepted_ops() if op["action"] == "identify"]


def test_customers_and_live_subscriptions_arrive_as_identify_ops(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backfill(dodo, cio) == 0
    out = capsys.readouterr().out
    posts = _posts(cio)
    assert posts and all(r.status == 200 for r in posts), [r.response for r in posts if r.status != 200]
    for request in posts:  # within Customer.io's limits, as the sandbox enforces them
        assert request.path in {"/api/v2/batch", "/api/v2/entity"}
        assert len(request.body) < MAX_BATCH_BYTES
        for op in request.json.get("batch", [request.json]):
            assert len(json.dumps(op, separators=(",", ":")).encode()) <= MAX_OP_BYTES

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


def test_dry_run_sends_nothing(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backfill(dodo, cio, "--dry-run", "--sample", "2", "--identifier", "email") == 0
    out = capsys.readouterr().out
    assert not cio.requests  # not even the credentials check
    assert not env.exists()
    assert "dry run: nothing was sent" in out
    assert "customers: 250 customers read, 250 would send" in out
    assert "active subscriptions: 120 subscriptions read, 120 would send" in out
    assert "c***@example.com" in out and "customer0@example.com" not in out


def test_events_when_asked_with_ids_that_survive_a_rerun(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backfill(dodo, cio, "--no-customers", "--statuses", "on_hold", "--events") == 0
    events = [op for op in cio.accepted_ops() if op["action"] == "event"]
    subs = [s for s in dodo.subscriptions if s["status"] == "on_hold"]
    assert len(events) == len(subs) == 5
    assert {e["name"] for e in events} == {"subscription.on_hold"}
    assert all(e["attributes"]["backfill"] is True for e in events)
    from dodo_cio.times import to_unix_ms

    assert sorted(e["id"] for e in events) == sorted(
        deterministic_ulid(f"backfill:{s['subscription_id']}", to_unix_ms(s["created_at"]) or 0) for s in subs
    )
    first_ids = sorted(e["id"] for e in events)
    cio.reset()
    assert _backfill(dodo, cio, "--no-customers", "--statuses", "on_hold", "--events", "--restart") == 0
    assert sorted(op["id"] for op in cio.accepted_ops() if op["action"] == "event") == first_ids


def test_dodo_failure_after_page_2_then_resume_sends_only_the_rest(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
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


def test_killed_by_an_exception_mid_run_then_resumed(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_page = backfill_source.SdkSource.page
    pages: list[int] = []

    def page_then_die(self: Any, listing: Any, page_number: int, page_size: int) -> Any:
        if listing.key == "subscriptions:active" and page_number == 1:
            raise KeyboardInterrupt  # Ctrl-C while reading
        pages.append(page_number)
        return real_page(self, listing, page_number, page_size)

    monkeypatch.setattr(backfill_source.SdkSource, "page", page_then_die)
    assert _backfill(dodo, cio) == 1
    assert "interrupted" in capsys.readouterr().err
    state = json.loads(env.read_text())
    assert state["listings"]["customers"]["done"] is True
    assert state["listings"]["subscriptions:active"]["next_page"] == 1

    monkeypatch.setattr(backfill_source.SdkSource, "page", real_page)
    cio.reset()
    assert _backfill(dodo, cio) == 0
    resent = _identified(cio)
    assert not [op for op in resent if "subscription_id" not in op["attributes"]]  # customers were done
    active = sorted(
        op["attributes"]["subscription_id"] for op in resent if op["attributes"]["subscription_status"] == "active"
    )
    assert active == sorted(s["subscription_id"] for s in dodo.subscriptions if s["status"] == "active")[100:]


def test_customerio_outage_stops_resumably(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cio.script(REGION_OK, 503, 503)  # the credentials check, then the first batch twice
    assert _backfill(dodo, cio, "--max-attempts", "2", "--no-customers") == 1
    err = capsys.readouterr().err
    assert "Customer.io still failing after 2 attempts (HTTP 503" in err
    assert json.loads(env.read_text())["listings"]["subscriptions:active"]["next_page"] == 0
    assert _backfill(dodo, cio, "--no-customers") == 0
    live = sum(1 for s in dodo.subscriptions if s["status"] in LIVE)
    assert len(_identified(cio)) == live


def test_207_rejections_are_reported_and_the_rest_delivered(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
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
    ("variable", "value", "messages", "dodo_read"),
    [
        pytest.param(
            "CUSTOMERIO_API_KEY",
            "revoked-key",
            ["Customer.io check failed: Customer.io rejected the site id / API key (HTTP 401)"],
            False,  # the credentials check comes first: nothing was read
            id="customerio",
        ),
        pytest.param(
            "DODO_PAYMENTS_API_KEY",
            "sk_test_wrong",
            ["Dodo Payments rejected the API key (HTTP 401) reading customers page 0", "--environment test_mode"],
            True,
            id="dodo",
        ),
    ],
)
def test_a_rejected_key_stops_the_backfill_before_sending(
    variable: str,
    value: str,
    messages: list[str],
    dodo_read: bool,
    dodo: FakeDodo,
    cio: TrackSandbox,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    err = _refused(dodo, cio, capsys)
    for message in messages:
        assert message in err
    assert bool(dodo.requests) is dodo_read
    assert not _posts(cio)


def test_customerio_revoking_the_key_during_the_run_stops_it(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cio.script(REGION_OK, 200, 401)  # accepted at first, revoked during the run
    err = _refused(dodo, cio, capsys, "--page-size", "100")
    assert "Customer.io refused the request (HTTP 401" in err and "customers from page 1" in err


def test_eu_workspace_with_a_us_setting_is_refused(
    dodo: FakeDodo, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TrackSandbox(site_id=SITE_ID, api_key=API_KEY, region="eu") as eu:
        assert "your workspace is in eu; set CustomerioRegion=eu" in _refused(dodo, eu, capsys, "--region-cio", "us")
        assert not [r for r in eu.requests if r.method == "POST"]


def test_keys_from_ssm_with_a_stack(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DODO_PAYMENTS_API_KEY", "CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY"):
        monkeypatch.delenv(name)
    fake_credentials(monkeypatch)

    class Stack:
        def describe_stacks(self, **kwargs: Any) -> dict[str, Any]:
            parameters = {
                "SsmParameterPath": "/shop",
                "CustomerioRegion": "us",
                "CustomerioTrackUrl": cio.base_url,
                "CustomerioIdentifier": "email",
            }
            return {
                "Stacks": [{"Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]}]
            }

    with mock_aws():
        ssm = boto3.client("ssm")
        for name, value in (
            ("dodo-api-key", dodo.api_key),
            ("customerio-site-id", SITE_ID),
            ("customerio-api-key", API_KEY),
        ):
            ssm.put_parameter(Name=f"/shop/{name}", Value=value, Type="SecureString")
        monkeypatch.setattr(cli, "_aws", lambda service, region: Stack() if service == "cloudformation" else ssm)
        code = cli.main(
            ["backfill", "--stack", "bridge", "--base-url", dodo.base_url, "--statuses", "on_hold", "--rate", "1000"]
        )
    assert code == 0, capsys.readouterr().err
    assert "identifier email" in capsys.readouterr().out  # the bridge's strategy, from the stack
    customers = [op for op in _identified(cio) if "subscription_id" not in op["attributes"]]
    assert len(customers) == N_CUSTOMERS and all("email" in op["identifiers"] for op in customers)


def test_a_wrong_base_url_is_a_usage_error(
    dodo: FakeDodo, cio: TrackSandbox, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["backfill", "--base-url", dodo.base_url + "/v9", "--track-url", cio.base_url, "--dodo-retries", "0"]
    )
    assert code == 2
    assert "answered HTTP 404 reading customers page 0" in capsys.readouterr().err
