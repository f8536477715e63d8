"""`dodo-cio replay` needs no Pipelines support of its own: it signs a body and posts it to the
bridge, which delivers with the API it is deployed with. Shown against a local run started with
CUSTOMERIO_API=pipelines: the replayed event reaches the sandbox as a strict-mode Pipelines call
whose `messageId` is derived from the original webhook id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dodo_cio.platform.times import to_unix_ms
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio_cli import cli
from dodo_cio_cli.local_target import LOCAL_URL_ENV
from dodo_cio_local.local_run import LocalBridge

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"


@pytest.fixture
def pipelines_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBridge]:
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "SSM_PARAMETER_PATH", "DODO_WEBHOOK_SECRET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    bridge = LocalBridge(port=0, sandbox_port=0, drain=False)
    info = bridge.start()
    monkeypatch.setenv(LOCAL_URL_ENV, info.webhook_url.removesuffix("/webhooks/dodo"))
    try:
        yield bridge
    finally:
        bridge.stop()


def test_replay_reaches_a_pipelines_deployment_with_the_original_ids_message_id(
    pipelines_run: LocalBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["replay", str(PAYMENT), "--local", "--webhook-id", "msg_replayed_into_pipelines"]) == 0
    assert '{"status":"delivered"}' in capsys.readouterr().out
    sandbox = pipelines_run.sandbox
    assert sandbox is not None
    assert [(r.path.startswith("/v1/"), r.status) for r in sandbox.requests] == [(True, 200)]
    (event,) = [c for c in sandbox.accepted_calls() if c["type"] == "track"]
    envelope = json.loads(PAYMENT.read_bytes())
    assert event["event"] == "payment.succeeded"
    assert event["messageId"] == deterministic_ulid(
        "msg_replayed_into_pipelines", to_unix_ms(envelope["timestamp"]) or 0
    )
