"""moto's DynamoDB, made to hold a burst of webhooks the way DynamoDB does (issue 18, "An emulator that holds a burst").

Two things moto 5 does that DynamoDB does not, both on `TransactWriteItems`, the call every webhook
makes (its duplicate check and state records, `dodo_cio.state.idempotency`):

* **It copies every table the transaction names, whole, before each transaction**, to roll back a
  cancelled one. With thousands of webhooks the state table holds thousands of items, so each
  webhook costs a copy of all of them: time, and memory that grew by about 0.5 MB per webhook in a
  burst until `make run` was killed. Here only the items the transaction touches are kept, and
  only those are put back when it is cancelled.
* **It ignores `ClientRequestToken`.** botocore gives every `TransactWriteItems` a token and sends
  the same one again when it retries after a read timeout. DynamoDB answers a repeat within 10
  minutes as the first call succeeded, without writing again; moto writes again, so the retry
  meets its own idempotency record and the webhook is answered 409. Here a token that succeeded is
  answered as a success again, and the same token with a different request is refused as
  DynamoDB refuses it (`IdempotentParameterMismatchException`).

`install()` patches moto's backend and response classes once per process; the patched methods keep
moto's own validation and expression handling (they call its `put_item`, `update_item` and
`delete_item`) and change only the rollback and the token. A `ConditionCheck` item, which the bridge
never sends, goes to moto's own implementation unchanged.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import Any, Final

TOKEN_WINDOW_SECONDS: Final = 600  # DynamoDB's idempotency window for ClientRequestToken
MAX_TOKENS: Final = 100_000  # the oldest are forgotten first: memory stays bounded in a long run

_installed = False
_lock = threading.Lock()


class _Tokens:
    """Tokens of successful transactions: token -> (request digest, when)."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, token: str, digest: str) -> bool | None:
        """True: this very request succeeded already; False: the token came with another request; None: new."""
        now = time.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values()))[1] < now - TOKEN_WINDOW_SECONDS:
                self._seen.popitem(last=False)
            found = self._seen.get(token)
        if found is None:
            return None
        return found[0] == digest

    def remember(self, token: str, digest: str) -> None:
        with self._lock:
            self._seen[token] = (digest, time.monotonic())
            self._seen.move_to_end(token)
            while len(self._seen) > MAX_TOKENS:
                self._seen.popitem(last=False)


TOKENS: Final = _Tokens()


def install() -> None:
    """Patch moto (once per process): item-level rollback, and ClientRequestToken honoured."""
    global _installed  # noqa: PLW0603 - one patch per process
    with _lock:
        if _installed:
            return
        from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - heavy, local run only
        from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

        original_backend = DynamoDBBackend.transact_write_items
        original_handler = DynamoHandler.transact_write_items

        def backend_transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
            if any("ConditionCheck" in item for item in transact_items):
                original_backend(self, transact_items)
                return
            _transact(self, transact_items)

        def handler_transact(self: Any) -> Any:
            from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException  # noqa: PLC0415

            token = self.body.get("ClientRequestToken")
            if not isinstance(token, str) or not token:
                return original_handler(self)
            digest = hashlib.sha256(json.dumps(self.body.get("TransactItems"), sort_keys=True).encode()).hexdigest()
            seen = TOKENS.check(token, digest)
            if seen is False:
                raise DynamodbException(
                    ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                    message="the ClientRequestToken was used with another request",
                )
            if seen:
                from moto.core.responses import ActionResult  # noqa: PLC0415

                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
            result = original_handler(self)
            TOKENS.remember(token, digest)
            return result

        DynamoDBBackend.transact_write_items = backend_transact  # type: ignore[method-assign]
        DynamoHandler.transact_write_items = handler_transact  # type: ignore[method-assign]
        _installed = True


def _transact(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """All of the items or none, with only the touched items kept to roll back."""
    from moto.dynamodb.exceptions import (  # noqa: PLC0415
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    touched: list[tuple[str, dict[str, Any], Any]] = []  # table, key, the item before (None: absent)
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        name = op["TableName"]
        key = _key(backend.get_table(name), op_type, op)
        ident = (name, json.dumps(key, sort_keys=True))
        if ident in seen:
            raise MultipleTransactionsException()
        seen.add(ident)
        touched.append((name, key, copy.deepcopy(backend.get_item(name, key))))

    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    try:
        for item, (name, key, before) in zip(transact_items, touched, strict=True):
            op_type, op = next(iter(item.items()))
            try:
                _apply(backend, op_type, op, name, key)
                errors.append((None, None, None))
            except ConditionalCheckFailed as exc:
                wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                old = before.to_json()["Attributes"] if wants_old and before is not None else None
                errors.append(("ConditionalCheckFailed", str(exc.message), old))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except Exception as exc:  # noqa: BLE001 - reported per item, as DynamoDB does
                errors.append((type(exc).__name__, str(exc), None))
    except BaseException:
        _restore(backend, touched)
        raise
    if any(code is not None for code, _, _ in errors):
        _restore(backend, touched)
        raise TransactionCanceledException(errors)


def _key(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _apply(backend: Any, op_type: str, op: dict[str, Any], name: str, key: dict[str, Any]) -> None:
    condition = {
        "condition_expression": op.get("ConditionExpression"),
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if op_type == "Put":
        backend.put_item(name, op["Item"], **condition)
    elif op_type == "Delete":
        backend.delete_item(name, key, **condition)
    elif op_type == "Update":
        backend.update_item(name, key, update_expression=op["UpdateExpression"], **condition)
    else:
        raise ValueError(f"unsupported transaction operation {op_type}")


def _restore(backend: Any, touched: list[tuple[str, dict[str, Any], Any]]) -> None:
    """Every touched item as it was: put back, or removed when it did not exist."""
    for name, key, before in touched:
        if before is None:
            if backend.get_item(name, key) is not None:
                backend.delete_item(name, key)
        else:
            backend.put_item(name, before.to_json()["Attributes"])
