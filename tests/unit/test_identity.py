"""Identity resolution (dodo_cio.state.identity): payload, then directory, then Dodo's API, else unresolved."""

from __future__ import annotations

from typing import Any

import pytest

from dodo_cio.mapping.mapper import IdentifierStrategy
from dodo_cio.state.dodo_api import DodoApiConfigError, DodoApiUnavailable
from dodo_cio.state.identity import Known, Resolver
from support.resolver_standins import Broken, Directory, Dodo

EMAIL = IdentifierStrategy.parse("email")


def dunning(customer_id: str = "cus_1") -> dict[str, Any]:
    return {"type": "person", "action": "event", "name": "dunning.started", "_customer_id": customer_id}


def dispute(payment_id: str = "pay_1") -> dict[str, Any]:
    return {"type": "person", "action": "event", "name": "dispute.opened", "_payment_id": payment_id}


def test_ops_the_payload_addressed_are_left_alone_and_nothing_is_read() -> None:
    directory = Directory()
    op = {**dunning(), "identifiers": {"email": "a@example.com"}}
    ready, unresolved = Resolver(EMAIL, directory).resolve([op], Known())
    assert ready == [op] and unresolved == [] and directory.calls == []


def test_customer_id_strategy_needs_no_lookup_except_for_a_payment() -> None:
    directory = Directory(payments={"pay_1": "cus_9"})
    ready, unresolved = Resolver(IdentifierStrategy(), directory).resolve([dunning(), dispute()], Known())
    assert unresolved == []
    assert [op["identifiers"] for op in ready] == [{"id": "cus_1"}, {"id": "cus_9"}]
    assert directory.calls == [(set(), {"pay_1"})]


def test_this_webhooks_facts_come_before_the_directory() -> None:
    directory = Directory()
    known = Known(customers={"cus_1": {"email": "a@example.com"}})
    ready, _ = Resolver(EMAIL, directory).resolve([dunning()], known)
    assert ready[0]["identifiers"] == {"email": "a@example.com"} and directory.calls == []


def test_subscription_object_gets_its_relationship() -> None:
    obj = {"type": "object", "identifiers": {"object_type_id": "1", "object_id": "sub_1"}, "action": "identify",
           "cio_relationships": [], "_customer_id": "cus_1"}  # fmt: skip
    directory = Directory({"cus_1": {"email": "a@example.com"}})
    (op,), _ = Resolver(EMAIL, directory).resolve([obj], Known())
    assert op["cio_relationships"] == [{"identifiers": {"email": "a@example.com"}}]
    assert op["identifiers"] == {"object_type_id": "1", "object_id": "sub_1"}


def test_unknown_without_an_api_key_is_a_config_wait_naming_the_customer() -> None:
    ready, (item,) = Resolver(EMAIL, Directory(), lambda: None).resolve([dunning()], Known())
    assert ready == [] and item.kind == "config"
    assert "cus_1" in item.reason and "dodo-api-key" in item.reason
    assert "identifiers" not in item.op


def test_dodo_api_resolves_a_payment_and_what_it_learned_is_kept() -> None:
    dodo = Dodo(payments={"pay_1": {"payment_id": "pay_1", "customer": {"customer_id": "cus_7", "email": "b@x.io"}}})
    known = Known()
    (op,), unresolved = Resolver(EMAIL, Directory(), lambda: dodo).resolve([dispute()], known)
    assert unresolved == [] and op["identifiers"] == {"email": "b@x.io"} and op["_customer_id"] == "cus_7"
    assert known.learned == {"cus_7": {"email": "b@x.io"}} and known.learned_payments == {"pay_1": "cus_7"}


@pytest.mark.parametrize(
    ("dodo", "kind", "words"),
    [
        (Dodo(), "config", "does not know"),  # 404: a key for the other mode, or a deleted customer
        (Dodo(customers={"cus_1": {"customer_id": "cus_1", "email": ""}}), "config", "has no email"),
        (Dodo(fail=DodoApiConfigError("HTTP 401")), "config", "refused"),
        (Dodo(fail=DodoApiUnavailable("timeout")), "transient", "unavailable"),
    ],
)
def test_dodo_api_failures_leave_the_op_waiting_with_a_reason(dodo: Dodo, kind: str, words: str) -> None:
    ready, (item,) = Resolver(EMAIL, Directory(), lambda: dodo).resolve([dunning()], Known())
    assert ready == [] and item.kind == kind and words in item.reason, item.reason


def test_unreachable_directory_falls_through_to_the_api_or_waits_as_transient() -> None:
    dodo = Dodo(customers={"cus_1": {"customer_id": "cus_1", "email": "d@x.io"}})
    (op,), _ = Resolver(EMAIL, Broken(), lambda: dodo).resolve([dunning()], Known())
    assert op["identifiers"] == {"email": "d@x.io"}
    _, (item,) = Resolver(EMAIL, Broken(), lambda: None).resolve([dunning()], Known())
    assert item.kind == "transient" and "state table" in item.reason


def test_lookups_share_one_budget() -> None:
    """One deadline for every lookup of a resolve; DodoApi sends nothing past it (test_dodo_api_server) and
    what it did not send waits as transient (test_dodo_api_failures_leave_the_op_waiting_with_a_reason)."""
    dodo = Dodo()
    Resolver(EMAIL, Directory(), lambda: dodo, api_budget=0.25).resolve([dunning("cus_1"), dunning("cus_2")], Known())
    first, second = dodo.deadlines
    assert first == second
