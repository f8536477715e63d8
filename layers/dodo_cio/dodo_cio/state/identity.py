"""One Customer.io person per Dodo customer, whatever the payload names and whichever path sends it.

Payments, subscriptions and refunds carry the customer (id, email, name, metadata), so their ops
are addressed from the payload itself. Dunning, license key, credit, abandoned-checkout and
entitlement payloads carry only `customer_id`, and a dispute only its `payment_id`. Under the
`customer_id` strategy a customer id is enough; under `email` or `metadata:<key>` it is not, and
addressing `{"id": "cus_..."}` would create a second, empty person that no campaign can email.

So an op the payload cannot address is resolved, in this order, from
  1. what this webhook itself says (a payment's customer, seen in the same request);
  2. the directory in the state table (`dodo_cio.state.table`): what earlier webhooks said;
  3. Dodo's API (`GET /customers/{id}`, `GET /payments/{id}`), when the merchant stored a
     `dodo-api-key` in SSM; what it answers is written to the directory for next time.
An op still unresolved is never sent under a fallback identifier: it is parked like a failed
delivery ("config" when the bridge has no way to look it up, "transient" when a lookup failed) and
the retry path tries again, until the customer becomes known or the message reaches the DLQ with
the reason. This is the same code on the ingest path and the retry path. (`dodo-cio backfill`
reads every customer whole from Dodo's API, so its ops are addressed from the customer itself.)

Abandoned checkouts (`dodo_cio.mapping.mapper.checkout_ops`) ask two more things of the same sources:
  * `_contact`: under `customer_id` the person is addressed by the id alone, and a first-time
    customer's person would have no email for the recovery campaign to write to. The identify before
    the event gets the customer's email from the payload, the directory (the `email` the state
    table keeps under this strategy) or Dodo's API, in the same lookups and budget as identifiers.
    A lookup that failed for now (the table or the API unreachable, out of time) parks the identify
    and its event together, so the campaign never starts before the email is there. When no source
    can know it (no dodo-api-key stored, Dodo has none), both are sent without it, as before: the
    event still reaches its person, and `dodo-cio check` warns about the missing key.
  * `_recovery`: a checkout that reaches Customer.io after the customer's newest succeeded payment
    (`t#paid` in the directory, later than the checkout's event time) is sent under another name,
    `abandoned_checkout.followed_by_payment`, with `customer_paid_at`: a campaign triggered by
    `abandoned_checkout.detected` must not email someone who has bought since. It happens when the
    checkout could only be addressed once their first payment taught the directory who they are
    (`email` or `metadata:` without a dodo-api-key), or when Dodo delivered it late.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from dodo_cio.mapping.mapper import (
    CONTACT,
    CUSTOMER_ID,
    PAYMENT_ID,
    RECOVERY,
    IdentifierStrategy,
    MappingConfig,
    Op,
    payload_identifiers,
    wants_contact_email,
)
from dodo_cio.platform.deadline import current_at
from dodo_cio.receiving.models import Dispute, DodoEvent, Payment, Refund
from dodo_cio.state.table import Lookup, StateUnavailable

Kind = Literal["transient", "config", "permanent"]
# All of one call's lookups in Dodo's API share this many seconds, or less when the invocation's
# deadline (dodo_cio.platform.deadline, narrowed by the caller to keep time for what follows) comes first:
# a slow API must not take a webhook's answer past Dodo's 15 s, nor a retry batch past its
# function's timeout. What does not fit waits as "transient" and is looked up on a later attempt.
API_BUDGET_SECONDS: Final = 2.0
PAID_AT: Final = "customer_paid_at"  # on a checkout renamed because the customer paid after it
PAYMENT_SUCCEEDED: Final = "payment.succeeded"


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
    # For abandoned checkouts: customer id -> email (payload, directory or API; from the API also in
    # learned_emails), -> the newest succeeded payment's event time; whose directory record was read.
    emails: dict[str, str] = field(default_factory=dict)
    learned_emails: dict[str, str] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)


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
    email = _text(customer.email)
    if email and wants_contact_email(config):  # kept only where an abandoned checkout may need it
        known.emails[customer.customer_id] = email.strip()
    if isinstance(p, Payment) and event.type == PAYMENT_SUCCEEDED:
        known.paid[customer.customer_id] = event.envelope.timestamp
    return known


def needs_resolution(op: Mapping[str, Any]) -> bool:
    if op.get("action") == "merge":  # names both people itself
        return False
    if CONTACT in op or RECOVERY in op:
        return True
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
        clock: Callable[
            [], float
        ] = time.monotonic,  # the deadlines' clock (dodo_cio.platform.deadline); tests drive it
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
        unread = self._from_directory(pending, known, problems)
        self._from_dodo(pending, known, problems)
        ready: list[Op] = []
        unresolved: list[Unresolved] = []
        for op in ops:
            if not needs_resolution(op):
                ready.append(op)
                continue
            customer_id = op.get(CUSTOMER_ID) or known.payments.get(str(op.get(PAYMENT_ID)))
            identifiers = _addressed(op) or self._identifiers(customer_id, known)
            if identifiers is None:
                ref = customer_id or str(op.get(PAYMENT_ID))
                kind, why = problems.get(ref, ("config", f"no {self._wanted()} known for {ref}"))
                unresolved.append(Unresolved(op, kind, why))
                continue
            customer = customer_id if isinstance(customer_id, str) else ""  # "": a transform's own op
            waiting = self._waiting(op, customer, known, problems, unread)
            if waiting is not None:
                unresolved.append(Unresolved(op, "transient", waiting))
                continue
            if customer:
                op[CUSTOMER_ID] = customer
            if op.get("type") == "object":
                op["cio_relationships"] = [{"identifiers": dict(identifiers)}]
            else:
                op["identifiers"] = dict(identifiers)
            _give_contact(op, known.emails.get(customer))
            _check_recovery(op, known.paid.get(customer))
            ready.append(op)
        return ready, unresolved

    def _waiting(
        self, op: Op, customer_id: str, known: Known, problems: dict[str, tuple[Kind, str]], unread: str | None
    ) -> str | None:
        """Why an addressed op must still wait (a lookup failed for now), or None when it can go.

        A contact no source can know (no key, Dodo has no email) does not wait: nothing would change.
        """
        if CONTACT in op and customer_id not in known.emails:
            kind, why = problems.get(customer_id, ("config", ""))
            if kind == "transient":
                return why
        if RECOVERY in op and unread is not None and customer_id not in known.read:
            return unread  # whether they paid since cannot be told now: better late than to a buyer
        return None

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
        """Customers whose identifiers (or, for a contact op, email) are unknown; payments whose customer is."""
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
            if not isinstance(customer_id, str):
                continue
            unaddressed = not _addressed(op) and self._identifiers(customer_id, known) is None
            if unaddressed or (CONTACT in op and customer_id not in known.emails):
                customers.add(customer_id)
        return customers, payments

    def _from_directory(self, pending: list[Op], known: Known, problems: dict[str, tuple[Kind, str]]) -> str | None:
        """Read what the directory knows into `known`; why it could not be read, or None."""
        customers, payments = self._missing(pending, known)
        # A checkout's recovery check needs the customer's record even when nothing else is missing.
        customers |= {c for op in pending if RECOVERY in op and isinstance(c := op.get(CUSTOMER_ID), str)}
        customers -= known.read
        if self._directory is None or not (customers or payments):
            return None
        try:
            found = self._directory.lookup(customers, payments)
        except StateUnavailable as exc:
            why = f"state table unreachable for the identity lookup ({exc})"
            for ref in customers | payments:
                problems[ref] = ("transient", why)
            return why
        for payment_id, customer_id in found.payments.items():
            known.payments.setdefault(payment_id, customer_id)
        for customer_id, identifiers in found.customers.items():
            known.customers.setdefault(customer_id, dict(identifiers))
        for customer_id, email in found.emails.items():
            known.emails.setdefault(customer_id, email)
        for customer_id, at in found.paid.items():
            known.paid[customer_id] = max(at, known.paid.get(customer_id, at))
        known.read |= customers | set(found.payments.values())
        return None

    def _from_dodo(self, pending: list[Op], known: Known, problems: dict[str, tuple[Kind, str]]) -> None:
        customers, payments = self._missing(pending, known)
        if not (customers or payments):
            return
        contacts = {c for op in pending if CONTACT in op and isinstance(c := op.get(CUSTOMER_ID), str)}
        api = self._dodo() if self._dodo is not None else None
        if api is None:
            for ref in customers | payments:
                problems.setdefault(
                    ref,
                    ("config", f"{ref} not seen before and no dodo-api-key in SSM to look it up"),
                )
            return
        from dodo_cio.state.dodo_api import DodoApiConfigError, DodoApiError, DodoApiUnavailable  # noqa: PLC0415

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
            email = _text(customer.get("email"))
            if customer_id in contacts:
                if email:
                    known.emails[customer_id] = known.learned_emails[customer_id] = email.strip()
                else:
                    problems[customer_id] = ("config", f"Dodo has no email for {customer_id}")
            metadata = customer.get("metadata")
            identifiers = self.strategy.resolve(customer_id, email, [metadata] if isinstance(metadata, dict) else [])
            if identifiers is None:
                problems[customer_id] = ("config", f"Dodo has no {self._wanted()} for {customer_id}")
                problems.setdefault(ref, problems[customer_id])
                continue
            known.customers[customer_id] = identifiers
            known.learned[customer_id] = identifiers


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def readdress(op: Op, identifiers: Mapping[str, str]) -> None:
    """Point an op at the person the directory says is current (a person op's identifiers, an
    object's relationship); a merge names its people itself and is left alone."""
    if op.get("action") == "merge":
        return
    if op.get("type") == "object":
        if op.get("cio_relationships"):
            op["cio_relationships"] = [{"identifiers": dict(identifiers)}]
    elif op.get("identifiers"):
        op["identifiers"] = dict(identifiers)


def _addressed(op: Mapping[str, Any]) -> dict[str, str] | None:
    """The identifiers a person op already carries (from its payload); None for an object op."""
    identifiers = op.get("identifiers")
    if op.get("type", "person") != "person" or not isinstance(identifiers, dict) or not identifiers:
        return None
    return {str(k): str(v) for k, v in identifiers.items()}


def _give_contact(op: Op, email: str | None) -> None:
    """A contact op resolved: an identify carries the email when one is known (else nothing changes)."""
    if op.pop(CONTACT, None) is not None and email and op.get("action") == "identify":
        op["attributes"] = {**op.get("attributes", {}), "email": email}


def _check_recovery(op: Op, paid_at: int | None) -> None:
    """An abandoned checkout reaching its person after the customer paid is renamed, not a recovery trigger."""
    late_name = op.pop(RECOVERY, None)
    at = op.get("timestamp")
    if not isinstance(late_name, str) or not late_name or paid_at is None or not isinstance(at, int):
        return
    if paid_at > at and op.get("action") == "event":
        op["name"] = late_name
        op["attributes"] = {**op.get("attributes", {}), PAID_AT: paid_at}
