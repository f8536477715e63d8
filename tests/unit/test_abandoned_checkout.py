"""Abandoned checkouts reach a person who can be emailed, and never start a recovery email to a buyer.

The mapping (`dodo_cio.mapping.mapper.checkout_ops`) notes what an abandoned checkout needs; the resolver
(`dodo_cio.state.identity`) fills it in from the same sources and budget as identifiers: the payload, the
directory, Dodo's API. Under customer_id the identify before the event gets the customer's email;
under every strategy, a checkout that reaches its person after the customer's newest succeeded
payment is renamed `abandoned_checkout.followed_by_payment`.
"""

from __future__ import annotations

from typing import Any

import pytest

from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, Op, map_event
from dodo_cio.receiving.models import DodoEvent
from dodo_cio.state.dodo_api import DodoApiConfigError
from dodo_cio.state.identity import Known, Resolver, event_facts, needs_resolution
from dodo_cio.state.table import PAID_PIECE, customer_key, plan_for
from support.mapped_events import event_of
from support.resolver_standins import Broken, Directory, Dodo
from support.samples import load_sample

CUSTOMER = "cus_6MbWq2TzKn8RyH4dXc1Lp"  # the samples' customer
EMAIL = "maya@example.com"
ID = IdentifierStrategy()
BY_EMAIL = IdentifierStrategy.parse("email")


def checkout(config: MappingConfig | None = None, **data: Any) -> tuple[DodoEvent, list[Op]]:
    doc = load_sample("abandoned_checkout.detected.json")
    doc["data"].update(data)
    event = event_of(doc)
    return event, map_event(event, config or MappingConfig())


def dodo_customer(email: str | None = EMAIL) -> dict[str, Any]:
    return {"customer_id": CUSTOMER, "email": email, "name": "Maya", "metadata": {"app_user_id": "user-42"}}


def resolver(strategy: IdentifierStrategy, directory: Any = None, dodo: Dodo | None = None) -> Resolver:
    return Resolver(strategy, directory, (lambda: dodo) if dodo is not None else None)


# -- what the mapping asks for ---------------------------------------------------------------------


def test_under_customer_id_an_identify_before_the_event_waits_for_the_customers_email() -> None:
    _, ops = checkout()
    contact, event = ops
    assert (contact["action"], contact["_state"], contact["identifiers"]) == ("identify", "contact", {"id": CUSTOMER})
    assert contact["attributes"] == {"dodo_customer_id": CUSTOMER}  # no email yet: resolved
    assert contact["_contact"] == event["_contact"] == "email"  # the event waits with it
    assert event["name"] == "abandoned_checkout.detected"
    assert event["_recovery"] == "abandoned_checkout.followed_by_payment"
    assert all(needs_resolution(op) for op in ops)


def test_an_email_in_the_payload_is_used_as_it_is() -> None:
    _, ops = checkout(customer={"customer_id": CUSTOMER, "email": f" {EMAIL} "})
    contact, event = ops
    assert contact["attributes"] == {"dodo_customer_id": CUSTOMER, "email": EMAIL}
    assert "_contact" not in contact and "_contact" not in event
    assert "_recovery" in event  # the recovery check still reads the directory
    # Under `email` the payload's address addresses the checkout at once.
    _, (only,) = checkout(MappingConfig(identifier=BY_EMAIL), customer_email=EMAIL)
    assert only["identifiers"] == {"email": EMAIL}


@pytest.mark.parametrize(
    "config",
    [
        MappingConfig(identifier=BY_EMAIL),  # the email is the identifier
        MappingConfig(contact_fields="app"),  # the deployment leaves the email to the app
        MappingConfig(send_identify=False),
        MappingConfig(removed_attributes={"abandoned_checkout.detected": frozenset({"email"})}),
    ],
    ids=["email", "contact-app", "no-identify", "email-removed"],
)
def test_no_contact_identify_where_the_bridge_does_not_send_the_email(config: MappingConfig) -> None:
    _, ops = checkout(config)
    assert [op["action"] for op in ops] == ["event"]
    assert "_contact" not in ops[0] and ops[0]["_recovery"] == "abandoned_checkout.followed_by_payment"


def test_the_late_name_is_renameable_and_other_types_are_not_noted() -> None:
    config = MappingConfig(event_names={"abandoned_checkout.followed_by_payment": "checkout_after_purchase"})
    _, ops = checkout(config)
    assert ops[-1]["_recovery"] == "checkout_after_purchase"
    recovered = map_event(event_of(load_sample("abandoned_checkout.recovered.json")), MappingConfig())
    assert [op["action"] for op in recovered] == ["event"]
    assert not {"_contact", "_recovery"} & set(recovered[0])


def test_what_a_webhook_teaches_for_checkouts() -> None:
    paid = event_of(load_sample("payment.succeeded.json"))
    facts = event_facts(paid, MappingConfig())
    assert facts.emails == {"cus_2RfYk8HcWq5NzT1mLb9Xe": "maya.fernandes@example.com"}
    assert facts.paid == {"cus_2RfYk8HcWq5NzT1mLb9Xe": paid.envelope.timestamp}
    # The email is kept only where a checkout may need it; a failed payment is no purchase.
    assert event_facts(paid, MappingConfig(identifier=BY_EMAIL)).emails == {}
    assert event_facts(paid, MappingConfig(contact_fields="app")).emails == {}
    assert event_facts(event_of(load_sample("payment.failed.json")), MappingConfig()).paid == {}


# -- the email under customer_id -------------------------------------------------------------------


def test_a_directory_that_cannot_be_read_holds_the_event_since_a_payment_may_be_there() -> None:
    _, ops = checkout()
    ready, unresolved = resolver(ID, Broken(), Dodo({CUSTOMER: dodo_customer()})).resolve(ops, Known())
    assert [op["action"] for op in ready] == ["identify"] and ready[0]["attributes"]["email"] == EMAIL
    ((kind, op),) = [(u.kind, u.op) for u in unresolved]
    assert kind == "transient" and op["action"] == "event" and "_recovery" in op


@pytest.mark.parametrize(
    "dodo",
    [
        None,  # no dodo-api-key stored
        Dodo({CUSTOMER: dodo_customer(email=None)}),  # Dodo has no email for them
        Dodo(fail=DodoApiConfigError("401")),  # the key is refused
    ],
    ids=["no-key", "no-email", "key-refused"],
)
def test_an_email_no_source_can_know_does_not_hold_the_checkout(dodo: Dodo | None) -> None:
    _, ops = checkout()
    ready, unresolved = resolver(ID, Directory(), dodo).resolve(ops, Known())
    assert unresolved == []
    contact, event = ready
    assert contact["attributes"] == {"dodo_customer_id": CUSTOMER}  # as before: the person, no email
    assert event["name"] == "abandoned_checkout.detected" and "_contact" not in event


# -- the recovery check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paid_after", "renamed"),
    [(None, False), (-3600, False), (0, False), (1, True), (5 * 86400, True)],
    ids=["never-paid", "paid-before", "same-second", "paid-after", "paid-days-after"],
)
def test_a_checkout_the_customer_paid_after_is_renamed(paid_after: int | None, renamed: bool) -> None:
    detected, ops = checkout()
    at = detected.envelope.timestamp
    paid = {} if paid_after is None else {CUSTOMER: at + paid_after}
    ready, unresolved = resolver(ID, Directory(emails={CUSTOMER: EMAIL}, paid=paid)).resolve(ops, Known())
    assert unresolved == []
    event = ready[-1]
    if renamed:
        assert event["name"] == "abandoned_checkout.followed_by_payment"
        assert event["attributes"]["customer_paid_at"] == at + paid_after  # type: ignore[operator]
        assert event["attributes"]["abandonment_reason"] == "payment_failed"  # the checkout's own facts stay
    else:
        assert event["name"] == "abandoned_checkout.detected" and "customer_paid_at" not in event["attributes"]
    assert event["id"] == checkout()[1][-1]["id"]  # the same Customer.io event id either way


def test_without_a_state_table_there_is_nothing_to_check_and_nothing_waits() -> None:
    _, ops = checkout(MappingConfig(contact_fields="app"))
    ready, unresolved = resolver(ID).resolve(ops, Known())
    assert unresolved == [] and ready[0]["name"] == "abandoned_checkout.detected"


def test_a_payment_webhook_claims_the_paid_piece_newest_wins() -> None:
    plan = plan_for([], paid={CUSTOMER: 200})
    plan.claim(customer_key(CUSTOMER), PAID_PIECE, 100)  # an older payment in the same batch
    assert plan.records[customer_key(CUSTOMER)].pieces == {PAID_PIECE: 200}
    stated = plan_for(
        [{"type": "person", "action": "identify", "timestamp": 5, "_state": "customer", "_customer_id": CUSTOMER}],
        emails={CUSTOMER: EMAIL},
    )
    record = stated.records[customer_key(CUSTOMER)]
    assert record.email == EMAIL and record.learned_email is None  # newest wins with the customer piece
