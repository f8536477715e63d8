"""Backfill, part three: the commercial summary seeded from Dodo's history (README "The commercial summary").

Webhooks keep each customer's ledger (`dodo_cio.state.summary`) from the day the bridge was installed; a
customer who paid before then would start from zero. The backfill reads Dodo's succeeded refunds
and payments (and the subscriptions it already lists) and counts each into its customer's ledger
with the same pure functions and the same state-table write as the ingest path
(`StateTable.write_ledger`): the `paid#<payment_id>` / `refunded#<refund_id>` marker is written
only if absent, in one transaction with the ledger, so

* a payment a webhook already counted, or an earlier (interrupted) backfill run, is not counted
  again, and a webhook for a payment the backfill counted is not counted again either;
* a webhook that changes the ledger meanwhile makes the write fail its condition: read again.

Refunds come first: Dodo's refund listing names only the payment, so each refund's customer is
found with one `GET /payments/{payment_id}`. After each page every customer it changed gets one
summary identify, stamped after the summary it replaces (`Ledger.stamped`), so whatever a webhook
sends next continues from these totals. A payment's time is its `created_at` (a webhook uses its
event time, a few seconds later). A subscription's entry is stamped with the time the backfill
read it, like the subscription's identify.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from dodo_cio.mapping.mapper import CUSTOMER_ID, STATE, SUBSCRIPTION_STATE, MappingConfig
from dodo_cio.platform.times import to_unix_seconds
from dodo_cio.receiving.models import PayloadError, parse_subscription
from dodo_cio.state.summary import (
    PAID_PREFIX,
    REFUNDED_PREFIX,
    SUBSCRIPTION_STATUS,
    SUMMARY_STATE,
    Ledger,
    subscription_entry,
)
from dodo_cio.state.table import LedgerConflict, LedgerWrite, StateRejected, StateTable, StateUnavailable
from dodo_cio_cli.backfill_source import EXIT_INCOMPLETE, BackfillError, Built, Listing, Op

ROUNDS: Final = 5  # a ledger that keeps moving under live webhooks: read again, this many times


class PaymentSource(Protocol):
    def payment(self, payment_id: str) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class SeedCounts:
    counted: int = 0  # payments and refunds added to a ledger by this run
    already: int = 0  # counted before (by a webhook or an earlier run): left alone
    skipped: int = 0  # not countable (no amount, no customer): listed as failures


@dataclass(slots=True)
class _Customer:
    ledger: Ledger
    identifiers: dict[str, str] | None


@dataclass
class SummarySeeder:
    """Counts one page of payments or refunds, or notes one page of subscriptions, into the ledgers."""

    table: StateTable
    mapping: MappingConfig
    source: PaymentSource
    dry_run: bool = False
    counts: SeedCounts = field(default_factory=SeedCounts)
    _preview: dict[str, str | None] = field(default_factory=dict)  # a dry run's ledgers, never written

    @property
    def profile_status(self) -> bool:
        return not self.mapping.subscription_object_type_id

    def page(self, listing: Listing, items: list[dict[str, Any]], built: list[Built], now: int) -> None:
        """Count the page into the ledgers, then give each customer it changed their summary identify
        (on their last object of the page, so it goes with that object's ops)."""
        touched: dict[str, tuple[int, _Customer]] = {}
        for index, (item, b) in enumerate(zip(items, built, strict=True)):
            if b.problem is not None:
                continue
            found = self._one(listing, item, b, now)
            if found is not None:
                touched[found[0]] = (index, found[1])
        for customer_id, (index, customer) in touched.items():
            op = self._summary_op(customer_id, customer)
            if op is not None:
                built[index].ops.append(op)

    def _one(self, listing: Listing, item: Mapping[str, Any], b: Built, now: int) -> tuple[str, _Customer] | None:
        if listing.path == "payments":
            return self._payment(item, b)
        if listing.path == "refunds":
            return self._refund(item, b)
        if listing.path == "subscriptions":
            return self._subscription(item, b, now)
        return None

    def _payment(self, item: Mapping[str, Any], b: Built) -> tuple[str, _Customer] | None:
        customer_id, identifiers = self._owner(item)
        amount, currency = _amount(item.get("total_amount")), _text(item.get("currency"))
        at = to_unix_seconds(item.get("created_at"))
        if not customer_id or amount is None or currency is None or at is None:
            self._skip(b, "a payment without its customer, amount, currency or time: not counted")
            return None
        method = _text(item.get("payment_method"))
        ledger = self._count(
            customer_id, PAID_PREFIX + b.object_id, lambda led: led.with_payment(amount, currency, at, method), at
        )
        return None if ledger is None else (customer_id, _Customer(ledger, identifiers))

    def _refund(self, item: Mapping[str, Any], b: Built) -> tuple[str, _Customer] | None:
        amount, currency = _amount(item.get("amount")), _text(item.get("currency"))
        payment_id = _text(item.get("payment_id"))
        if amount is None or currency is None or payment_id is None:
            self._skip(b, "a refund without its amount, currency or payment: not counted")
            return None
        payment = self.source.payment(payment_id)
        customer_id, identifiers = self._owner(payment or {})
        if not customer_id:
            self._skip(b, f"its payment {payment_id[:40]} names no customer Dodo could give: not counted")
            return None
        at = to_unix_seconds(item.get("created_at")) or 0
        ledger = self._count(
            customer_id, REFUNDED_PREFIX + b.object_id, lambda led: led.with_refund(amount, currency), at
        )
        return None if ledger is None else (customer_id, _Customer(ledger, identifiers))

    def _subscription(self, item: Mapping[str, Any], b: Built, now: int) -> tuple[str, _Customer] | None:
        try:
            sub = parse_subscription(item)
        except PayloadError:
            return None  # the builder reported it already
        if self.profile_status:  # the summary says the person's status (most alive subscription)
            for op in b.ops:
                if op.get(STATE) == SUBSCRIPTION_STATE:
                    op["attributes"].pop(SUBSCRIPTION_STATUS, None)
        entry = subscription_entry(sub, now)
        customer_id, identifiers = self._owner(item)
        if not customer_id:
            return None
        ledger = self._count(customer_id, None, lambda led: led.with_subscription(sub.subscription_id, entry), now)
        return None if ledger is None else (customer_id, _Customer(ledger, identifiers))

    # -- the ledger ----------------------------------------------------------------------------------

    def _count(
        self, customer_id: str, marker: str | None, change: Callable[[Ledger], Ledger], at: int
    ) -> Ledger | None:
        """The customer's new ledger, or None when nothing changed (counted before, or no news)."""
        for _ in range(ROUNDS):
            old = self._read(customer_id)
            stored = Ledger.loads(old)
            ledger = change(stored)
            if marker is None and ledger.same_as(stored):
                return None
            ledger = ledger.stamped(at)
            if self.dry_run:
                self._preview[customer_id] = ledger.dumps()
                self.counts.counted += marker is not None
                return ledger
            try:
                write = LedgerWrite(customer_id, old, ledger.dumps(), marker)
                self.table.write_ledger(write, piece=SUMMARY_STATE, stamp=ledger.stamp)
            except LedgerConflict as exc:
                if exc.counted:
                    self.counts.already += 1
                    return None
                continue  # a webhook changed the ledger meanwhile
            except StateRejected as exc:
                raise BackfillError(f"the state table refused the ledger of {customer_id[:40]}: {exc}") from None
            except StateUnavailable as exc:
                raise BackfillError(f"the state table is unavailable ({exc})", code=EXIT_INCOMPLETE) from None
            self.counts.counted += marker is not None
            return ledger
        raise BackfillError(f"the ledger of {customer_id[:40]} kept changing; run again", code=EXIT_INCOMPLETE)

    def _read(self, customer_id: str) -> str | None:
        if customer_id in self._preview:
            return self._preview[customer_id]
        try:
            return self.table.read_ledger(customer_id)
        except StateRejected:
            return None
        except StateUnavailable as exc:
            raise BackfillError(f"the state table is unavailable ({exc})", code=EXIT_INCOMPLETE) from None

    # -- what Customer.io gets ---------------------------------------------------------------------------

    def _owner(self, item: Mapping[str, Any]) -> tuple[str | None, dict[str, str] | None]:
        customer = item.get("customer")
        customer = customer if isinstance(customer, Mapping) else {}
        customer_id = _text(customer.get("customer_id")) or _text(item.get("customer_id"))
        metadata = [m for m in (customer.get("metadata"), item.get("metadata")) if isinstance(m, Mapping)]
        identifiers = self.mapping.identifier.resolve(customer_id, _text(customer.get("email")), metadata)
        return customer_id, identifiers

    def _summary_op(self, customer_id: str, customer: _Customer) -> Op | None:
        if not (self.mapping.send_identify and self.mapping.send_summary) or not customer.identifiers:
            return None
        removed = self.mapping.removed_attributes.get("*", frozenset())
        attributes = customer.ledger.attributes(self.mapping.exponents, profile_status=self.profile_status)
        return {
            "type": "person",
            "identifiers": dict(customer.identifiers),
            "action": "identify",
            "timestamp": customer.ledger.stamp,
            "attributes": {k: v for k, v in attributes.items() if k not in removed},
            CUSTOMER_ID: customer_id,
            STATE: SUMMARY_STATE,
        }

    def _skip(self, b: Built, problem: str) -> None:
        """Not countable: reported with the object, the rest of the page goes on."""
        self.counts.skipped += 1
        b.problem = problem


def _amount(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
