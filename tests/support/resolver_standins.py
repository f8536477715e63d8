"""Stand-ins for what dodo_cio.state.identity.Resolver reads: the state table's directory and Dodo's API."""

from __future__ import annotations

from typing import Any

from dodo_cio.state.table import Lookup, StateUnavailable


class Directory:
    """The state table's directory; records every lookup as (customer ids, payment ids)."""

    def __init__(
        self,
        customers: dict[str, dict[str, str]] | None = None,
        payments: dict[str, str] | None = None,
        *,
        emails: dict[str, str] | None = None,
        paid: dict[str, int] | None = None,
    ) -> None:
        self.customers, self.payments = customers or {}, payments or {}
        self.emails, self.paid = emails or {}, paid or {}
        self.calls: list[tuple[set[str], set[str]]] = []

    def lookup(self, customer_ids: Any, payment_ids: Any) -> Lookup:
        self.calls.append((set(customer_ids), set(payment_ids)))
        payments = {p: c for p, c in self.payments.items() if p in set(payment_ids)}
        wanted = set(customer_ids) | set(payments.values())

        def mine(known: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in known.items() if k in wanted}

        return Lookup(mine(self.customers), payments, mine(self.emails), mine(self.paid))


class Broken:
    def lookup(self, customer_ids: Any, payment_ids: Any) -> Lookup:
        raise StateUnavailable("ProvisionedThroughputExceededException")


class Dodo:
    """Dodo's API: objects by id, or `fail` raised; records what it was asked, by when. Without `payments`
    a payment lookup is a test failure."""

    def __init__(
        self,
        customers: dict[str, Any] | None = None,
        payments: dict[str, Any] | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.customers = customers or {}
        self.payments = payments
        self.fail = fail
        self.asked: list[str] = []
        self.deadlines: list[float] = []

    def customer(self, customer_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        return self._look_up(self.customers, customer_id, deadline)

    def payment(self, payment_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        assert self.payments is not None, "no payment lookup expected"
        return self._look_up(self.payments, payment_id, deadline)

    def _look_up(self, known: dict[str, Any], object_id: str, deadline: float | None) -> dict[str, Any] | None:
        assert deadline is not None, "every lookup runs to the resolver's budget"
        self.asked.append(object_id)
        self.deadlines.append(deadline)
        if self.fail:
            raise self.fail
        return known.get(object_id)
