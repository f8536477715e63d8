"""The per-customer state records on moto's DynamoDB: per-piece freshness, the directory, the transaction, and
what abandoned checkouts read (the email under customer_id, `t#paid`)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

import dodo_cio.state.table
from dodo_cio.state.table import ExtraItemFailed, StatePlan, StateRejected, StateTable, customer_key, plan_for
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
    from dodo_cio.delivery.parking import LastError, ParkedDelivery
    from dodo_cio.delivery.track import DeliveryResult, OpResult
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


# -- issue 16: what DynamoDB refuses as it is is permanent, never "the table is unavailable" ---------

LONG = "c" * 2100  # with its prefix, over DynamoDB's 2,048-byte key limit


def test_a_key_that_cannot_exist_is_not_looked_up_and_the_rest_are(table: StateTable) -> None:
    table.commit(plan_for([identify("customer", 1)], customers={"cus_1": {"email": "a@example.com"}}))
    found = table.lookup(["cus_1", LONG], [LONG])  # one oversized key would fail the whole BatchGetItem
    assert found.customers == {"cus_1": {"email": "a@example.com"}} and found.payments == {}


@pytest.mark.parametrize(
    "plan",
    [
        plan_for([identify("customer", 1, customer=LONG)]),
        plan_for([], payments={LONG: "cus_1"}),
    ],
    ids=["customer key", "payment key"],
)
def test_a_plan_dynamodb_would_refuse_is_rejected_before_any_call(table: StateTable, plan: StatePlan) -> None:
    calls: list[str] = []
    table._client = type("NoCalls", (), {"__getattr__": lambda self, name: calls.append(name)})()
    with pytest.raises(StateRejected, match="2048-byte key limit"):
        table.commit(plan)
    assert calls == []


def test_a_retry_batch_dead_letters_only_the_op_whose_record_is_refused(
    table: StateTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One refused record must not send the other messages of the batch to the dead-letter queue."""
    from dodo_cio.delivery.parking import LastError, ParkedDelivery
    from dodo_cio.delivery.track import DeliveryResult, OpResult
    from dodo_cio.retry.service import RetryProcessor
    from dodo_cio.retry.verdicts import SqsRecord
    from support.fake_sqs import FakeSqs

    class Sender:
        def send(self, ops: Any) -> DeliveryResult:
            return DeliveryResult(tuple(OpResult("delivered") for _ in ops), 200)

    def parked(tag: str, customer: str) -> SqsRecord:
        op = {**identify("customer", 100, customer), "identifiers": {"email": f"{tag}@example.com"}, "attributes": {}}
        body = ParkedDelivery(f"msg_{tag}", "payment.succeeded", 100, 100, 1, [op], LastError("transient", "503"))
        return SqsRecord(f"m_{tag}", f"rh_{tag}", body.to_json(), 1)

    import dodo_cio.retry.service

    for measured in (True, False):  # caught by the size check, then by DynamoDB's own refusal
        if not measured:
            monkeypatch.setattr(dodo_cio.retry.service, "claim_problem", lambda op: None)
            monkeypatch.setattr(dodo_cio.state.table, "plan_problem", lambda plan: None)
        sqs = FakeSqs()
        processor = RetryProcessor(sqs=sqs, retry_queue_url="q", dead_letter_queue_url="dlq", state=table)
        outcomes = processor.process([parked("good", f"cus_{measured}"), parked("long", LONG)], Sender())
        assert [o.verdict for o in outcomes] == ["delivered", "dead_letter"], measured
        expected = "2048-byte key limit" if measured else "DynamoDB refused the request"
        assert "state record" in outcomes[1].reason and expected in outcomes[1].reason, outcomes[1].reason


def test_a_cancellation_the_table_cannot_explain_is_unavailable_never_success(
    table: StateTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken on purpose: the identity guard cancels the write (another address is stored) and the note that
    explains it is taken away. With no stale piece and nothing renamed, the commit must not report success."""
    from dodo_cio.state.table import StateUnavailable

    table.commit(plan_for([identify("customer", 100)], customers={"cus_1": {"email": "a@example.com"}}))
    newer = plan_for([identify("customer", 200)], customers={"cus_1": {"email": "b@example.com"}}, guard=True)
    monkeypatch.setattr(StateTable, "_note_identities", staticmethod(lambda *args: False))
    with pytest.raises(StateUnavailable, match="transaction cancelled"):
        table.commit(newer)
    assert not newer.committed
    monkeypatch.undo()
    table.commit(newer)  # as it runs: the other address is noted and the write goes again
    assert newer.committed
    assert table.lookup(["cus_1"], []).customers == {"cus_1": {"email": "b@example.com"}}


# -- what abandoned checkouts read ---------------------------------------------------------------------


@pytest.fixture
def checkout_table(table: StateTable) -> StateTable:
    """The same table under the customer_id identifier."""
    return StateTable(table.table_name, lambda: boto3.client("dynamodb"), ident="ident:customer_id")


def test_the_email_follows_the_newest_customer_piece_and_a_lookup_never_overwrites_it(
    checkout_table: StateTable,
) -> None:
    table = checkout_table
    table.commit(plan_for([identify("customer", 100)], emails={"cus_1": "new@example.com"}))
    table.commit(plan_for([identify("customer", 50)], emails={"cus_1": "old@example.com"}))  # an older webhook
    table.commit(plan_for([], learned_emails={"cus_1": "api@example.com"}))
    assert table.lookup(["cus_1"], []).emails == {"cus_1": "new@example.com"}
    # A customer only Dodo's API told us about: the lookup's email is kept for the next checkout.
    table.commit(plan_for([], learned_emails={"cus_2": "api@example.com"}))
    assert table.lookup(["cus_2"], []).emails == {"cus_2": "api@example.com"}


def test_paid_keeps_the_newest_payment_even_when_an_older_one_arrives_later(checkout_table: StateTable) -> None:
    table = checkout_table
    assert table.commit(plan_for([identify("customer", 200)], paid={"cus_1": 200})) == set()
    # An older payment delivered late: its t#paid is stale (one more round), its own piece still written.
    stale = table.commit(plan_for([identify("customer", 300)], paid={"cus_1": 150}))
    assert stale == {(customer_key("cus_1"), dodo_cio.state.table.PAID_PIECE)}
    found = table.lookup(["cus_1", "cus_never_paid"], [])
    assert found.paid == {"cus_1": 200}
    assert table.commit(plan_for([identify("customer", 150)])) == {(customer_key("cus_1"), "customer")}  # moved to 300
