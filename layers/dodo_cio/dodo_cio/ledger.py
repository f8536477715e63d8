"""The customer's commercial summary: running totals only the bridge can keep (docs/design-customer-summary.md).

Customer.io has no increment, so "spent over $500" needs someone to add up every payment. The
ledger is that sum, kept per Dodo customer in the state table (`dodo_cio.state`, the `cust#`
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
from typing import Any, Final

from dodo_cio import money
from dodo_cio.models import DodoEvent, Payment, Refund

LEDGER_FORMAT: Final = 1
SUMMARY_STATE: Final = "summary"  # the freshness piece of the summary identify (dodo_cio.state)
PAID_PREFIX: Final = "paid#"  # a payment counted in its customer's ledger
REFUNDED_PREFIX: Final = "refunded#"  # a refund counted in its customer's ledger


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

    def stamped(self, event_time: int) -> Ledger:
        """This ledger stamped no earlier than the event and strictly after the last summary."""
        return replace(self, stamp=max(event_time, self.stamp + 1))

    # -- what Customer.io gets ---------------------------------------------------------------------

    def attributes(self, exponents: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The summary attributes (docs/mapping-fields.md), amounts in major units as numbers."""
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
        # An amount past any JSON number (only a hostile payload has one) is left out, not sent as
        # Infinity; by currency, that currency is left out. The exact sums stay in the ledger.
        if isinstance(out.get("total_spent_by_currency"), dict):
            out["total_spent_by_currency"] = {c: v for c, v in out["total_spent_by_currency"].items() if v is not None}
        return {k: v for k, v in out.items() if v is not None}

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
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return cls()


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """What one webhook adds to its customer's ledger, and the marker that says it was counted."""

    customer_id: str
    marker: str  # the state-table key of the "counted" record
    event_time: int

    payment: tuple[int, str, str | None] | None = None  # amount (minor), currency, method
    refund: tuple[int, str] | None = None  # amount (minor), currency

    def apply(self, ledger: Ledger) -> Ledger:
        if self.payment is not None:
            amount, currency, method = self.payment
            ledger = ledger.with_payment(amount, currency, self.event_time, method)
        if self.refund is not None:
            ledger = ledger.with_refund(*self.refund)
        return ledger.stamped(self.event_time)


def change_for(event: DodoEvent) -> LedgerChange | None:
    """The ledger change a webhook carries: a succeeded payment or a succeeded refund, else None.

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
    return None


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
