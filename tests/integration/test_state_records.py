"""The per-customer state records on moto's DynamoDB: per-piece freshness, the directory, the transaction."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from dodo_cio.state import ExtraItemFailed, StatePlan, StateTable, customer_key, plan_for
from support.aws import create_state_table


@pytest.fixture
def table(aws_env: None) -> StateTable:
    name = create_state_table(boto3.client("dynamodb"))
    return StateTable(name, lambda: boto3.client("dynamodb"), ident="ident:email")


def identify(piece: str, ts: int, customer: str = "cus_1") -> dict[str, Any]:
    return {"type": "person", "action": "identify", "timestamp": ts, "_state": piece, "_customer_id": customer}


def test_pieces_move_forward_independently(table: StateTable) -> None:
    table.commit(plan_for([identify("customer", 101), identify("subscription", 100)]))
    # A renewal's subscription update stamped before the payment that was applied: still fresh.
    later = plan_for([identify("subscription", 100), identify("customer", 100)])
    assert table.commit(later) == {(customer_key("cus_1"), "customer")}
    assert later.stale == {(customer_key("cus_1"), "customer")}
    # The fresh piece was written although its sibling was stale.
    again = plan_for([identify("subscription", 99)])
    assert table.commit(again) == {(customer_key("cus_1"), "subscription")}


def test_equal_times_are_admitted(table: StateTable) -> None:
    table.commit(plan_for([identify("customer", 100)]))
    assert table.commit(plan_for([identify("customer", 100)])) == set()


def test_directory_written_with_the_customer_piece_and_read_back(table: StateTable) -> None:
    plan = plan_for(
        [identify("customer", 100)],
        customers={"cus_1": {"email": "new@example.com"}},
        payments={"pay_1": "cus_1"},
    )
    table.commit(plan)
    # An older webhook does not bring back an old address: its customer piece is stale.
    table.commit(plan_for([identify("customer", 50)], customers={"cus_1": {"email": "old@example.com"}}))
    found = table.lookup(["cus_1"], ["pay_1", "pay_unknown"])
    assert found.customers == {"cus_1": {"email": "new@example.com"}}
    assert found.payments == {"pay_1": "cus_1"}


def test_learned_identifiers_never_overwrite_stated_ones(table: StateTable) -> None:
    table.commit(plan_for([identify("customer", 100)], customers={"cus_1": {"email": "a@example.com"}}))
    table.commit(plan_for([], learned={"cus_1": {"email": "b@example.com"}}))
    assert table.lookup(["cus_1"], []).customers == {"cus_1": {"email": "a@example.com"}}


def test_a_failed_extra_item_writes_nothing(table: StateTable) -> None:
    taken = {
        "Put": {
            "TableName": table.table_name,
            "Item": {"id": {"S": "idem#1"}},
            "ConditionExpression": "attribute_not_exists(id)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    table.commit(StatePlan(), [taken])
    with pytest.raises(ExtraItemFailed):
        table.commit(plan_for([identify("customer", 100)]), [taken])
    # The piece was not moved: an older update is still admitted.
    assert table.commit(plan_for([identify("customer", 1)])) == set()


def test_in_one_retry_batch_only_the_newest_update_of_a_piece_is_sent(table: StateTable) -> None:
    """Two parked updates of one subscription drained together: the older counts as done, unsent."""
    from dodo_cio.customerio import DeliveryResult, OpResult
    from dodo_cio.parking import LastError, ParkedDelivery
    from dodo_cio.retry.service import RetryProcessor
    from dodo_cio.retry.verdicts import SqsRecord

    sent: list[dict[str, Any]] = []

    class Sender:
        def send(self, ops: Any) -> DeliveryResult:
            sent.extend(ops)
            return DeliveryResult(tuple(OpResult("delivered") for _ in ops), 200)

    def parked(ts: int, status: str) -> SqsRecord:
        op = {**identify("subscription", ts), "identifiers": {"id": "cus_1"}, "attributes": {"status": status}}
        body = ParkedDelivery(f"msg_{ts}", "subscription.updated", ts, ts, 1, [op], LastError("transient", "503"))
        return SqsRecord(f"m{ts}", f"rh{ts}", body.to_json(), 1)

    processor = RetryProcessor(sqs=None, retry_queue_url="q", dead_letter_queue_url="dlq", state=table)  # type: ignore[arg-type]
    outcomes = processor.process([parked(200, "on_hold"), parked(100, "active")], Sender())
    assert [o.verdict for o in outcomes] == ["delivered", "delivered"]
    assert [op["attributes"]["status"] for op in sent] == ["on_hold"]
