"""`dodo-cio` without a network: usage errors, `event` output, and the stored events/apigw files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.receiving.http_api import request_from_apigw
from dodo_cio.receiving.signature import parse_secrets, verify
from dodo_cio_cli import cli
from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET
from dodo_cio_testdata import make_events

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-the-cli-0001").decode()


@pytest.fixture(autouse=True)
def _no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DODO_WEBHOOK_SECRET", raising=False)


# -- send: usage errors (the HTTP side is in tests/integration/test_cli_send.py: unit tests open no socket)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", str(PAYMENT)], "no webhook secret"),
        (["send", str(PAYMENT), "--secret", "whsec_not*base64"], "not valid base64"),
        (["send", "/nonexistent/body.json", "--secret", SECRET], "cannot read"),
        (["send", str(PAYMENT), "--secret", SECRET, "--header", "no-colon"], "--header"),
        (["event", str(PAYMENT)], "no webhook secret"),
    ],
)
def test_usage_errors_exit_2(capsys, args: list[str], message: str) -> None:
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["send"])
    assert exc.value.code == 2


# -- event --------------------------------------------------------------------------------------


def _event(capsys, *extra: str) -> dict[str, Any]:
    assert cli.main(["event", str(PAYMENT), "--secret", SECRET, *extra]) == 0
    event: dict[str, Any] = json.loads(capsys.readouterr().out)
    return event


def test_event_is_a_verifiable_http_api_v2_event(capsys) -> None:
    event = _event(capsys, "--timestamp", "1800000000")
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /webhooks/dodo"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/webhooks/dodo"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["timeEpoch"] == 1_800_000_000_000
    assert event["isBase64Encoded"] is False
    assert all(k == k.lower() for k in event["headers"])
    request = request_from_apigw(event)  # the handler's own reading of the event
    assert request.body == PAYMENT.read_bytes()
    verified = verify(request.headers, request.body, parse_secrets(SECRET), now=1_800_000_000)
    assert verified.timestamp == 1_800_000_000
    with pytest.raises(Exception, match="timestamp outside tolerance"):
        verify(request.headers, request.body, parse_secrets(SECRET), now=1_800_000_000 + 301)


def test_event_base64(capsys) -> None:
    event = _event(capsys, "--base64")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == PAYMENT.read_bytes()
    request = request_from_apigw(event)
    verify(request.headers, request.body, parse_secrets(SECRET))  # fresh timestamp: now


# -- stored events ------------------------------------------------------------------------------


def test_stored_events_are_up_to_date() -> None:
    assert make_events.main(["--check"]) == 0, "run: .venv/bin/python -m dodo_cio_testdata.make_events"


@pytest.mark.parametrize("path", sorted((ROOT / "events" / "apigw").glob("*.json")), ids=lambda p: p.name)
def test_stored_event_verifies_at_its_fixed_time(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    request = request_from_apigw(event)
    assert request.body == (ROOT / "events" / "dodo" / path.name).read_bytes()
    verify(request.headers, request.body, parse_secrets(DEV_WEBHOOK_SECRET), now=make_events.FIXED_TIMESTAMP)
