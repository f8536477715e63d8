"""The commercial summary (dodo_cio.state.summary) through the real ingest handler, on moto's DynamoDB.

What a marketer segments on after a customer's payments, refunds and Dodo's resends: the requests the
sandbox accepted are replayed into the workspace model (support.workspace), which orders identify
updates by their timestamp as Customer.io does, and the person's attributes are what is asserted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import dodo_cio.ingest.service
from dodo_cio.delivery.destination import PIPELINES
from dodo_cio.state.table import StateTable
from support.emf import emitted_metrics
from support.samples import sample_paths
from support.workspace import Workspace, track_ops_of_calls

pytestmark = pytest.mark.network

SAMPLES: dict[str, dict[str, Any]] = {p.name: json.loads(p.read_bytes()) for p in sample_paths()}
CUSTOMER = SAMPLES["payment.succeeded.json"]["data"]["customer"]["customer_id"]
DAY = 86_400
T0 = "2026-10-{day:02d}T09:00:00Z"


def payment(payment_id: str, amount: int, day: int, currency: str = "USD", method: str = "card") -> bytes:
    doc = copy.deepcopy(SAMPLES["payment.succeeded.json"])
    doc["timestamp"] = T0.format(day=day)
    doc["data"].update(payment_id=payment_id, total_amount=amount, currency=currency, payment_method=method)
    return json.dumps(doc).encode()


def refund(refund_id: str, payment_id: str, amount: int, day: int, currency: str = "USD") -> bytes:
    doc = copy.deepcopy(SAMPLES["refund.succeeded.json"])
    doc["timestamp"] = T0.format(day=day)
    doc["data"].update(refund_id=refund_id, payment_id=payment_id, amount=amount, currency=currency)
    return json.dumps(doc).encode()


def accepted(bridge: Any) -> list[dict[str, Any]]:
    """Every op Customer.io accepted, as Track ops (Pipelines calls translated), in order."""
    return bridge.sandbox.accepted_ops() or track_ops_of_calls(bridge.sandbox.accepted_calls())


def customer(bridge: Any) -> Any:
    """The customer as the workspace holds them after every op Customer.io accepted."""
    workspace = Workspace()
    workspace.apply_batch(accepted(bridge))
    found = workspace.person(id=CUSTOMER)
    assert found is not None
    return found


def person(bridge: Any) -> dict[str, Any]:
    return dict(customer(bridge).attributes)


def summaries(bridge: Any) -> list[dict[str, Any]]:
    """The summary identifies Customer.io accepted, in order."""
    ops = accepted(bridge)
    return [op for op in ops if op["action"] == "identify" and "payments_count" in op["attributes"]]


def unix(day: int) -> int:
    return 1_790_845_200 + (day - 1) * DAY  # 2026-10-01T09:00:00Z + days


def test_three_payments_a_partial_refund_and_resends_are_counted_exactly_once(
    bridge: Any, api: str, capsys: Any
) -> None:
    sends = [
        ("msg_p1", payment("pay_1", 4900, day=3)),
        ("msg_p2", payment("pay_2", 4900, day=10, method="paypal")),
        ("msg_p1", payment("pay_1", 4900, day=3)),  # Dodo redelivers the first webhook
        ("msg_r1", refund("ref_1", "pay_2", 1000, day=12)),
        ("msg_p3", payment("pay_3", 9900, day=20)),
        ("msg_p3_again", payment("pay_3", 9900, day=20)),  # the same payment under a second webhook id
        ("msg_r1_again", refund("ref_1", "pay_2", 1000, day=12)),  # and the same refund
    ]
    for webhook_id, body in sends:
        assert bridge.send(body, webhook_id=webhook_id)[0] == 200
    attributes = person(bridge)
    assert {k: attributes.get(k) for k in ("total_spent", "total_refunded", "payments_count")} == {
        "total_spent": 187,  # 49 + 49 - 10 + 99
        "total_refunded": 10,
        "payments_count": 3,
    }
    assert attributes["total_spent_currency"] == "USD" and "total_spent_by_currency" not in attributes
    assert (attributes["first_payment_at"], attributes["last_payment_at"]) == (unix(3), unix(20))
    assert (attributes["last_payment_amount"], attributes["last_payment_method"]) == (99, "card")
    counted = emitted_metrics(capsys.readouterr().out)
    assert counted["AlreadyCounted"] == 2  # pay_3 and ref_1 under their second ids (msg_p1: the duplicate check)


def test_a_late_webhook_never_sends_an_older_summary_than_the_one_it_replaces(bridge: Any, api: str) -> None:
    """Customer.io keeps the identify with the newest timestamp: a refund stamped before the last
    payment must still replace that payment's summary, or its totals would be lost."""
    assert bridge.send(payment("pay_a", 4900, day=10), webhook_id="msg_a")[0] == 200
    assert bridge.send(refund("ref_a", "pay_a", 900, day=2), webhook_id="msg_r")[0] == 200  # older event time
    assert [op["timestamp"] for op in summaries(bridge)] == [unix(10), unix(10) + 1]
    assert person(bridge)["total_spent"] == 40


def test_a_ledger_changed_by_another_webhook_meanwhile_is_read_again(bridge: Any, monkeypatch: Any) -> None:
    """Broken on purpose: the first read returns the ledger as it was before another webhook wrote it."""
    real = StateTable.read_ledger
    snapshots: list[str | None] = []
    monkeypatch.setattr(StateTable, "read_ledger", lambda t, c: snapshots.append(real(t, c)) or snapshots[-1])
    for n, day in ((1, 3), (2, 4)):
        assert bridge.send(payment(f"pay_{n}", 4900, day=day), webhook_id=f"msg_{n}")[0] == 200
    reads: list[str | None] = []

    def stale_first(table: StateTable, customer_id: str) -> str | None:
        reads.append(real(table, customer_id))
        # first: the ledger after pay_1 only (as if pay_2 were still being written); then the truth
        return snapshots[1] if len(reads) == 1 else reads[-1]

    monkeypatch.setattr(StateTable, "read_ledger", stale_first)
    assert bridge.send(payment("pay_3", 2000, day=5), webhook_id="msg_3")[0] == 200
    assert len(reads) == 2 and snapshots[1] is not None
    assert (person(bridge)["total_spent"], person(bridge)["payments_count"]) == (118, 3)


def subscription(event_type: str, subscription_id: str, status: str, day: int) -> bytes:
    doc = copy.deepcopy(SAMPLES["subscription.active.json"])
    doc["type"], doc["timestamp"] = event_type, T0.format(day=day)
    doc["data"].update(subscription_id=subscription_id, status=status)
    doc["data"]["customer"] = SAMPLES["payment.succeeded.json"]["data"]["customer"]  # the one customer here
    return json.dumps(doc).encode()


def test_an_older_subscription_webhook_sends_no_summary_and_the_profile_status_is_the_summarys(
    bridge: Any,
) -> None:
    assert bridge.send(subscription("subscription.active", "sub_a", "active", 3), webhook_id="msg_1")[0] == 200
    assert bridge.send(subscription("subscription.cancelled", "sub_b", "cancelled", 5), webhook_id="msg_2")[0] == 200
    ops = bridge.sandbox.accepted_ops()
    # Profile mode: the subscription's own identify no longer says `subscription_status`; the
    # summary does, with the most alive subscription's.
    states = [op["attributes"] for op in ops if op["action"] == "identify" and "subscription_id" in op["attributes"]]
    assert states and all("subscription_status" not in a for a in states)
    assert [a["subscription_status"] for a in (op["attributes"] for op in ops) if "active_subscription_count" in a] == [
        "active",
        "active",
    ]
    sent = len(ops)
    # sub_a's webhook of day 2 arrives late: sub_a's entry (day 3) is newer, so nothing changes.
    assert bridge.send(subscription("subscription.on_hold", "sub_a", "on_hold", 2), webhook_id="msg_3")[0] == 200
    late = bridge.sandbox.accepted_ops()[sent:]
    assert late and not any("active_subscription_count" in op.get("attributes", {}) for op in late)
    assert person(bridge)["active_subscription_count"] == 1


def test_a_subscription_ledger_changed_meanwhile_is_read_again(bridge: Any, monkeypatch: Any) -> None:
    """Broken on purpose: the first read misses sub_a, as if its webhook were still being written."""
    assert bridge.send(subscription("subscription.active", "sub_a", "active", 3), webhook_id="msg_1")[0] == 200
    real = StateTable.read_ledger
    reads: list[str | None] = []

    def stale_first(table: StateTable, customer_id: str) -> str | None:
        reads.append(real(table, customer_id))
        return None if len(reads) == 1 else reads[-1]

    monkeypatch.setattr(StateTable, "read_ledger", stale_first)
    assert bridge.send(subscription("subscription.active", "sub_b", "active", 4), webhook_id="msg_2")[0] == 200
    assert len(reads) == 2
    assert person(bridge)["active_subscription_ids"] == ["sub_a", "sub_b"]


def test_without_the_summary_nothing_is_read_or_sent(bridge: Any, monkeypatch: Any) -> None:
    service = bridge.app.service()
    monkeypatch.setattr(service, "mapping", service.mapping.with_changes(send_summary=False))
    monkeypatch.setattr(StateTable, "read_ledger", lambda *_: pytest.fail("the ledger was read"))
    assert bridge.send(payment("pay_1", 4900, day=3), webhook_id="msg_1")[0] == 200
    assert "total_spent" not in person(bridge)


def test_an_unreachable_ledger_is_a_503_and_nothing_is_counted(bridge: Any, monkeypatch: Any) -> None:
    from dodo_cio.state.table import StateUnavailable

    real, outage = StateTable.read_ledger, [True]

    def down(table: StateTable, customer_id: str) -> str | None:
        if outage:
            raise StateUnavailable("EndpointConnectionError")
        return real(table, customer_id)

    monkeypatch.setattr(StateTable, "read_ledger", down)
    status, answer = bridge.send(payment("pay_1", 4900, day=3), webhook_id="msg_1")
    assert (status, answer) == (503, {"error": "duplicate check unavailable; retry later"})
    assert bridge.sandbox.requests == []
    outage.clear()
    assert bridge.send(payment("pay_1", 4900, day=3), webhook_id="msg_1")[0] == 200  # Dodo's retry
    assert person(bridge)["payments_count"] == 1
    assert dodo_cio.ingest.service.LEDGER_ROUNDS >= 2


def test_a_parked_summary_never_overwrites_a_newer_one_on_the_retry_path(bridge: Any, retry: Any) -> None:
    """pay_1's request fails and is parked; pay_2's goes through; the retry of pay_1 delivers its
    event but not its summary, which the freshness piece `summary` knows is older."""
    bridge.sandbox.script(503)
    assert bridge.send(payment("pay_1", 4900, day=3), webhook_id="msg_1") == (202, {"status": "queued"})
    assert bridge.send(payment("pay_2", 2000, day=4), webhook_id="msg_2")[0] == 200
    retry.source.drain()
    assert [op["attributes"]["payments_count"] for op in summaries(bridge)] == [2], "only the newest summary"
    events = [e.name for e in customer(bridge).events]
    assert events.count("payment.succeeded") == 2  # pay_1's event was delivered all the same
    assert (person(bridge)["total_spent"], person(bridge)["payments_count"]) == (69, 2)


def test_the_backfill_seeds_the_totals_and_webhooks_continue_from_them(
    bridge: Any, api: str, monkeypatch: Any, tmp_path: Any, capsys: Any
) -> None:
    """`dodo-cio backfill` counts Dodo's history into the same ledger (dodo_cio_cli.backfill_summary):
    a payment a webhook counted already is left alone, and later webhooks, resent or new, go on
    from the seeded totals without counting anything twice."""
    from dodo_cio_cli import cli
    from dodo_cio_local.dodo_standin import DodoStandIn, make_payment, make_refund

    who = {**SAMPLES["payment.succeeded.json"]["data"]["customer"], "created_at": T0.format(day=1)}
    history = [
        {**make_payment(1, who), "payment_id": "pay_1", "total_amount": 4900, "created_at": T0.format(day=1)},
        {**make_payment(2, who), "payment_id": "pay_2", "total_amount": 2000, "created_at": T0.format(day=2)},
    ]
    refunds = [{**make_refund(1, history[0], 900), "refund_id": "ref_1"}]
    assert bridge.send(payment("pay_2", 2000, day=2), webhook_id="msg_before")[0] == 200  # counted live
    monkeypatch.chdir(tmp_path)  # the backfill's checkpoint file
    with DodoStandIn([who], [], payments=history, refunds=refunds) as dodo:
        monkeypatch.setenv("DODO_PAYMENTS_API_KEY", dodo.api_key)
        monkeypatch.setenv("CUSTOMERIO_SITE_ID", bridge.sandbox.site_id)
        monkeypatch.setenv("CUSTOMERIO_API_KEY", bridge.sandbox.api_key)
        monkeypatch.setenv("CUSTOMERIO_API", api)
        if api == PIPELINES:
            monkeypatch.setenv("CUSTOMERIO_PIPELINES_URL", bridge.sandbox.pipelines_url)
            monkeypatch.setenv("CUSTOMERIO_PIPELINES_API_KEY", bridge.sandbox.pipelines_key)
        argv = ["backfill", "--base-url", dodo.base_url, "--track-url", bridge.sandbox.base_url, "--rate", "1000"]
        code = cli.main([*argv, "--statuses", "active", "--dodo-retries", "0", "--no-progress"])
        out = capsys.readouterr().out
    assert code == 0, out
    assert "2 payments and refunds counted, 1 counted before (left alone)" in out
    assert (person(bridge)["total_spent"], person(bridge)["payments_count"]) == (60, 2)  # 49 + 20 - 9
    assert person(bridge)["total_refunded"] == 9

    assert bridge.send(payment("pay_1", 4900, day=1), webhook_id="msg_resent")[0] == 200  # Dodo resends history
    assert bridge.send(refund("ref_1", "pay_1", 900, day=3), webhook_id="msg_refund")[0] == 200
    assert bridge.send(payment("pay_3", 1000, day=10), webhook_id="msg_new")[0] == 200
    after = person(bridge)
    assert (after["total_spent"], after["payments_count"], after["total_refunded"]) == (70, 3, 9)
    assert after["last_payment_at"] == unix(10) and after["first_payment_at"] == unix(1)
