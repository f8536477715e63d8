"""Abandoned checkouts in the workspace model (issue 17, part 5): a person who can be emailed, never a buyer.

The same harness as `test_workspace_sequences` (the real ingest and retry handlers, the sandbox, every
strategy, both subscription modes, both APIs). A recovery campaign is triggered by the event
`abandoned_checkout.detected` and writes to the person's email, so what matters is the person's email
*when that event arrives*, and that the event never arrives for someone who has paid since.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import test_workspace_sequences as harness
from test_workspace_sequences import CUSTOMER, DAY, EMAIL_SENT, T0, World, both_orderings

from support.workspace import Workspace

# The harness's fixtures: `world` (one deployment per strategy, subscription mode and API) needs `api`.
api = harness.api
world = harness.world

HOUR = 3600
DETECTED, LATE = "abandoned_checkout.detected", "abandoned_checkout.followed_by_payment"


def email_when_triggered(world: World, name: str = DETECTED) -> Any:
    """The person's email at the moment the event `name` reached them: what the campaign it starts sees."""
    ws = Workspace()
    for op in world.accepted_ops():
        ws.apply(op)
        if op.get("action") == "event" and op.get("name") == name:
            return world.person(ws).attributes.get("email")
    raise AssertionError(f"{name} never arrived")


def checkout_identifies(world: World) -> list[dict[str, Any]]:
    """The attributes of each identify sent right before a checkout event: the one it brings (customer_id)."""
    ops = world.accepted_ops()
    return [
        dict(before.get("attributes") or {})
        for before, op in itertools.pairwise(ops)
        if op.get("name") == DETECTED and before.get("action") == "identify"
    ]


def every_event_name(ws: Workspace) -> list[str]:
    return [e.name for person in ws.people for e in ws.events(person)]


def test_an_abandoned_checkout_before_any_payment(world: World) -> None:
    """No dodo-api-key: nothing can tell the bridge who a first-time customer is before they pay."""
    world.send(DETECTED, T0, abandonment_reason="checkout_incomplete")
    if world.strategy == "customer_id":
        # Addressed by the id alone, delivered at once; no source knows the email (`dodo-cio check` warns).
        ws = world.workspace()
        assert every_event_name(ws) == [DETECTED] and "email" not in world.person(ws).attributes
    else:
        assert world.workspace().people == []  # parked: no stray {"id": "cus_…"} person
    world.send("payment.succeeded", T0 + HOUR, payment_id="pay_1")
    world.drain()
    for ws in both_orderings(world):
        person = world.person(ws)
        assert person.attributes.get("email") == EMAIL_SENT[world.strategy]
        if world.strategy == "customer_id":
            assert every_event_name(ws) == [DETECTED, "payment.succeeded"]
            continue
        # Resolved only by the payment: delivered after it, renamed, so no recovery email goes to a buyer.
        assert DETECTED not in every_event_name(ws)
        assert [e.name for e in ws.events(person)] == ["payment.succeeded", LATE]
        (late,) = ws.events(person, LATE)
        assert late.attributes["customer_paid_at"] == T0 + HOUR
        assert late.attributes["abandonment_reason"] == "checkout_incomplete"
        assert late.timestamp == T0  # still the time Dodo detected it


def test_with_a_dodo_api_key_a_first_time_customer_is_emailable_when_the_checkout_arrives(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dodo_cio_local.dodo_standin import DodoStandIn

    with DodoStandIn() as dodo:
        world.use_dodo_api(dodo, monkeypatch)
        assert world.send(DETECTED, T0) == 200  # delivered at once, not parked
        assert world.send(DETECTED, T0 + DAY) == 200  # a second checkout: the directory answers
        looked_up = dodo.lookups("customers")
    assert looked_up == ["cus_maya"]  # once, under every strategy: the answer went to the directory
    for ws in both_orderings(world):
        assert [e.name for e in ws.events(world.person(ws))] == [DETECTED, DETECTED]
    assert email_when_triggered(world) == EMAIL_SENT[world.strategy]  # None under metadata: the app's
    # Under customer_id the identify before each checkout brings the email: Dodo's API, then the directory.
    expected = [{"dodo_customer_id": "cus_maya", "email": CUSTOMER["email"]}] * 2
    assert checkout_identifies(world) == (expected if world.strategy == "customer_id" else [])


def test_a_lookup_that_failed_for_now_parks_the_checkout_and_the_retry_path_brings_the_email(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dodo's API answers 500 at ingest: identify and event wait together; the retry resolves them the same way."""
    from dodo_cio_local.dodo_standin import DodoStandIn

    with DodoStandIn() as dodo:
        world.use_dodo_api(dodo, monkeypatch)
        dodo.fail("/customers/cus_maya")
        assert world.send(DETECTED, T0) == 202  # queued: nothing reached Customer.io yet
        assert world.workspace().people == []
        world.drain()
        assert dodo.lookups("customers") == ["cus_maya"]  # the successful read: the retry's
        assert [r.status for r in dodo.requests if r.path == "/customers/cus_maya"] == [500, 200]
    for ws in both_orderings(world):
        assert [e.name for e in ws.events(world.person(ws))] == [DETECTED]
    assert email_when_triggered(world) == EMAIL_SENT[world.strategy]
