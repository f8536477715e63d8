"""The commercial summary's arithmetic (dodo_cio.state.summary): pure, no table, no socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio.receiving.models import DodoEvent
from dodo_cio.state.summary import PAID_PREFIX, REFUNDED_PREFIX, Ledger, Sub, change_for
from support.mapped_events import event_of
from support.samples import load_sample


def event(name: str, **data: Any) -> DodoEvent:
    doc = load_sample(name)
    doc["data"].update(data)
    return event_of(doc)


def test_payments_and_refunds_add_up_in_minor_units_and_show_in_major() -> None:
    ledger = Ledger().with_payment(1999, "usd", 100, "card").with_payment(1, "USD", 50, None).with_refund(500, "USD")
    assert ledger.attributes() == {
        "payments_count": 2,
        "total_spent": 15,  # 19.99 + 0.01 - 5.00, exactly
        "total_spent_currency": "USD",
        "total_refunded": 5,
        "first_payment_at": 50,
        "last_payment_at": 100,
        "last_payment_amount": 19.99,
        "last_payment_currency": "USD",
        "last_payment_method": "card",
    }


@pytest.mark.parametrize(("currency", "minor", "major"), [("JPY", 5000, 5000), ("KWD", 1250, 1.25), ("USD", 4900, 49)])
def test_each_currency_keeps_its_own_exponent(currency: str, minor: int, major: float) -> None:
    assert Ledger().with_payment(minor, currency, 1, None).attributes()["total_spent"] == major


def test_an_amount_past_any_json_number_is_left_out_not_sent_as_infinity() -> None:
    out = Ledger().with_payment(10**400, "USD", 1, None).with_payment(100, "EUR", 2, None).attributes()
    assert "total_spent" not in out and "last_payment_amount" in out
    assert out["total_spent_by_currency"] == {"EUR": 1}
    json.dumps(out, allow_nan=False)


def test_the_stored_form_round_trips_and_anything_unreadable_is_empty() -> None:
    ledger = Ledger().with_payment(4900, "USD", 10, "card").with_refund(100, "EUR").stamped(10)
    assert Ledger.loads(ledger.dumps()) == ledger
    for text in (None, "", "{", "[]", '{"totals": 1}', json.dumps({"stamp": "x", "totals": {}})):
        assert Ledger.loads(text) == Ledger()


def test_a_succeeded_payment_and_a_succeeded_refund_change_the_ledger_and_nothing_else_does() -> None:
    paid = change_for(event("payment.succeeded.json"))
    assert paid is not None and paid.marker and paid.marker.startswith(PAID_PREFIX) and paid.payment is not None
    refunded = change_for(event("refund.succeeded.json"))
    assert refunded is not None and refunded.marker and refunded.marker.startswith(REFUNDED_PREFIX)
    assert refunded.refund == (2450, "USD")
    assert change_for(event("refund.succeeded.json", amount=None)) is None  # Dodo's schema allows it
    assert change_for(event("refund.succeeded.json", currency=None)) is None
    for name in ("payment.failed.json", "refund.failed.json", "dispute.opened.json"):
        assert change_for(event(name)) is None, name
    counted = paid.apply(Ledger())
    assert counted.attributes()["payments_count"] == 1 and counted.stamp == paid.event_time


def monthly(status: str, at: int, amount: int = 2900, *, currency: str = "USD", interval: str = "month") -> Sub:
    return Sub(status, at, amount, currency, interval, 1)


def test_cancelling_one_of_two_subscriptions_leaves_the_customer_active() -> None:
    two = Ledger().with_subscription("sub_a", monthly("active", 10))
    two = two.with_subscription("sub_b", monthly("active", 20, 900))
    assert (
        two.attributes(profile_status=True).items()
        >= {
            "has_active_subscription": True,
            "active_subscription_count": 2,
            "active_subscription_ids": ["sub_a", "sub_b"],
            "mrr": 38,
            "mrr_currency": "USD",
            "subscription_status": "active",
        }.items()
    )
    one = two.with_subscription("sub_b", monthly("cancelled", 30, 900)).attributes(profile_status=True)
    assert (one["has_active_subscription"], one["active_subscription_count"], one["mrr"]) == (True, 1, 29)
    assert one["subscription_status"] == "active" and one["active_subscription_ids"] == ["sub_a"]
    none = two.with_subscription("sub_a", monthly("cancelled", 40)).with_subscription("sub_b", monthly("expired", 41))
    out = none.attributes(profile_status=True)
    assert (out["has_active_subscription"], out["active_subscription_count"], out["mrr"]) == (False, 0, 0)
    assert out["subscription_status"] == "expired"  # of the ended ones, the latest word
    assert "subscription_status" not in none.attributes()  # object mode: each object has its own


@pytest.mark.parametrize(
    ("others", "expected"),
    [(["on_hold", "cancelled"], "on_hold"), (["paused", "past_due"], "past_due"), (["pending", "paused"], "paused")],
)
def test_the_person_status_is_the_most_alive_subscription(others: list[str], expected: str) -> None:
    ledger = Ledger()
    for n, status in enumerate(others):
        ledger = ledger.with_subscription(f"sub_{n}", monthly(status, 100 - n))
    assert ledger.attributes(profile_status=True)["subscription_status"] == expected
    assert "subscription_status" not in ledger.attributes()  # object mode: each object has its own


def test_an_older_webhook_of_a_subscription_changes_nothing() -> None:
    ledger = Ledger().with_subscription("sub_a", monthly("cancelled", 50))
    assert ledger.with_subscription("sub_a", monthly("active", 49)) is ledger
    assert ledger.with_subscription("sub_a", monthly("active", 49)).same_as(ledger)
    assert not ledger.with_subscription("sub_a", monthly("active", 50)).same_as(ledger)  # same second: the later word


@pytest.mark.parametrize(
    ("interval", "every", "amount", "mrr"),
    [("year", 1, 12000, 10), ("month", 3, 3000, 10), ("week", 1, 1200, 52), ("day", 1, 100, 30.42)],
)
def test_mrr_brings_every_billing_interval_to_a_month(interval: str, every: int, amount: int, mrr: float) -> None:
    ledger = Ledger().with_subscription("sub", Sub("active", 1, amount, "USD", interval, every))
    assert ledger.attributes()["mrr"] == mrr


def test_mrr_adds_only_the_summary_currency_and_leaves_out_an_unknown_price() -> None:
    paid = Ledger().with_payment(100, "EUR", 1, None)
    mixed = paid.with_subscription("a", monthly("active", 1, 1000, currency="EUR"))
    mixed = mixed.with_subscription("b", monthly("active", 2, 5000))
    out = mixed.attributes()
    assert (out["mrr"], out["mrr_currency"], out["active_subscription_count"]) == (10, "EUR", 2)
    unknown = mixed.with_subscription("c", Sub("active", 3, 500, "EUR", "fortnight", 1)).attributes()
    assert "mrr" not in unknown and unknown["active_subscription_count"] == 3
    first = Ledger().with_subscription("a", monthly("active", 1, currency="JPY"))
    assert first.currency == "JPY"  # a subscriber who has not paid yet: their subscription's currency


def test_a_subscription_webhook_states_its_subscription_without_a_counted_marker() -> None:
    change = change_for(event("subscription.renewed.json", payment_frequency_interval="Year"))
    assert change is not None and change.marker is None and change.subscription is not None
    sub_id, sub = change.subscription
    assert (sub.status, sub.interval, sub.at) == ("active", "year", change.event_time)
    ledger = change.apply(Ledger())
    assert ledger.attributes()["active_subscription_ids"] == [sub_id]
    assert Ledger.loads(ledger.dumps()) == ledger


def test_hundreds_of_subscription_ids_stay_inside_the_profile_value_limit() -> None:
    ledger = Ledger()
    for n in range(200):
        ledger = ledger.with_subscription(f"sub_{n:040d}", monthly("active", n))
    out = ledger.attributes()
    assert out["active_subscription_count"] == 200 and 0 < len(out["active_subscription_ids"]) < 200
    assert len(json.dumps(out["active_subscription_ids"], separators=(",", ":"))) <= 1000
