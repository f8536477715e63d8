"""Customer.io refuses to change the email of a person addressed by id (issue 17, part 3), through the real
handlers: the refused identify is dead-lettered at once with a reason naming the workspace setting, the rest of
the webhook is delivered, and `EmailChangeRefused` is counted, on the ingest path and on the retry path, on
both APIs.

The refusal is scripted on the sandbox: Customer.io documents the setting ("Allow updates to email using ID")
but not its answer, so the answer here is a stand-in in the documented error shapes (a Track 207 item, a
Pipelines strict-mode 400), with words of our own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.destination import PIPELINES
from dodo_cio.delivery.track import EMAIL_BY_ID_SETTING
from dodo_cio_local.sandbox import ScriptedResponse
from support.emf import emitted_metrics

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "dodo" / "payment.succeeded.json"
STAND_IN = "stand-in: the email of a person addressed by id cannot change in this workspace"


def refusal(api: str) -> list[ScriptedResponse]:
    """What the sandbox answers the identify-and-event request: the identify refused, the event accepted."""
    if api == PIPELINES:  # strict mode refuses the batch; the client halves it: the identify is refused alone
        refused = ScriptedResponse(400, body={"error": STAND_IN})
        return [refused, refused]
    item = {"batch_index": 0, "reason": "stand-in", "field": "email", "message": STAND_IN}
    return [ScriptedResponse(207, body={"errors": [item]})]


def dead_lettered_reason(bridge: Any) -> tuple[str, list[str]]:
    (message,) = bridge.dead_lettered()
    body = message["body"]
    return body["last_error"]["reason"], [op["action"] for op in body["ops"]]


def test_ingest_dead_letters_the_refused_identify_and_delivers_the_event(
    bridge: Any, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge.sandbox.script(*refusal(api))
    status, answer = bridge.send(SAMPLE.read_bytes(), webhook_id="msg_email_change_1")
    assert (status, answer) == (202, {"status": "dead_lettered"})  # nothing waits: no retry can fix it
    reason, actions = dead_lettered_reason(bridge)
    assert actions == ["identify"]
    assert f'"{EMAIL_BY_ID_SETTING}"' in reason and STAND_IN in reason
    assert bridge.parked() == []
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("EmailChangeRefused") == 1
    assert metrics.get("DeadLettered") == 1 and metrics.get("OpsDelivered", 0) >= 1  # the event, at least


def test_the_retry_path_counts_it_too(bridge: Any, api: str, retry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bridge.sandbox.script(503)  # Customer.io unavailable: the webhook is parked
    assert bridge.send(SAMPLE.read_bytes(), webhook_id="msg_email_change_2") == (202, {"status": "queued"})
    capsys.readouterr()
    retry.module.service().policy = BackoffPolicy(base=1, cap=1)
    bridge.sandbox.script(*refusal(api))
    retry.source.drain(max_polls=10)
    reason, actions = dead_lettered_reason(bridge)
    assert actions == ["identify"] and EMAIL_BY_ID_SETTING in reason
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("EmailChangeRefused") == 1
    assert metrics.get("DeadLettered") == 1 and metrics.get("RetryReparked") is None
    # The event went out on the retry: the sandbox holds it, whichever API.
    accepted = bridge.sandbox.accepted_calls() if api == PIPELINES else bridge.sandbox.accepted_ops()
    names = [op.get("event") or op.get("name") for op in accepted]
    assert "payment.succeeded" in names, json.dumps(accepted)[:500]
