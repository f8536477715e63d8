"""Exactly-once processing per `webhook-id`: one conditional record per webhook in the state table.

The key is the webhook id as verified from the headers (read case-insensitively), never a path
into the raw event, which is case-sensitive and would silently miss `Webhook-Id`. What the first
delivery answered is stored and replayed for every duplicate within the expiry (72 h: longer than
Dodo's ~27.5 h retry schedule), so a redelivery never reaches Customer.io or the retry queue
again. Answers that ask Dodo to retry (5xx) are never stored: the record is removed instead.

A duplicate arriving while the first is still being processed gets 409: not 2xx (which could
hide a loss if the first then fails) and not 5xx (nothing is broken); Dodo retries it later. The
"in progress" record lapses with the invocation that wrote it (its Lambda deadline), so a first
attempt that timed out does not block Dodo's next one. If the table cannot be reached the answer
is 503 and Dodo retries: no webhook is processed without the duplicate check.

The webhook's own state writes (identity directory, per-piece freshness: `dodo_cio.state.table`) ride
in the same DynamoDB call as the "in progress" record: one `TransactWriteItems`. So a webhook costs
two round trips in the common case (that transaction, then the "completed" record), and a
duplicate never moves any state forward, because the transaction is all-or-nothing.

The records are those Powertools Idempotency wrote before this module replaced it (same key, same
attributes, same conditions), so a deploy does not forget the webhooks seen in the last 72 hours.
Powertools' general machinery (key paths, hashing options, serialisers, local cache) cost a warm
webhook about as much CPU as verifying its signature and validating its payload together
(bench/RESULTS.md); this is the part of it the bridge uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final

from dodo_cio.receiving.http_api import STATE_DOWN, HttpResponse
from dodo_cio.state.table import ExtraItemFailed, LedgerConflict, StatePlan, StateRejected, StateTable

EXPIRES_AFTER_SECONDS: Final = 72 * 3600
# The name Powertools gave the records' owner: `<module>.<qualified name>` of the function it wrapped.
RECORD_OWNER: Final = "dodo_cio.idempotency.WebhookDeduplicator.__init__.<locals>.run"
INPROGRESS: Final = "INPROGRESS"
COMPLETED: Final = "COMPLETED"
# A record may change between the failed write and the read of it (it expired, or was removed).
_ATTEMPTS: Final = 3
# Take the record when it is absent, expired, or "in progress" past the deadline of its invocation.
_TAKE_CONDITION: Final = (
    "attribute_not_exists(#id) OR #expiry < :now OR "
    "(#status = :inprogress AND attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)"
)
_TAKE_NAMES: Final = {
    "#id": "id",
    "#expiry": "expiration",
    "#in_progress_expiry": "in_progress_expiration",
    "#status": "status",
}

_IN_PROGRESS = HttpResponse(409, {"error": "this webhook is already being processed; retry later"})
_UNAVAILABLE = HttpResponse(503, {"error": STATE_DOWN})


class _Taken(Exception):
    """The record exists and was not ours to take; `item` is it as stored (None if not returned)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("idempotency record exists")
        self.item = item


class WebhookDeduplicator:
    """`dedupe(webhook_id, work)`: run `work` once per webhook id, replay its answer afterwards."""

    def __init__(
        self,
        table_name: str,
        *,
        expires_after_seconds: int = EXPIRES_AFTER_SECONDS,
        boto3_client: Any = None,
        state: StateTable | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if boto3_client is None:
            from dodo_cio.platform.aws import client  # noqa: PLC0415 - boto3 is paid for on the first AWS call

            boto3_client = client("dynamodb")
        self._client = boto3_client
        self._table = table_name
        self._state = state
        self._expires = expires_after_seconds
        self._clock = clock
        self._owner = f"{os.getenv('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{RECORD_OWNER}"
        self._context: Any = None

    def register_context(self, context: Any) -> None:
        """Lets an interrupted (timed-out) first attempt expire with the invocation, not after 72 h."""
        self._context = context

    def key(self, webhook_id: str) -> str:
        """The record's key: its owner, then the MD5 of the webhook id as JSON (Powertools' format)."""
        digest = hashlib.md5(json.dumps(webhook_id).encode(), usedforsecurity=False).hexdigest()
        return f"{self._owner}#{digest}"

    def __call__(
        self, webhook_id: str, work: Callable[[], HttpResponse], plan: StatePlan | None = None
    ) -> HttpResponse:
        """Run `work` once per webhook id; `plan` is committed with the "in progress" record.

        Raises `StateRejected` (nothing written, `work` not run) when DynamoDB refuses the plan as
        it is: that is permanent, and answering 503 would only have Dodo send it again for days.
        Raises `LedgerConflict` (nothing written, `work` not run) when the plan's ledger write
        cannot go as planned (dodo_cio.state.table).
        """
        key = self.key(webhook_id)
        for _ in range(_ATTEMPTS):
            try:
                self._take(key, plan)
            except _Taken as taken:
                answer = self._answer_for(key, taken.item)
                if answer is None:  # it changed since the write failed: try to take it again
                    continue
                return answer
            except (StateRejected, LedgerConflict):
                # Nothing was written. Permanent: the caller keeps the webhook where a person can see
                # it (not a 503). A ledger conflict: the caller recounts or drops the count, then retries.
                raise
            except Exception:  # noqa: BLE001 - unreachable, throttled, out of time: Dodo retries
                return _UNAVAILABLE
            return self._run(key, work)
        return _UNAVAILABLE

    def _take(self, key: str, plan: StatePlan | None) -> None:
        now = self._clock()
        item: dict[str, Any] = {
            "id": {"S": key},
            "expiration": {"N": str(int(now) + self._expires)},
            "status": {"S": INPROGRESS},
        }
        if self._context is not None:
            lapses = int((now * 1000) + self._context.get_remaining_time_in_millis())
            item["in_progress_expiration"] = {"N": str(lapses)}
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": _TAKE_CONDITION,
            "ExpressionAttributeNames": _TAKE_NAMES,
            "ExpressionAttributeValues": {
                ":now": {"N": str(int(now))},
                ":now_in_millis": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if plan and self._state is not None:
            try:
                self._state.commit(plan, [{"Put": put}])
            except ExtraItemFailed as exc:
                raise _Taken(dict(exc.item) if exc.item else None) from None
            return
        try:
            self._client.put_item(**put)
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise _Taken(exc.response.get("Item")) from None

    def _answer_for(self, key: str, item: dict[str, Any] | None) -> HttpResponse | None:
        """The stored answer, 409 while the first attempt runs, or None when the record changed meanwhile."""
        if item is None:  # the failed write did not return the record: read it
            try:
                item = self._client.get_item(TableName=self._table, Key={"id": {"S": key}}, ConsistentRead=True).get(
                    "Item"
                )
            except Exception:  # noqa: BLE001
                return _UNAVAILABLE
            if item is None:
                return None
        now = self._clock()
        if int(item["expiration"]["N"]) < int(now):
            return None
        status = item["status"]["S"]
        if status == INPROGRESS:
            lapses = item.get("in_progress_expiration")
            return None if lapses is not None and int(lapses["N"]) < int(now * 1000) else _IN_PROGRESS
        data = item.get("data")
        if status != COMPLETED or data is None:
            return _UNAVAILABLE
        stored = json.loads(data["S"])
        return HttpResponse(int(stored["status"]), dict(stored["body"]), replayed=True)

    def _run(self, key: str, work: Callable[[], HttpResponse]) -> HttpResponse:
        try:
            response = work()
        except BaseException:
            self._forget(key)
            raise
        if response.status >= 500:
            self._forget(key)  # Dodo retries it and must find the webhook not yet processed
            return response
        stored = json.dumps({"body": response.body, "status": response.status}, sort_keys=True)
        # If only remembering the answer fails, it stands all the same: answering 5xx now would make
        # Dodo send the webhook again for nothing. The "in progress" record lapses with this invocation.
        with contextlib.suppress(Exception):
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET #response_data = :response_data, #expiry = :expiry, #status = :status",
                ExpressionAttributeNames={"#response_data": "data", "#expiry": "expiration", "#status": "status"},
                ExpressionAttributeValues={
                    ":response_data": {"S": stored},
                    ":expiry": {"N": str(int(self._clock()) + self._expires)},
                    ":status": {"S": COMPLETED},
                },
            )
        return response

    def _forget(self, key: str) -> None:
        with contextlib.suppress(Exception):  # if it cannot be removed, it lapses with this invocation
            self._client.delete_item(TableName=self._table, Key={"id": {"S": key}})
