"""What abandoned checkouts read from the state table (moto's DynamoDB): the email under customer_id, `t#paid`."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from dodo_cio.state.table import PAID_PIECE, StateTable, customer_key, plan_for
from support.aws import create_state_table


@pytest.fixture
def table(aws_env: None) -> StateTable:
    name = create_state_table(boto3.client("dynamodb"))
    return StateTable(name, lambda: boto3.client("dynamodb"), ident="ident:customer_id")


def customer_identify(ts: int, customer: str = "cus_1") -> dict[str, Any]:
    return {"type": "person", "action": "identify", "timestamp": ts, "_state": "customer", "_customer_id": customer}


def test_the_email_follows_the_newest_customer_piece_and_a_lookup_never_overwrites_it(table: StateTable) -> None:
    table.commit(plan_for([customer_identify(100)], emails={"cus_1": "new@example.com"}))
    table.commit(plan_for([customer_identify(50)], emails={"cus_1": "old@example.com"}))  # an older webhook
    table.commit(plan_for([], learned_emails={"cus_1": "api@example.com"}))
    assert table.lookup(["cus_1"], []).emails == {"cus_1": "new@example.com"}
    # A customer only Dodo's API told us about: the lookup's email is kept for the next checkout.
    table.commit(plan_for([], learned_emails={"cus_2": "api@example.com"}))
    assert table.lookup(["cus_2"], []).emails == {"cus_2": "api@example.com"}


def test_paid_keeps_the_newest_payment_even_when_an_older_one_arrives_later(table: StateTable) -> None:
    assert table.commit(plan_for([customer_identify(200)], paid={"cus_1": 200})) == set()
    # An older payment delivered late: its t#paid is stale (one more round), its own piece still written.
    stale = table.commit(plan_for([customer_identify(300)], paid={"cus_1": 150}))
    assert stale == {(customer_key("cus_1"), PAID_PIECE)}
    found = table.lookup(["cus_1", "cus_never_paid"], [])
    assert found.paid == {"cus_1": 200}
    assert table.commit(plan_for([customer_identify(150)])) == {(customer_key("cus_1"), "customer")}  # moved to 300
