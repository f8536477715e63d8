"""One Customer.io person per Dodo customer, whatever the payload names and whichever path sends it.

Payments, subscriptions and refunds carry the customer (id, email, name, metadata), so their ops
are addressed from the payload itself. Dunning, license key, credit, abandoned-checkout and
entitlement payloads carry only `customer_id`, and a dispute only its `payment_id`. Under the
`customer_id` strategy a customer id is enough; under `email` or `metadata:<key>` it is not, and
addressing `{"id": "cus_..."}` would create a second, empty person that no campaign can email.

So an op the payload cannot address is resolved, in this order, from
  1. what this webhook itself says (a payment's customer, seen in the same request);
  2. the directory in the state table (`dodo_cio.state`): what earlier webhooks said;
  3. Dodo's API (`GET /customers/{id}`, `GET /payments/{id}`), when the merchant stored a
     `dodo-api-key` in SSM; what it answers is written to the directory for next time.
An op still unresolved is never sent under a fallback identifier: it is parked like a failed
delivery ("config" when the bridge has no way to look it up, "transient" when a lookup failed) and
the retry path tries again, until the customer becomes known or the message reaches the DLQ with
the reason. This is the same code on the ingest path and the retry path. (`dodo-cio backfill`
reads every customer whole from Dodo's API, so its ops are addressed from the customer itself.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from dodo_cio.deadline import current_at
from dodo_cio.mapping import CUSTOMER_ID, PAYMENT_ID, IdentifierStrategy, MappingConfig, Op, payload_identifiers
from dodo_cio.models import Dispute, DodoEvent, Payment, Refund
from dodo_cio.state import Lookup, StateUnavailable

Kind = Literal["transient", "config", "permanent"]
# All of one call's lookups in Dodo's API share this many seconds, or less when the invocation's
# deadline (dodo_cio.deadline, narrowed by the caller to keep time for what follows) comes first:
# a slow API must not take a webhook's answer past Dodo's 15 s, nor a retry batch past its
# function's timeout. What does not fit waits as "transient" and is looked up on a later attempt.
API_BUDGET_SECONDS: Final = 2.0


class DirectoryReader(Protocol):
    def lookup(self, customer_ids: Iterable[str], payment_ids: Iterable[str]) -> Lookup: ...


class DodoLookup(Protocol):
    def customer(self, customer_id: str, *, deadline: float | None = None) -> dict[str, Any] | None: ...
    def payment(self, payment_id: str, *, deadline: float | None = None) -> dict[str, Any] | None: ...


@dataclass
class Known:
    """Identities known so far: customer id -> identifiers, payment id -> customer id."""

    customers: dict[str, dict[str, str]] = field(default_factory=dict)
    payments: dict[str, str] = field(default_factory=dict)
    # What came from Dodo's API (not the payload, not the directory): worth writing to the directory.
    learned: dict[str, dict[str, str]] = field(default_factory=dict)
    learned_payments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unresolved:
    op: Op
    kind: Kind
    reason: str


def event_facts(event: DodoEvent, config: MappingConfig) -> Known:
    """What one webhook teaches the directory: its customer's identifiers and its payment's customer."""
    known = Known()
    p = event.payload
    customer = getattr(p, "customer", None)
    if customer is None:
        return known
    identifiers = payload_identifiers(event, config)
    if identifiers:
        known.customers[customer.customer_id] = identifiers
    if isinstance(p, Payment | Refund | Dispute):
        known.payments[p.payment_id] = customer.customer_id
    return known


def needs_resolution(op: Mapping[str, Any]) -> bool:
    if op.get("type") == "object":
        return not op.get("cio_relationships") and bool(op.get(CUSTOMER_ID) or op.get(PAYMENT_ID))
    return not op.get("identifiers")


class Resolver:
    """Fills in the identifiers of ops that lack them; see the module docstring for the order."""

    def __init__(
        self,
        strategy: IdentifierStrategy,
        directory: DirectoryReader | None = None,
        dodo: Callable[[], DodoLookup | None] | None = None,
        *,
        api_budget: float = API_BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,  # the deadlines' clock (dodo_cio.deadline); tests drive it
    ) -> None:
        self.strategy = strategy
        self._directory = directory
        self._dodo = dodo
        self._api_budget = api_budget
        self._clock = clock

    def resolve(self, ops: list[Op], known: Known) -> tuple[list[Op], list[Unresolved]]:
        pending = [op for op in ops if needs_resolution(op)]
        if not pending:
            return ops, []
        problems: dict[str, tuple[Kind, str]] = {}  # customer or payment id -> why it is unknown
        self._from_directory(pending, known, problems)
        self._from_dodo(pending, known, problems)
        ready: list[Op] = []
        unresolved: list[Unresolved] = []
        for op in ops:
            if not needs_resolution(op):
                ready.append(op)
                continue
            customer_id = op.get(CUSTOMER_ID) or known.payments.get(str(op.get(PAYMENT_ID)))
            identifiers = self._identifiers(customer_id, known)
            if identifiers is None:
                ref = customer_id or str(op.get(PAYMENT_ID))
                kind, why = problems.get(ref, ("config", f"no {self._wanted()} known for {ref}"))
                unresolved.append(Unresolved(op, kind, why))
                continue
            op[CUSTOMER_ID] = customer_id
            if op.get("type") == "object":
                op["cio_relationships"] = [{"identifiers": dict(identifiers)}]
            else:
                op["identifiers"] = dict(identifiers)
            ready.append(op)
        return ready, unresolved

    # -- sources --------------------------------------------------------------------------------

    def _identifiers(self, customer_id: Any, known: Known) -> dict[str, str] | None:
        if not isinstance(customer_id, str) or not customer_id:
            return None
        if self.strategy.kind == "customer_id":
            return {"id": customer_id}
        return known.customers.get(customer_id)

    def _wanted(self) -> str:
        return "email" if self.strategy.kind == "email" else f"metadata key {self.strategy.metadata_key!r}"

    def _missing(self, pending: list[Op], known: Known) -> tuple[set[str], set[str]]:
        customers: set[str] = set()
        payments: set[str] = set()
        for op in pending:
            customer_id = op.get(CUSTOMER_ID)
            payment_id = op.get(PAYMENT_ID)
            if not customer_id and isinstance(payment_id, str):
                customer_id = known.payments.get(payment_id)
                if customer_id is None:
                    payments.add(payment_id)
                    continue
            if isinstance(customer_id, str) and self._identifiers(customer_id, known) is None:
                customers.add(customer_id)
        return customers, payments

    def _from_directory(self, pending: list[Op], known: Known, problems: dict[str, tuple[Kind, str]]) -> None:
        customers, payments = self._missing(pending, known)
        if self._directory is None or not (customers or payments):
            return
        try:
            found = self._directory.lookup(customers, payments)
        except StateUnavailable as exc:
            for ref in customers | payments:
                problems[ref] = ("transient", f"state table unreachable for the identity lookup ({exc})")
            return
        for payment_id, customer_id in found.payments.items():
            known.payments.setdefault(payment_id, customer_id)
        for customer_id, identifiers in found.customers.items():
            known.customers.setdefault(customer_id, dict(identifiers))

    def _from_dodo(self, pending: list[Op], known: Known, problems: dict[str, tuple[Kind, str]]) -> None:
        customers, payments = self._missing(pending, known)
        if not (customers or payments):
            return
        api = self._dodo() if self._dodo is not None else None
        if api is None:
            for ref in customers | payments:
                problems.setdefault(
                    ref,
                    ("config", f"{ref} not seen before and no dodo-api-key in SSM to look it up"),
                )
            return
        from dodo_cio.dodo_api import DodoApiConfigError, DodoApiError, DodoApiUnavailable  # noqa: PLC0415

        deadline = self._clock() + self._api_budget
        invocation = current_at()
        if invocation is not None:
            deadline = min(deadline, invocation)
        for ref in sorted(payments) + sorted(customers):
            try:
                if ref in payments:
                    payment = api.payment(ref, deadline=deadline)
                    customer = payment.get("customer") if payment else None
                else:
                    customer = api.customer(ref, deadline=deadline)
            except DodoApiConfigError as exc:
                problems[ref] = ("config", f"Dodo API refused the lookup of {ref}: {exc}")
                continue
            except DodoApiUnavailable as exc:
                problems[ref] = ("transient", f"Dodo API unavailable for the lookup of {ref}: {exc}")
                continue
            except DodoApiError as exc:
                problems[ref] = ("config", f"Dodo API answered the lookup of {ref} unexpectedly: {exc}")
                continue
            if not isinstance(customer, dict) or not isinstance(customer.get("customer_id"), str):
                problems[ref] = ("config", f"Dodo API does not know {ref} (is the key for the other mode?)")
                continue
            customer_id = customer["customer_id"]
            if ref in payments:
                known.payments[ref] = known.learned_payments[ref] = customer_id
            metadata = customer.get("metadata")
            identifiers = self.strategy.resolve(
                customer_id, _text(customer.get("email")), [metadata] if isinstance(metadata, dict) else []
            )
            if identifiers is None:
                problems[customer_id] = ("config", f"Dodo has no {self._wanted()} for {customer_id}")
                problems.setdefault(ref, problems[customer_id])
                continue
            known.customers[customer_id] = identifiers
            known.learned[customer_id] = identifiers


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
