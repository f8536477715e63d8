"""`dodo-cio` without a network: usage errors, no AWS region, `event` output, and the stored events/apigw files."""

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


# Every variable a command reads its keys or its API from: each case sets only what it names.
ENVIRONMENT = (
    "DODO_WEBHOOK_SECRET",
    "DODO_PAYMENTS_API_KEY",
    "CUSTOMERIO_API",
    "CUSTOMERIO_SITE_ID",
    "CUSTOMERIO_API_KEY",
    "CUSTOMERIO_PIPELINES_API_KEY",
    "CUSTOMERIO_IDENTIFIER",
)


@pytest.fixture(autouse=True)
def _no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


TRACK_KEYS = {"DODO_PAYMENTS_API_KEY": "k", "CUSTOMERIO_SITE_ID": "site", "CUSTOMERIO_API_KEY": "key"}
DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:bridge-retry-dlq"
COMMANDS = {"send", "event", "check", "dlq", "redrive", "reconcile", "backfill"}


# The send side of these is in tests/integration/test_cli_send.py: unit tests open no socket.
@pytest.mark.parametrize(
    ("args", "env", "messages"),
    [
        (["send", str(PAYMENT)], {}, ["no webhook secret"]),
        (["send", str(PAYMENT), "--secret", "whsec_not*base64"], {}, ["not valid base64"]),
        (["send", "/nonexistent/body.json", "--secret", SECRET], {}, ["cannot read"]),
        (["send", str(PAYMENT), "--secret", SECRET, "--header", "no-colon"], {}, ["--header"]),
        (["event", str(PAYMENT)], {}, ["no webhook secret"]),
        (["check"], {}, ["--stack NAME or --ssm-path"]),
        (["check", "--ssm-path", "dodo"], {}, ["must start with '/'"]),
        pytest.param(
            ["check", "--ssm-path", "/dodo-customerio"],
            {"CUSTOMERIO_API": "journeys"},
            ["$CUSTOMERIO_API must be track or pipelines, not 'journeys'"],
            id="check-unknown-api",
        ),
        (["check", "--ssm-path", "/p", "--identifier", "phone"], {}, ["customer_id, email, metadata:<key>"]),
        (["dlq"], {}, ["--stack"]),
        (["dlq", "--queue-url", DLQ, "--export", "{tmp}/x.jsonl", "--json"], {}, ["--json"]),
        (["dlq", "--queue-url", DLQ, "--export", "{tmp}/x.jsonl", "--limit", "5"], {}, ["--limit"]),
        (["dlq", "--queue-url", DLQ, "--force"], {}, ["--export"]),
        (["redrive", "--dlq-arn", DLQ_ARN, "--to-arn", DLQ_ARN.replace("-dlq", ""), "--rate", "900"], {}, ["500"]),
        (["reconcile", "--since", "last week", "--state-table", "t"], {}, ["--since must be a date"]),
        (
            ["reconcile", "--since", "2026-12-01", "--until", "2026-11-01", "--state-table", "t"],
            {},
            ["--until 2026-11-01 is before --since 2026-12-01"],
        ),
        pytest.param(
            ["backfill", "--dry-run"],
            {},
            ["no Dodo Payments API key: set $DODO_PAYMENTS_API_KEY", "--stack/--ssm-path"],
            id="backfill-no-api-key",
        ),
        pytest.param(
            ["backfill", "--api-key-env", "MY_DODO_KEY"],
            {"MY_DODO_KEY": "k"},
            ["no Customer.io credentials"],
            id="backfill-no-customerio-credentials-suggests-dry-run",
        ),
        pytest.param(
            ["backfill", "--api", "pipelines"],
            TRACK_KEYS,
            ["no Customer.io Pipelines API key", "or set CUSTOMERIO_PIPELINES_API_KEY"],
            id="backfill-pipelines-without-its-key",
        ),
        (["backfill", "--dry-run", "--page-size", "500"], {}, ["--page-size must be 1 to 100"]),
        (["backfill", "--dry-run", "--rate", "0"], {}, ["--rate must be a positive"]),
        (
            ["backfill", "--dry-run", "--rate", "1001"],
            {},
            ["over the Track API's published rate (1,000 requests per 1 s)"],
        ),
        (
            ["backfill", "--dry-run", "--api", "pipelines", "--rate", "1500"],
            {},
            ["over the Pipelines API's published rate (3,000 requests per 3 s)"],
        ),
        (["backfill", "--dry-run", "--statuses", "active,bogus"], {}, ["unknown bogus"]),
        (["backfill", "--dry-run", "--identifier", "phone"], {}, ["identifier strategy 'phone'"]),
        (["backfill", "--dry-run", "--no-customers", "--statuses", ""], {}, ["nothing to backfill"]),
    ],
    ids=lambda value: " ".join(Path(a).name for a in value) if isinstance(value, list) and value[0] in COMMANDS else "",
)
def test_usage_errors_exit_2_before_any_aws_call(
    args: list[str],
    env: dict[str, str],
    messages: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # backfill: no customize.py, no state file
    clients: list[str] = []
    monkeypatch.setattr(cli, "_aws", lambda service, region: clients.append(service) or object())  # no API on it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    assert clients == (["sqs"] if args[0] == "redrive" else [])  # redrive makes its client first, then checks
    err = capsys.readouterr().err
    for message in messages:
        assert message in err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("args", [["send"], ["check", "--ssm-path", "/p", "--api", "journeys"]])
def test_argparse_errors_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("backfill", ["--dry-run", "--state", "--events"]),
        (
            "check",
            [
                "accounts/region",
                "--api {track,pipelines}",
                "--pipelines-url",
                "POST /batch with an empty batch in strict mode",
                "creates nothing",
            ],
        ),
    ],
)
def test_help(command: str, shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in shown:
        assert text in out


# With no AWS region anywhere, every AWS-facing command says so in one line and exits 2 (README, "dodo-cio").
@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--stack", "s"],
        ["dlq", "--stack", "s"],
        ["redrive", "--stack", "s"],
        ["reprocess", "--stack", "s"],
        ["replay", "{body}", "--stack", "s"],
        ["backfill", "--stack", "s"],
        ["setup", "--stack", "s"],
        ["trace", "cus_1", "--stack", "s"],
        ["reconcile", "--since", "2026-11-01", "--stack", "s"],
    ],
    ids=lambda argv: argv[0],
)
def test_no_region_is_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # botocore would ask EC2's metadata service too
    body = tmp_path / "body.json"
    body.write_text("{}")
    code = cli.main([a.replace("{body}", str(body)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no AWS region" in err and "Traceback" not in err, err


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

    encoded = _event(capsys, "--base64")
    assert encoded["isBase64Encoded"] is True
    assert base64.b64decode(encoded["body"]) == PAYMENT.read_bytes()
    request = request_from_apigw(encoded)
    verify(request.headers, request.body, parse_secrets(SECRET))  # fresh timestamp: now


# -- stored events (whether they are stale: tests/unit/test_event_samples.py) ----------------------


@pytest.mark.parametrize("path", sorted((ROOT / "events" / "apigw").glob("*.json")), ids=lambda p: p.name)
def test_stored_event_verifies_at_its_fixed_time(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    request = request_from_apigw(event)
    assert request.body == (ROOT / "events" / "dodo" / path.name).read_bytes()
    verify(request.headers, request.body, parse_secrets(DEV_WEBHOOK_SECRET), now=make_events.FIXED_TIMESTAMP)
