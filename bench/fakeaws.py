"""An in-memory stand-in for the AWS calls on the ingest path, shared by the bridge and the floor.

Both sides of the warm-ingest comparison make their AWS calls on this same object, so neither pays
for botocore's serialisation, signing or a network round trip and the comparison is about our own
code. (Those costs are real in Lambda and are the same for any bridge that keeps the guarantees:
see RESULTS.md for what they add.) Standard library only.

Calls served:
  SSM       get_parameters(Names, WithDecryption)             -> the three secrets
  DynamoDB  put_item / get_item / update_item / delete_item   -> one dict per table, with the
            conditions the bridge and the floor use: the idempotency record may be taken (Powertools'
            `attribute_not_exists(#id) OR #expiry < :now OR ...`), a piece's time moves forward
            (`#pN <= :tN` in the state records, `last_event_time <= :t` in the floor's record)
            transact_write_items(TransactItems)               -> Put / Update pieces, every condition
            evaluated first, then all written or none; a cancellation raises
            `exceptions.TransactionCanceledException` whose `.response["CancellationReasons"]` is
            aligned with TransactItems (`{"Code": "ConditionalCheckFailed", "Item": old}` with
            ReturnValuesOnConditionCheckFailure=ALL_OLD, else `{"Code": "None"}`)
            batch_get_item(RequestItems)                      -> every key found, nothing unprocessed
            UpdateExpression: `SET a = :v, ...` and `SET a = if_not_exists(a, :v)`
  SQS       send_message                                      -> appended to a list
Every call is counted in `calls` as "<service>.<Operation>" (e.g. "dynamodb.TransactWriteItems").

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

_SET_CLAUSE = re.compile(r"\s*([#\w]+)\s*=\s*(?:if_not_exists\(\s*([#\w]+)\s*,\s*(:\w+)\s*\)|(:\w+))\s*(?:,|$)")
_PIECE_CONDITION = re.compile(r"(#\w+)\s*<=\s*(:\w+)")


class _ServiceId(str):
    def hyphenize(self) -> str:
        return str(self)


class _Service:
    def __init__(self, aws: FakeAws, name: str) -> None:
        self._aws = aws
        self._name = name
        self.exceptions = aws.exceptions
        # What dodo_cio.platform.deadline.AttemptGuard hooks into on a botocore client; nothing is emitted here.
        events = SimpleNamespace(register_first=lambda *_, **__: None)
        self.meta = SimpleNamespace(events=events, service_model=SimpleNamespace(service_id=_ServiceId(name)))

    def _count(self, op: str) -> None:
        self._aws.calls[f"{self._name}.{op}"] += 1


class _DynamoDB(_Service):
    def _table(self, name: str) -> dict[str, dict[str, Any]]:
        return self._aws.tables.setdefault(name, {})

    @staticmethod
    def _key(key: Mapping[str, Any]) -> str:
        ((_, value),) = key.items()
        return str(value["S"])

    def _put_fails(self, table: dict[str, dict[str, Any]], item: Mapping[str, Any], put: Mapping[str, Any]) -> Any:
        """The stored item if the Put's condition fails, else None (the idempotency record's condition)."""
        old = table.get(self._key({"id": item["id"]}))
        if old is None or not put.get("ConditionExpression"):
            return None
        values = put.get("ExpressionAttributeValues") or {}
        now = int(values.get(":now", {}).get("N", time.time()))
        return old if int(old.get("expiration", {}).get("N", 0)) >= now else None

    @staticmethod
    def _update_fails(old: Mapping[str, Any] | None, update: Mapping[str, Any]) -> bool:
        """True if an Update's time condition fails: `#pN <= :tN` or the floor's `last_event_time <= :t`."""
        condition = update.get("ConditionExpression") or ""
        if old is None or not condition:
            return False
        names = update.get("ExpressionAttributeNames") or {}
        values = update.get("ExpressionAttributeValues") or {}
        for alias, placeholder in _PIECE_CONDITION.findall(condition):
            stored = old.get(names.get(alias, alias))
            if stored is not None and int(stored["N"]) > int(values[placeholder]["N"]):
                return True
        if "last_event_time <= :t" in condition and "last_event_time" in old:
            return int(old["last_event_time"]["N"]) > int(values[":t"]["N"])
        return False

    @staticmethod
    def _apply_set(item: dict[str, Any], update: Mapping[str, Any]) -> None:
        names = update.get("ExpressionAttributeNames") or {}
        values = update["ExpressionAttributeValues"]
        expression = update["UpdateExpression"].strip().removeprefix("SET ")
        pos = 0
        while pos < len(expression):
            match = _SET_CLAUSE.match(expression, pos)
            if match is None:
                raise ValueError(f"fake DynamoDB cannot evaluate {expression[pos:]!r}")
            attr, keep, default, value = match.groups()
            name = names.get(attr, attr)
            if keep is not None:
                if names.get(keep, keep) not in item:
                    item[name] = values[default]
            else:
                item[name] = values[value]
            pos = match.end()

    def put_item(self, *, TableName: str, Item: dict[str, Any], ConditionExpression: str = "", **kw: Any) -> Any:
        self._count("PutItem")
        self._aws.write_units += 1
        table = self._table(TableName)
        old = self._put_fails(table, Item, {"ConditionExpression": ConditionExpression, **kw})
        if old is not None:
            self._aws.conditional_failure("PutItem", old if kw.get("ReturnValuesOnConditionCheckFailure") else None)
        table[self._key({"id": Item["id"]})] = dict(Item)
        return {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> Any:
        self._count("GetItem")
        item = self._table(TableName).get(self._key(Key))
        return {"Item": dict(item)} if item is not None else {}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **_: Any) -> Any:
        self._count("BatchGetItem")
        responses: dict[str, list[dict[str, Any]]] = {}
        for name, request in RequestItems.items():
            table = self._table(name)
            found = (table.get(self._key(key)) for key in request["Keys"])
            responses[name] = [dict(item) for item in found if item is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def update_item(self, *, TableName: str, Key: dict[str, Any], **update: Any) -> Any:
        self._count("UpdateItem")
        self._aws.write_units += 1
        table = self._table(TableName)
        key = self._key(Key)
        old = table.get(key)
        if self._update_fails(old, update):
            self._aws.conditional_failure("UpdateItem", None)
        item = dict(old) if old is not None else {"id": {"S": key}}
        self._apply_set(item, update)
        table[key] = item
        return {}

    def transact_write_items(self, *, TransactItems: list[dict[str, Any]], **_: Any) -> Any:
        """All conditions first, against the items as they are; then every write, or none."""
        self._count("TransactWriteItems")
        reasons: list[dict[str, Any]] = []
        for entry in TransactItems:
            ((kind, op),) = entry.items()
            table = self._table(op["TableName"])
            if kind == "Put":
                old = self._put_fails(table, op["Item"], op)
            elif kind == "Update":
                stored = table.get(self._key(op["Key"]))
                old = stored if self._update_fails(stored, op) else None
            else:
                raise ValueError(f"fake DynamoDB cannot do a {kind} in a transaction")
            if old is None:
                reasons.append({"Code": "None"})
                continue
            reason: dict[str, Any] = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                reason["Item"] = dict(old)
            reasons.append(reason)
        if any(r["Code"] != "None" for r in reasons):
            self._aws.transaction_cancelled(reasons)
        self._aws.write_units += 2 * len(TransactItems)
        for entry in TransactItems:
            ((kind, op),) = entry.items()
            table = self._table(op["TableName"])
            if kind == "Put":
                table[self._key({"id": op["Item"]["id"]})] = dict(op["Item"])
            else:
                key = self._key(op["Key"])
                item = dict(table.get(key) or {"id": {"S": key}})
                self._apply_set(item, op)
                table[key] = item
        return {}

    def delete_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> Any:
        self._count("DeleteItem")
        self._aws.write_units += 1
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
        # DynamoDB on-demand write request units, as AWS bills them for items under 1 KB: 1 per
        # PutItem / UpdateItem / DeleteItem, 2 per item of a TransactWriteItems that commits.
        self.write_units = 0

        class ConditionalCheckFailedException(error_base):  # type: ignore[misc, valid-type]
            pass

        class InvalidKeyId(error_base):  # type: ignore[misc, valid-type]
            pass

        class InternalServerError(error_base):  # type: ignore[misc, valid-type]
            pass

        class TransactionCanceledException(error_base):  # type: ignore[misc, valid-type]
            pass

        self.exceptions = SimpleNamespace(
            ConditionalCheckFailedException=ConditionalCheckFailedException,
            InvalidKeyId=InvalidKeyId,
            InternalServerError=InternalServerError,
            TransactionCanceledException=TransactionCanceledException,
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

    def transaction_cancelled(self, reasons: list[dict[str, Any]]) -> None:
        """As botocore raises it: `.response` carries `CancellationReasons`, one per TransactItem."""
        codes = ", ".join(r["Code"] for r in reasons)
        response: dict[str, Any] = {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            },
            "CancellationReasons": reasons,
        }
        exc = self.exceptions.TransactionCanceledException(response, "TransactWriteItems")
        exc.response = response  # ClientError sets it; a plain Exception base does not
        raise exc


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
