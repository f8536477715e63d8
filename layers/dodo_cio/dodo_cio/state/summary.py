"""The customer's commercial summary: running totals only the bridge can keep (docs/design-customer-summary.md).

Customer.io has no increment, so "spent over $500" needs someone to add up every payment. The
ledger is that sum, kept per Dodo customer in the state table (`dodo_cio.state.table`, the `cust#`
record) and changed only in the transaction that also marks the payment or refund as counted
(`paid#<payment_id>`, `refunded#<refund_id>`), so each is counted exactly once whatever Dodo
resends and under whichever webhook id. This module is the pure part: what a payment or a refund
does to a ledger, and the attributes a marketer segments on.

Amounts stay in minor units (integers) here: sums of integers are exact. Totals are kept per
currency and never added across currencies; the person's `total_spent` is in the *summary
currency*, the currency of the customer's first counted payment (or refund, when Dodo's refund
webhook came first), which never changes afterwards
(a segment must not change meaning because a customer once paid in another currency). Every
currency's net total goes in `total_spent_by_currency` once there is more than one.

It also keeps each subscription's last known status and recurring price (`Sub`), so the person
gets aggregates across subscriptions (`has_active_subscription`, `active_subscription_count`,
`active_subscription_ids`, `mrr`): the latest webhook of one subscription says nothing about the
others. A subscription's entry is replaced only by a webhook at least as new as the one that set
it, so it needs no "counted" marker: applying the same webhook twice changes nothing.

Each change gets a strictly increasing timestamp (`stamped`): the summary is sent as its own
identify, and Customer.io orders identify updates by their timestamp, so a summary computed from
an older webhook (a refund that arrived late) must still carry a newer timestamp than the summary
it replaces, and two changes in one second must not tie.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Final

from dodo_cio.mapping import money
from dodo_cio.mapping.limits import MAX_ATTRIBUTE_VALUE_BYTES
from dodo_cio.mapping.payload_fields import capped
from dodo_cio.receiving.models import DodoEvent, Payment, Refund, Subscription

LEDGER_FORMAT: Final = 1
SUMMARY_STATE: Final = "summary"  # the freshness piece of the summary identify (dodo_cio.state.table)
PAID_PREFIX: Final = "paid#"  # a payment counted in its customer's ledger
REFUNDED_PREFIX: Final = "refunded#"  # a refund counted in its customer's ledger
ACTIVE: Final = "active"
SUBSCRIPTION_STATUS: Final = "subscription_status"  # profile mode's one status, kept by the summary
# How alive a subscription is, for profile mode's single `subscription_status` (lower is more
# alive): a customer with one active subscription is active, whatever happened to the others.
# Dodo's statuses not listed here (it adds some) rank between paused and ended.
STATUS_RANK: Final = {"active": 0, "past_due": 1, "on_hold": 1, "paused": 2, "pending": 3}
ENDED_RANK: Final = 5
_ENDED: Final = frozenset({"cancelled", "failed", "expired"})
_UNKNOWN_RANK: Final = 4
# Months per billing interval, to bring every subscription's price to a monthly figure (MRR).
# Fractions: exact, and no float overflow for a hostile price.
MONTHS_PER: Final = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1), "year": Fraction(12)}


@dataclass(frozen=True, slots=True)
class Sub:
    """What the ledger keeps of one subscription: enough for the aggregates, no more."""

    status: str
    at: int  # Dodo's event time of the webhook that set this entry
    amount: int | None = None  # recurring price per billing period, minor units
    currency: str | None = None
    interval: str | None = None  # day | week | month | year
    every: int = 1  # billed every `every` intervals

    def monthly(self) -> Fraction | None:
        """The price per month in minor units, or None when it cannot be known."""
        per = MONTHS_PER.get(self.interval or "")
        if self.amount is None or per is None or self.every <= 0:
            return None
        return self.amount / (self.every * per)  # Fraction arithmetic

    def rank(self) -> int:
        return STATUS_RANK.get(self.status, ENDED_RANK if self.status in _ENDED else _UNKNOWN_RANK)


@dataclass(frozen=True, slots=True)
class Totals:
    paid: int = 0  # minor units of succeeded payments
    refunded: int = 0  # minor units of succeeded refunds
    count: int = 0  # succeeded payments


@dataclass(frozen=True, slots=True)
class Ledger:
    """One customer's counted payments and refunds; the empty ledger is a customer never counted."""

    stamp: int = 0  # the timestamp of the last summary sent (Unix seconds)
    currency: str | None = None  # the summary currency
    totals: Mapping[str, Totals] = field(default_factory=dict)
    first_at: int | None = None
    last_at: int | None = None
    last_amount: int | None = None  # minor units, in last_currency
    last_currency: str | None = None
    last_method: str | None = None
    subs: Mapping[str, Sub] = field(default_factory=dict)

    # -- changes ---------------------------------------------------------------------------------

    def with_payment(self, amount: int, currency: str, at: int, method: str | None) -> Ledger:
        """A succeeded payment counted once. `at` is Dodo's event time; the latest one sets `last_*`."""
        code = currency.strip().upper()
        old = self.totals.get(code, Totals())
        totals = {**self.totals, code: replace(old, paid=old.paid + amount, count=old.count + 1)}
        changed = replace(self, totals=totals, currency=self.currency or code)
        if self.first_at is None or at < self.first_at:
            changed = replace(changed, first_at=at)
        if self.last_at is None or at >= self.last_at:
            method = method or (self.last_method if self.last_at == at else None)
            changed = replace(changed, last_at=at, last_amount=amount, last_currency=code, last_method=method)
        return changed

    def with_refund(self, amount: int, currency: str) -> Ledger:
        """A succeeded refund counted once; it may come before its payment (the sums do not care)."""
        code = currency.strip().upper()
        old = self.totals.get(code, Totals())
        totals = {**self.totals, code: replace(old, refunded=old.refunded + amount)}
        return replace(self, totals=totals, currency=self.currency or code)

    def with_subscription(self, subscription_id: str, sub: Sub) -> Ledger:
        """The subscription's state as this webhook tells it, unless a newer webhook already did."""
        old = self.subs.get(subscription_id)
        if old is not None and sub.at < old.at:
            return self
        return replace(self, subs={**self.subs, subscription_id: sub}, currency=self.currency or sub.currency)

    def same_as(self, other: Ledger) -> bool:
        """Equal but for the stamp: a change that changed nothing sends no summary."""
        return replace(self, stamp=0) == replace(other, stamp=0)

    def stamped(self, event_time: int) -> Ledger:
        """This ledger stamped no earlier than the event and strictly after the last summary."""
        return replace(self, stamp=max(event_time, self.stamp + 1))

    # -- what Customer.io gets ---------------------------------------------------------------------

    def attributes(self, exponents: Mapping[str, int] | None = None, *, profile_status: bool = False) -> dict[str, Any]:
        """The summary attributes (docs/mapping-fields.md), amounts in major units as numbers.

        `profile_status`: also `subscription_status`, the status of the customer's most alive
        subscription (profile mode, where the person has one status for all subscriptions).
        """
        out: dict[str, Any] = {"payments_count": sum(t.count for t in self.totals.values())}
        if self.currency is not None:
            main = self.totals.get(self.currency, Totals())
            out["total_spent"] = _major(main.paid - main.refunded, self.currency, exponents)
            out["total_spent_currency"] = self.currency
            out["total_refunded"] = _major(main.refunded, self.currency, exponents)
        if len(self.totals) > 1:
            out["total_spent_by_currency"] = {
                c: _major(t.paid - t.refunded, c, exponents) for c, t in sorted(self.totals.items())
            }
        if self.first_at is not None:
            out["first_payment_at"] = self.first_at
        if self.last_at is not None:
            out["last_payment_at"] = self.last_at
        if self.last_amount is not None and self.last_currency is not None:
            out["last_payment_amount"] = _major(self.last_amount, self.last_currency, exponents)
            out["last_payment_currency"] = self.last_currency
        if self.last_method:
            out["last_payment_method"] = self.last_method
        if self.subs:
            out.update(self._subscription_attributes(exponents, profile_status=profile_status))
        # An amount past any JSON number (only a hostile payload has one) is left out, not sent as
        # Infinity; by currency, that currency is left out. The exact sums stay in the ledger.
        if isinstance(out.get("total_spent_by_currency"), dict):
            out["total_spent_by_currency"] = {c: v for c, v in out["total_spent_by_currency"].items() if v is not None}
        return {k: v for k, v in out.items() if v is not None}

    def _subscription_attributes(self, exponents: Mapping[str, int] | None, *, profile_status: bool) -> dict[str, Any]:
        active = sorted(i for i, sub in self.subs.items() if sub.status == ACTIVE)
        out: dict[str, Any] = {
            "has_active_subscription": bool(active),
            "active_subscription_count": len(active),
            "active_subscription_ids": capped(active, MAX_ATTRIBUTE_VALUE_BYTES) or [],  # the count says how many
        }
        currency = self.currency
        if currency is not None:
            # Only subscriptions in the summary currency add up; a price unknown in one leaves mrr out.
            monthly = [self.subs[i].monthly() for i in active if self.subs[i].currency == currency]
            if None not in monthly:
                exact = sum(m for m in monthly if m is not None)
                out["mrr"] = _major(round(exact), currency, exponents)
                out["mrr_currency"] = currency
        if profile_status:
            alive = min(self.subs.values(), key=lambda sub: (sub.rank(), -sub.at))
            out[SUBSCRIPTION_STATUS] = alive.status
        return out

    # -- storage -----------------------------------------------------------------------------------

    def dumps(self) -> str:
        doc = {
            "format": LEDGER_FORMAT,
            "stamp": self.stamp,
            "currency": self.currency,
            "totals": {c: [t.paid, t.refunded, t.count] for c, t in sorted(self.totals.items())},
            "first_at": self.first_at,
            "last_at": self.last_at,
            "last_amount": self.last_amount,
            "last_currency": self.last_currency,
            "last_method": self.last_method,
            "subs": {i: [u.status, u.at, u.amount, u.currency, u.interval, u.every] for i, u in self.subs.items()},
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Ledger:
        """The stored ledger; an absent or unreadable one reads as empty, never as an error.

        The write that follows is conditional on the stored text being exactly what was read,
        so an unreadable document is replaced only if nothing changed it meanwhile.
        """
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            totals = {str(c): Totals(int(v[0]), int(v[1]), int(v[2])) for c, v in doc["totals"].items()}
            return cls(
                stamp=int(doc["stamp"]),
                currency=_text(doc.get("currency")),
                totals=totals,
                first_at=_int(doc.get("first_at")),
                last_at=_int(doc.get("last_at")),
                last_amount=_int(doc.get("last_amount")),
                last_currency=_text(doc.get("last_currency")),
                last_method=_text(doc.get("last_method")),
                subs={str(i): _sub(v) for i, v in (doc.get("subs") or {}).items()},
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return cls()


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """What one webhook adds to its customer's ledger, and the marker that says it was counted."""

    customer_id: str
    marker: str | None  # the state-table key of the "counted" record; None when nothing is counted
    event_time: int

    payment: tuple[int, str, str | None] | None = None  # amount (minor), currency, method
    refund: tuple[int, str] | None = None  # amount (minor), currency
    subscription: tuple[str, Sub] | None = None  # its id and state; no marker (`with_subscription`)

    def apply(self, ledger: Ledger) -> Ledger:
        if self.payment is not None:
            amount, currency, method = self.payment
            ledger = ledger.with_payment(amount, currency, self.event_time, method)
        if self.refund is not None:
            ledger = ledger.with_refund(*self.refund)
        if self.subscription is not None:
            ledger = ledger.with_subscription(*self.subscription)
        return ledger.stamped(self.event_time)


def change_for(event: DodoEvent) -> LedgerChange | None:
    """The ledger change a webhook carries: a succeeded payment, a succeeded refund or any
    subscription webhook (its current status and price), else None.

    A payment's time is Dodo's event time (the envelope's), the same for every redelivery. A
    refund whose amount or currency Dodo left null (its schema allows it) cannot be counted.
    """
    p, at = event.payload, event.envelope.timestamp
    if event.type == "payment.succeeded" and isinstance(p, Payment) and p.total_amount >= 0:
        method = p.raw.get("payment_method")
        method = method.strip() if isinstance(method, str) and method.strip() else None
        return LedgerChange(
            p.customer.customer_id, PAID_PREFIX + p.payment_id, at, payment=(p.total_amount, p.currency, method)
        )
    if event.type == "refund.succeeded" and isinstance(p, Refund) and p.amount is not None and p.amount >= 0:
        if not p.currency or not p.currency.strip():
            return None
        return LedgerChange(p.customer.customer_id, REFUNDED_PREFIX + p.refund_id, at, refund=(p.amount, p.currency))
    if event.type.startswith("subscription.") and isinstance(p, Subscription):
        entry = (p.subscription_id, subscription_entry(p, at))
        return LedgerChange(p.customer.customer_id, None, at, subscription=entry)
    return None


def subscription_entry(sub: Subscription, at: int) -> Sub:
    """The ledger's entry for a subscription as its payload states it (Dodo sends its latest state)."""
    raw = sub.raw
    amount, currency = raw.get("recurring_pre_tax_amount"), raw.get("currency")
    unit, every = raw.get("payment_frequency_interval"), raw.get("payment_frequency_count")
    return Sub(
        status=sub.status.strip().lower(),
        at=at,
        amount=_int(amount),
        currency=currency.strip().upper() if isinstance(currency, str) and currency.strip() else None,
        interval=unit.strip().lower() if isinstance(unit, str) else None,
        every=every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else 1,
    )


def _sub(value: Any) -> Sub:
    status, at, amount, currency, interval, every = value
    return Sub(str(status), int(at), _int(amount), _text(currency), _text(interval), int(every))


def _major(minor: int, currency: str, exponents: Mapping[str, int] | None) -> int | float | None:
    """Major units as a JSON number, or None when no finite number can hold the amount."""
    value = money.to_major(minor, currency, exponents or None)
    try:
        return value if math.isfinite(value) else None
    except OverflowError:  # an int past the float range
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
