"""The local run's DynamoDB (dodo_cio_local.local_dynamodb): moto, made to roll back only what a
transaction touched and to honour ClientRequestToken, as DynamoDB does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dodo_cio_local import local_dynamodb
from support.aws import create_state_table, fake_credentials


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    fake_credentials(monkeypatch)
    local_dynamodb.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        yield client, create_state_table(client)


def put(name: str, key: str, *, new: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {"TableName": name, "Item": {"id": {"S": key}, "n": {"N": "1"}}}
    if new:
        item["ConditionExpression"] = "attribute_not_exists(id)"
        item["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Put": item}


def test_a_cancelled_transaction_puts_back_only_what_it_touched(table: tuple[Any, str]) -> None:
    """The rollback's result and ALL_OLD: test_state_records (through the bridge's table); here, that no copy of
    the table is swapped in, as moto's own transactions do (too slow for a burst)."""
    from moto.dynamodb.models import dynamodb_backends

    client, name = table
    client.transact_write_items(TransactItems=[put(name, f"old#{n}") for n in range(50)])
    backend = dynamodb_backends["123456789012"]["us-east-1"]
    before = backend.tables[name]
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[put(name, "fresh"), put(name, "old#7")])
    assert "Item" not in client.get_item(TableName=name, Key={"id": {"S": "fresh"}})
    assert backend.tables[name] is before  # rolled back item by item


def test_a_retried_transaction_with_its_token_is_answered_as_the_first_was(table: tuple[Any, str]) -> None:
    client, name = table
    items = [put(name, "idem#msg_1")]
    client.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
    client.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")  # botocore's retry: no 409
    with pytest.raises(ClientError) as again:  # a new token is a new request, and meets the record
        client.transact_write_items(TransactItems=items, ClientRequestToken="tok-2")
    assert again.value.response["Error"]["Code"] == "TransactionCanceledException"
    with pytest.raises(ClientError) as mismatch:
        client.transact_write_items(TransactItems=[put(name, "other")], ClientRequestToken="tok-1")
    assert mismatch.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
