"""The ingest function inside its part of the Customer.io budget (dodo_cio.delivery.budget), on a clock the test moves.

Each case breaks the budget on purpose (a container whose share is spent, a workspace answering 429)
and asserts what was sent, what was parked and what Dodo was answered, never how long it took.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dodo_cio.delivery.budget import Budget
from dodo_cio.ingest.service import BUDGET_SPENT
from dodo_cio_local.sandbox import ScriptedResponse
from support.emf import emitted_metrics
from support.samples import sample_paths

pytestmark = pytest.mark.network

PAYMENT = json.loads(next(p for p in sample_paths() if p.name == "payment.succeeded.json").read_bytes())


def payment(n: int) -> bytes:
    doc = json.loads(json.dumps(PAYMENT))
    doc["data"]["payment_id"] = f"pay_budget_{n}"
    return json.dumps(doc).encode()


def parked_after_their_delay(bridge: Any, expected: int) -> list[dict[str, Any]]:
    """Parked messages wait DelaySeconds (the budget's wait, at least 1 s) before SQS shows them."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found += bridge.parked()
    return found


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(bridge: Any) -> Clock:
    """The container's budget: 1 request a second, 2 deep, on the test's clock."""
    clock = Clock()
    bridge.app.service().budget = Budget(1.0, burst=2, clock=clock)
    return clock


def test_a_spent_share_parks_webhooks_for_the_retry_drain_and_sends_nothing(
    bridge: Any, clock: Clock, capsys: Any
) -> None:
    answers = [bridge.send(payment(n), webhook_id=f"msg_b{n}") for n in range(4)]
    assert answers == [(200, {"status": "delivered"})] * 2 + [(202, {"status": "queued"})] * 2
    assert len(bridge.sandbox.requests) == 2  # the burst; the rest were never tried
    parked = [m["body"] for m in parked_after_their_delay(bridge, 2)]
    assert [p["webhook_id"] for p in parked] == ["msg_b2", "msg_b3"]
    assert all(p["last_error"]["reason"] == BUDGET_SPENT and p["attempts"] == 0 for p in parked)
    assert emitted_metrics(capsys.readouterr().out).get("DeliveryDeferred") == 2
    clock.now += 1.0  # one second later: one more may go
    assert bridge.send(payment(9), webhook_id="msg_b9") == (200, {"status": "delivered"})


def test_a_429_holds_every_direct_send_for_its_retry_after(bridge: Any, clock: Clock, capsys: Any) -> None:
    bridge.sandbox.script(ScriptedResponse(429, headers={"Retry-After": "30"}))
    assert bridge.send(payment(1), webhook_id="msg_t1") == (202, {"status": "queued"})
    clock.now += 29.0  # refilled, but still inside Customer.io's Retry-After
    assert bridge.send(payment(2), webhook_id="msg_t2") == (202, {"status": "queued"})
    assert len(bridge.sandbox.requests) == 1  # the second one did not pile on
    clock.now += 1.0
    assert bridge.send(payment(3), webhook_id="msg_t3") == (200, {"status": "delivered"})
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics.get("CustomerioThrottled"), metrics.get("DeliveryDeferred")) == (1, 1)
