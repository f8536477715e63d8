"""The duplicate check on its own: the records it reads and writes, on moto's DynamoDB (in-process)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dodo_cio.receiving.http_api import HttpResponse
from dodo_cio.state.idempotency import RECORD_OWNER, WebhookDeduplicator
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_template import read_template

TABLE = "dedupe-test"
DELIVERED = HttpResponse(200, {"status": "delivered"})


class Work:
    """A webhook's processing: counts its runs and answers what it is told."""

    def __init__(self, answer: HttpResponse = DELIVERED) -> None:
        self.answer = answer
        self.runs = 0

    def __call__(self) -> HttpResponse:
        self.runs += 1
        return self.answer


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ingest-fn")
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_table(TableName=TABLE, **read_template().state_table)
        yield client


def _record(client: Any, key: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = client.get_item(TableName=TABLE, Key={"id": {"S": key}}).get("Item")
    return item


def test_the_key_is_the_one_powertools_idempotency_gave_the_same_webhook(dynamodb: Any) -> None:
    """Records written before the upgrade must still be found: a deploy would otherwise forget 72 h of webhooks."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

    powertools = DynamoDBPersistenceLayer(table_name=TABLE, boto3_client=dynamodb)
    powertools.configure(IdempotencyConfig(event_key_jmespath="webhook_id"), function_name=RECORD_OWNER)
    expected = powertools._get_hashed_idempotency_key({"webhook_id": "msg_2Kx7"})
    assert WebhookDeduplicator(TABLE, boto3_client=dynamodb).key("msg_2Kx7") == expected


def test_the_first_delivery_runs_and_a_redelivery_gets_its_answer(dynamodb: Any) -> None:
    dedupe, work = WebhookDeduplicator(TABLE, boto3_client=dynamodb), Work()
    assert dedupe("msg_1", work) == DELIVERED
    assert dedupe("msg_1", Work(HttpResponse(202, {"status": "queued"}))) == DELIVERED
    assert work.runs == 1
    record = _record(dynamodb, dedupe.key("msg_1"))
    assert record is not None and record["status"]["S"] == "COMPLETED"
    assert json.loads(record["data"]["S"]) == {"status": 200, "body": {"status": "delivered"}}


def test_a_record_written_by_powertools_is_replayed(dynamodb: Any) -> None:
    dedupe, work = WebhookDeduplicator(TABLE, boto3_client=dynamodb), Work()
    answer = json.dumps({"status": 202, "body": {"status": "queued"}}, sort_keys=True)
    item = {
        "id": {"S": dedupe.key("msg_old")},
        "expiration": {"N": str(int(time.time()) + 3600)},
        "status": {"S": "COMPLETED"},
        "data": {"S": answer},
    }
    dynamodb.put_item(TableName=TABLE, Item=item)
    assert dedupe("msg_old", work) == HttpResponse(202, {"status": "queued"})
    assert work.runs == 0


def test_a_webhook_still_in_progress_is_answered_409(dynamodb: Any) -> None:
    first = WebhookDeduplicator(TABLE, boto3_client=dynamodb)
    first.register_context(FakeLambdaContext(remaining_ms=10_000))
    second, work = WebhookDeduplicator(TABLE, boto3_client=dynamodb), Work()

    def while_first_runs() -> HttpResponse:
        assert second("msg_busy", work).status == 409
        return DELIVERED

    assert first("msg_busy", while_first_runs) == DELIVERED
    assert work.runs == 0


def test_an_attempt_that_outlived_its_invocation_does_not_block_the_next(dynamodb: Any) -> None:
    a_minute_ago = time.time() - 60  # the record itself is good for 72 h; its invocation had 3 s left
    timed_out = WebhookDeduplicator(TABLE, boto3_client=dynamodb, clock=lambda: a_minute_ago)
    timed_out.register_context(FakeLambdaContext(remaining_ms=3_000))
    timed_out._take(timed_out.key("msg_timeout"), None)  # the record an invocation left behind when killed
    retry, work = WebhookDeduplicator(TABLE, boto3_client=dynamodb), Work()
    assert retry("msg_timeout", work) == DELIVERED
    assert work.runs == 1


def test_an_expired_answer_is_not_replayed(dynamodb: Any) -> None:
    three_days_ago = time.time() - 73 * 3600
    WebhookDeduplicator(TABLE, boto3_client=dynamodb, clock=lambda: three_days_ago)("msg_expired", Work())
    work = Work()
    assert WebhookDeduplicator(TABLE, boto3_client=dynamodb)("msg_expired", work) == DELIVERED
    assert work.runs == 1


def test_a_5xx_answer_is_forgotten_so_dodos_retry_runs(dynamodb: Any) -> None:
    dedupe = WebhookDeduplicator(TABLE, boto3_client=dynamodb)
    failed = HttpResponse(500, {"error": "delivery failed and could not be queued"})
    assert dedupe("msg_5xx", Work(failed)) == failed
    assert _record(dynamodb, dedupe.key("msg_5xx")) is None
    work = Work()
    assert dedupe("msg_5xx", work) == DELIVERED
    assert work.runs == 1


def test_work_that_raises_leaves_no_record(dynamodb: Any) -> None:
    dedupe = WebhookDeduplicator(TABLE, boto3_client=dynamodb)

    def broken() -> HttpResponse:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        dedupe("msg_raise", broken)
    assert _record(dynamodb, dedupe.key("msg_raise")) is None


def test_no_table_no_processing_503(dynamodb: Any) -> None:
    work = Work()
    assert WebhookDeduplicator("no-such-table", boto3_client=dynamodb)("msg_x", work).status == 503
    assert work.runs == 0


class Recording:
    """The DynamoDB client with a list of the operations called through it, in order."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attribute(**kwargs)

        return call


class FailingUpdates(Recording):
    """The real client, except that completing a record fails."""

    def update_item(self, **_: Any) -> Any:
        raise self._client.exceptions.ProvisionedThroughputExceededException(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "UpdateItem"
        )


def test_an_answer_that_could_not_be_remembered_still_stands(dynamodb: Any) -> None:
    work = Work()
    assert WebhookDeduplicator(TABLE, boto3_client=FailingUpdates(dynamodb))("msg_unsaved", work) == DELIVERED
    assert work.runs == 1


def _plan_for_one_payment(customer_id: str = "cus_1") -> Any:
    from dodo_cio.state.table import StatePlan, customer_key

    plan = StatePlan()
    plan.claim(customer_key(customer_id), "customer", 1_760_000_000)
    plan.payments["pay_1"] = customer_id
    return plan


def test_the_state_records_and_the_in_progress_record_are_one_transaction(dynamodb: Any) -> None:
    """All-or-nothing: a duplicate must never move state forward, so nothing may be written apart."""
    from dodo_cio.state.table import StateTable

    client = Recording(dynamodb)
    dedupe = WebhookDeduplicator(TABLE, boto3_client=client, state=StateTable(TABLE, lambda: client))
    assert dedupe("msg_tx", Work(), _plan_for_one_payment()) == DELIVERED
    names = [name for name, _ in client.calls]
    assert names == ["transact_write_items", "update_item"], names  # then only the answer is stored
    (items,) = [kwargs["TransactItems"] for name, kwargs in client.calls if name == "transact_write_items"]
    writes = [write for item in items for write in item.values()]  # {"Put": {...}} / {"Update": {...}}
    keys = sorted((write.get("Key") or write["Item"])["id"]["S"] for write in writes)
    assert keys == sorted([dedupe.key("msg_tx"), "cust#cus_1", "pay#pay_1"])


def test_records_dynamodb_would_refuse_are_permanent_not_a_503(dynamodb: Any) -> None:
    """A 2,100-character customer id: refused before any call, work not run, nothing written."""
    from dodo_cio.state.table import StateRejected, StateTable

    client = Recording(dynamodb)
    dedupe, work = WebhookDeduplicator(TABLE, boto3_client=client, state=StateTable(TABLE, lambda: client)), Work()
    with pytest.raises(StateRejected, match="2048-byte key limit"):
        dedupe("msg_long", work, _plan_for_one_payment("c" * 2100))
    assert work.runs == 0 and client.calls == []
