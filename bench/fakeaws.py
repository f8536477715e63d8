"""An in-memory stand-in for the AWS calls on the ingest path, shared by the bridge and the floor.

Both sides of the warm-ingest comparison make their AWS calls on this same object, so neither pays
for botocore's serialisation, signing or a network round trip and the comparison is about our own
code. (Those costs are real in Lambda and are the same for any bridge that keeps the guarantees:
see RESULTS.md for what they add.) Standard library only.

Calls served:
  SSM       get_parameters(Names, WithDecryption)             -> the three secrets
  DynamoDB  put_item / get_item / update_item / delete_item   -> one dict per table, with the two
            conditions the bridge uses (idempotency record may be taken; freshness time moves forward)
  SQS       send_message                                      -> appended to a list

`install_into_boto3(fake)` makes every `boto3.client(...)` and `boto3.session.Session().client(...)`
return these objects, so the handler (and Powertools inside it) reach them with no code change.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

_SET_CLAUSE = re.compile(r"\s*([#\w]+)\s*=\s*(:\w+)\s*")


class _Service:
    def __init__(self, aws: FakeAws, name: str) -> None:
        self._aws = aws
        self._name = name
        self.exceptions = aws.exceptions

    def _count(self, op: str) -> None:
        self._aws.calls[f"{self._name}.{op}"] += 1


class _DynamoDB(_Service):
    def _table(self, name: str) -> dict[str, dict[str, Any]]:
        return self._aws.tables.setdefault(name, {})

    @staticmethod
    def _key(key: Mapping[str, Any]) -> str:
        ((_, value),) = key.items()
        return str(value["S"])

    def put_item(self, *, TableName: str, Item: dict[str, Any], ConditionExpression: str = "", **kw: Any) -> Any:
        self._count("PutItem")
        table = self._table(TableName)
        key = self._key({"id": Item["id"]})
        old = table.get(key)
        if old is not None and ConditionExpression:
            values = kw.get("ExpressionAttributeValues") or {}
            now = int(values.get(":now", {}).get("N", time.time()))
            if int(old.get("expiration", {}).get("N", 0)) >= now:
                self._aws.conditional_failure("PutItem", old if kw.get("ReturnValuesOnConditionCheckFailure") else None)
        table[key] = dict(Item)
        return {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> Any:
        self._count("GetItem")
        item = self._table(TableName).get(self._key(Key))
        return {"Item": dict(item)} if item is not None else {}

    def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ExpressionAttributeNames: dict[str, str] | None = None,
        ConditionExpression: str = "",
        **_: Any,
    ) -> Any:
        self._count("UpdateItem")
        table = self._table(TableName)
        key = self._key(Key)
        item = table.get(key) or {"id": {"S": key}}
        if (
            "last_event_time <= :t" in ConditionExpression
            and "last_event_time" in item
            and int(item["last_event_time"]["N"]) > int(ExpressionAttributeValues[":t"]["N"])
        ):
            self._aws.conditional_failure("UpdateItem", None)
        names = ExpressionAttributeNames or {}
        for clause in UpdateExpression.removeprefix("SET ").split(","):
            match = _SET_CLAUSE.fullmatch(clause)
            if match is None:
                raise ValueError(f"fake DynamoDB cannot evaluate {clause!r}")
            attr, placeholder = match.groups()
            item[names.get(attr, attr)] = ExpressionAttributeValues[placeholder]
        table[key] = item
        return {}

    def delete_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> Any:
        self._count("DeleteItem")
        self._table(TableName).pop(self._key(Key), None)
        return {}


class _Ssm(_Service):
    def get_parameters(self, *, Names: list[str], WithDecryption: bool = False) -> Any:
        self._count("GetParameters")
        params = self._aws.parameters
        return {
            "Parameters": [
                {"Name": n, "Type": "SecureString", "Value": params[n], "Version": 1} for n in Names if n in params
            ],
            "InvalidParameters": [n for n in Names if n not in params],
        }


class _Sqs(_Service):
    def send_message(self, **kwargs: Any) -> Any:
        self._count("SendMessage")
        self._aws.messages.append(kwargs)
        return {"MessageId": str(uuid.uuid4())}


class FakeAws:
    """One account's worth of fake state. `error_base` is the class AWS errors derive from:
    botocore's ClientError for the bridge (Powertools inspects `.response`), Exception for the floor."""

    def __init__(self, parameters: Mapping[str, str], *, error_base: type[Exception] = Exception) -> None:
        self.parameters = dict(parameters)
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()

        class ConditionalCheckFailedException(error_base):  # type: ignore[misc, valid-type]
            pass

        class InvalidKeyId(error_base):  # type: ignore[misc, valid-type]
            pass

        class InternalServerError(error_base):  # type: ignore[misc, valid-type]
            pass

        self.exceptions = SimpleNamespace(
            ConditionalCheckFailedException=ConditionalCheckFailedException,
            InvalidKeyId=InvalidKeyId,
            InternalServerError=InternalServerError,
        )
        self.dynamodb = _DynamoDB(self, "dynamodb")
        self.ssm = _Ssm(self, "ssm")
        self.sqs = _Sqs(self, "sqs")

    def client(self, service: str, *_: Any, **__: Any) -> Any:
        return {"dynamodb": self.dynamodb, "ssm": self.ssm, "sqs": self.sqs}[service]

    def conditional_failure(self, operation: str, item: dict[str, Any] | None) -> None:
        response: dict[str, Any] = {
            "Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
        }
        if item is not None:
            response["Item"] = item
        raise self.exceptions.ConditionalCheckFailedException(response, operation)


def install_into_boto3(fake: FakeAws) -> None:
    """Route every boto3 client the handler creates to `fake` (module-level and Session clients)."""
    import boto3
    import boto3.session

    def session_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        return fake.client(service_name)

    def client(service_name: str, *args: Any, **kwargs: Any) -> Any:
        return fake.client(service_name)

    boto3.session.Session.client = session_client  # type: ignore[method-assign, assignment]
    boto3.client = client


def botocore_fake(parameters: Mapping[str, str]) -> FakeAws:
    """The fake for the bridge's side: AWS errors are botocore ClientErrors, as boto3 raises them."""
    from botocore.exceptions import ClientError

    return FakeAws(parameters, error_base=ClientError)
