"""What reconcile expects of each Dodo object, and how it sorts arrived, missing and stuck (pure)."""

from __future__ import annotations

import pytest

from dodo_cio_cli.reconcile import Expected, expected, list_family, queued_objects, reconcile


# A succeeded payment, a checkout step and a pending subscription: tests/integration/test_reconcile.py.
@pytest.mark.parametrize(
    ("family", "item", "event_type"),
    [
        ("refunds", {"refund_id": "r", "status": "failed"}, "refund.failed"),
        ("refunds", {"refund_id": "r", "status": "pending"}, None),
        ("disputes", {"dispute_id": "d", "dispute_status": "dispute_won"}, "dispute.opened"),
        ("subscriptions", {"subscription_id": "s", "status": "cancelled"}, "subscription.active"),
    ],
)
def test_the_webhook_each_state_implies(family: str, item: dict[str, str], event_type: str | None) -> None:
    found = expected(family, item)
    assert (found.event_type if found else None) == event_type


def test_arrived_missing_and_stuck() -> None:
    objects = [Expected("payments", f"pay_{n}", "payment.succeeded", "2026-11-02") for n in range(3)]
    receipts = {"pay_0": {"payment.succeeded": {}}, "pay_1": {"payment.succeeded": {}}, "pay_2": {"payment.failed": {}}}
    report = reconcile(
        objects, lambda ids: receipts, {"pay_1": "dead-letter queue: permanent 400"}, since="a", until="b"
    )
    assert [(f.object_id, f.state) for f in report.findings] == [("pay_1", "stuck"), ("pay_2", "missing")]
    assert "received: payment.failed" in report.findings[1].reason
    assert dict(report.counts["payments"]) == {"arrived": 1, "stuck": 1, "missing": 1} and not report.ok


def test_only_objects_created_in_the_period_and_a_repeated_page_ends_the_listing() -> None:
    page = [
        {"payment_id": "in", "status": "succeeded", "created_at": "2026-11-15T10:00:00Z"},
        {"payment_id": "out", "status": "succeeded", "created_at": "2026-12-02T10:00:00Z"},
    ]
    listed = list_family(lambda family, n, size: page, "payments", "2026-11-01", "2026-11-30")
    assert [o.object_id for o in listed] == ["in"]


def test_queued_objects_come_from_parked_ops_and_quarantined_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    parked = {"ops": [{"attributes": {"payment_id": "pay_9"}}], "last_error": {"kind": "permanent", "reason": "400"}}
    kept = {"body": json.dumps({"data": {"refund_id": "ref_9"}}), "kind": "unknown_type", "error_detail": "new type"}

    class Sqs:
        pass

    import dodo_cio_cli.sqs_peek as peek

    messages = {"dlq": [{"Body": json.dumps(parked)}], "q": [{"Body": json.dumps(kept)}]}
    monkeypatch.setattr(peek, "peek_messages", lambda sqs, url, **kw: messages[url])
    found = queued_objects(Sqs(), {"dead-letter queue": "dlq", "quarantine": "q"})
    assert found == {"pay_9": "dead-letter queue: permanent 400", "ref_9": "quarantine: unknown_type new type"}
