"""The operator runbook against a running local bridge (`--local`), through the CLI entry point.

The DLQ walk-through is read from the README and run line by line, so the README cannot drift
from what works: script a 400 in the sandbox, send, list the DLQ, clear the fault, redrive, see
it delivered. The quarantine path runs end to end too: a signed body this version cannot read is
kept, listed, refused by `reprocess` while it is still unreadable, and delivered and deleted once the
model reads it.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dodo_cio.platform import aws
from dodo_cio_cli import cli
from dodo_cio_cli.local_target import LOCAL_URL_ENV
from dodo_cio_local.local_run import LocalBridge, LocalBridgeInfo

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"
CUSTOMER = "cus_2RfYk8HcWq5NzT1mLb9Xe"  # the sample's customer


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalBridge, LocalBridgeInfo]]:
    """A local run with its retry drain, found by the CLI through $DODO_CIO_LOCAL_URL."""
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("DODO_WEBHOOK_SECRET", raising=False)
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the checkout
    bridge = LocalBridge(port=0, sandbox_port=0, drain=True, drain_interval=0.1, backoff_scale=0.01)
    info = bridge.start()
    monkeypatch.setenv(LOCAL_URL_ENV, info.webhook_url.removesuffix("/webhooks/dodo"))
    try:
        # The handlers' one-session-per-container clients point at the emulated AWS ...
        assert aws.client("sqs").meta.endpoint_url == info.aws_endpoint
        yield bridge, info
    finally:
        bridge.stop()
    assert aws._clients == {}, "... and are dropped with it, so nothing later talks to a closed port"


def _readme_walkthrough() -> list[list[str]]:
    """The command lines of the first sh block under the README's DLQ runbook heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### The DLQ runbook on your laptop", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [argv for line in block.splitlines() if (argv := shlex.split(line, comments=True))]


def _run(argv: list[str], sandbox_url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """One README line: curl to the sandbox's control endpoint, or the CLI through cli.main."""
    if argv[0] == "curl":
        (target,) = [a for a in argv if "/__sandbox/" in a]
        host, path = target.split("/", 1)
        assert host == "localhost:4010", "the README must use the sandbox's default port"
        data = argv[argv.index("-d") + 1] if "-d" in argv else None
        response = requests.post(f"{sandbox_url}/{path}", data=data, timeout=5)
        return response.status_code, response.text
    assert argv[0] == ".venv/bin/dodo-cio", argv
    code = cli.main(argv[1:])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_readme_dlq_walkthrough_runs_on_a_laptop(local, capsys: pytest.CaptureFixture[str]) -> None:
    bridge, info = local
    sandbox = bridge.sandbox
    assert sandbox is not None and info.sandbox_url is not None
    steps = _readme_walkthrough()
    shape = [(a[0], next(x for x in a if "/__sandbox/" in x) if a[0] == "curl" else a[1]) for a in steps]
    assert shape == [
        ("curl", "localhost:4010/__sandbox/script"),
        (".venv/bin/dodo-cio", "send"),
        (".venv/bin/dodo-cio", "dlq"),
        ("curl", "localhost:4010/__sandbox/reset"),
        (".venv/bin/dodo-cio", "redrive"),
        (".venv/bin/dodo-cio", "dlq"),
    ]
    script, send, listing, fix, redrive, after = steps

    assert _run(script, info.sandbox_url, capsys) == (200, '{"queued": 2}')

    code, out = _run(send, info.sandbox_url, capsys)
    assert code == 0 and "HTTP 202" in out and '"status":"dead_lettered"' in out
    assert [r.status for r in sandbox.requests] == [400]

    code, out = _run(listing, info.sandbox_url, capsys)
    assert code == 0
    assert "payment.succeeded" in out and CUSTOMER in out and "permanent" in out
    assert 'HTTP 400: {"meta": {"error": "attribute plan is invalid"}}' in out
    assert "maya.fernandes@example.com" not in out
    assert bridge.queue_depths()["dead_letter_queue"]["visible"] == 1, "listing must not consume"

    assert _run(fix, info.sandbox_url, capsys)[0] == 200

    code, out = _run(redrive, info.sandbox_url, capsys)
    assert code == 0 and "moved 1 message(s)" in out and "receive/send/delete" in out

    wait_until(lambda: any(op.get("action") == "event" for op in sandbox.accepted_ops()), timeout=10)
    code, out = _run(after, info.sandbox_url, capsys)
    assert code == 0 and "no dead letters" in out
    wait_until(lambda: bridge.queue_depths()["retry_queue"] == {"visible": 0, "in_flight": 0, "delayed": 0}, 5)


def _unreadable_payment(tmp_path: Path) -> Path:
    """Signed by Dodo but unreadable to this version: the amount arrives as a string."""
    doc = json.loads(PAYMENT.read_bytes())
    doc["data"]["total_amount"] = "4900"
    path = tmp_path / "amount-as-string.json"
    path.write_text(json.dumps(doc))
    return path


def test_quarantined_webhooks_are_listed_and_reprocessed_locally(
    local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dodo_cio.ingest import service as ingest
    from dodo_cio.receiving import models

    bridge, _ = local
    sandbox = bridge.sandbox
    assert sandbox is not None
    assert cli.main(["send", str(_unreadable_payment(tmp_path)), "--local"]) == 0
    assert '"status":"quarantined","kind":"unreadable","field":"data.total_amount"' in capsys.readouterr().out

    assert cli.main(["dlq", "--local"]) == 0
    out = capsys.readouterr().out
    assert "no dead letters" in out and "QUARANTINED WEBHOOK" in out
    assert "payment.succeeded" in out and "data.total_amount: must be an integer" in out
    assert cli.main(["dlq", "--local", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["queue"], item["kind"], item["event_type"]) == ("quarantine", "quarantined", "payment.succeeded")
    webhook_id = item["webhook_id"]
    assert webhook_id.startswith("msg_")

    # This version still cannot read it: 422, kept. (The rerun's other answers: test_quarantine.py.)
    assert cli.main(["reprocess", "--local"]) == 1
    assert f"{webhook_id}  payment.succeeded  -> 422 still_invalid" in capsys.readouterr().out

    # A version whose model reads the amount.
    original = models.parse_payload

    def upgraded(envelope: Any) -> Any:
        data = dict(envelope.data)
        data["total_amount"] = int(data["total_amount"])
        return original(dataclasses.replace(envelope, data=data))

    monkeypatch.setattr(ingest, "parse_payload", upgraded)
    assert cli.main(["reprocess", "--local"]) == 0
    out = capsys.readouterr().out
    assert f"{webhook_id}  payment.succeeded  -> 200 delivered (deleted)" in out
    assert "1 handled and deleted, 0 kept" in out
    assert any(op.get("action") == "event" and op.get("name") == "payment.succeeded" for op in sandbox.accepted_ops())
    assert bridge.queue_depths()["quarantine_queue"] == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert cli.main(["reprocess", "--local"]) == 0
    assert "no quarantined webhooks" in capsys.readouterr().out
