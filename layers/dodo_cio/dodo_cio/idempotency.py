"""Exactly-once processing per `webhook-id`: Powertools Idempotency on a DynamoDB table.

The key is the webhook id as verified from the headers (read case-insensitively), never a
JMESPath into the raw event, which is case-sensitive and would silently miss `Webhook-Id`.
What the first delivery answered is stored and replayed for every duplicate within the expiry
(72 h: longer than Dodo's ~27.5 h retry schedule), so a redelivery never reaches Customer.io or
the retry queue again. Answers that ask Dodo to retry (5xx) are never stored.

A duplicate arriving while the first is still being processed gets 409: not 2xx (which could
hide a loss if the first then fails) and not 5xx (nothing is broken); Dodo retries it later.
If the table cannot be reached the answer is 503 and Dodo retries: no webhook is processed
without the duplicate check.

The webhook's own state writes (identity directory, per-piece freshness: `dodo_cio.state`) ride
in the same DynamoDB call as the "in progress" record: Powertools' `put_item` goes through
`_OneTransaction`, which turns it into one `TransactWriteItems` with the state items. So a webhook
costs two round trips in the common case (that transaction, then the "completed" record), and a
duplicate never moves any state forward, because the transaction is all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from dodo_cio.ingest import HttpResponse
from dodo_cio.state import ExtraItemFailed, StatePlan, StateTable, StateUnavailable

EXPIRES_AFTER_SECONDS: Final = 72 * 3600


class _DoNotStore(Exception):
    """Carries an answer that must not be remembered (Dodo should retry and get a fresh one)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


_PUT_KEYS: Final = (
    "TableName",
    "Item",
    "ConditionExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
)


class _OneTransaction:
    """The DynamoDB client Powertools sees: `put_item` also commits the pending state plan.

    Everything else passes through to the real client. The outcome a caller needs from the
    commit (which pieces were stale) is left on the plan (`StatePlan.stale`).
    """

    def __init__(self, client: Any, state: StateTable | None) -> None:
        self._client = client
        self._state = state
        self.pending: StatePlan | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        plan, state = self.pending, self._state
        if not plan or state is None:
            return self._client.put_item(**kwargs)
        from botocore.exceptions import ClientError  # noqa: PLC0415 - boto3 is loaded by now

        put: dict[str, Any] = {k: kwargs[k] for k in _PUT_KEYS if k in kwargs}
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            state.commit(plan, [{"Put": put}])
        except ExtraItemFailed as exc:  # the record exists: let Powertools handle it as a duplicate
            error: dict[str, Any] = {"Error": {"Code": "ConditionalCheckFailedException", "Message": str(exc)}}
            if exc.item:
                error["Item"] = exc.item
            raise ClientError(error, "PutItem") from None  # type: ignore[arg-type]
        except StateUnavailable as exc:
            raise ClientError({"Error": {"Code": "StateUnavailable", "Message": str(exc)}}, "PutItem") from None
        return {}


class WebhookDeduplicator:
    """`dedupe(webhook_id, work)`: run `work` once per webhook id, replay its answer afterwards."""

    def __init__(
        self,
        table_name: str,
        *,
        expires_after_seconds: int = EXPIRES_AFTER_SECONDS,
        boto3_client: Any = None,
        state: StateTable | None = None,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - pulls in boto3
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self.config = IdempotencyConfig(
            event_key_jmespath="webhook_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
        )
        if boto3_client is None:
            from dodo_cio.aws import client  # noqa: PLC0415

            boto3_client = client("dynamodb")
        self._client = _OneTransaction(boto3_client, state)
        self._persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=self._client)
        self._work: Callable[[], HttpResponse] | None = None
        self._finished: HttpResponse | None = None

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="webhook", persistence_store=self._persistence, config=self.config
        )
        def run(webhook: dict[str, str]) -> dict[str, Any]:
            assert self._work is not None
            response = self._work()
            self._finished = response
            if response.status >= 500:
                raise _DoNotStore(response)
            return {"status": response.status, "body": response.body}

        self._run = run

    def register_context(self, context: Any) -> None:
        """Lets an interrupted (timed-out) first attempt expire with the invocation, not after 72 h."""
        self.config.register_lambda_context(context)

    def __call__(
        self, webhook_id: str, work: Callable[[], HttpResponse], plan: StatePlan | None = None
    ) -> HttpResponse:
        """Run `work` once per webhook id; `plan` is committed with the "in progress" record."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        self._work, self._finished = work, None
        self._client.pending = plan
        try:
            stored = self._run(webhook={"webhook_id": webhook_id})
        except _DoNotStore as exc:
            return exc.response
        except IdempotencyAlreadyInProgressError:
            return HttpResponse(409, {"error": "this webhook is already being processed; retry later"})
        except IdempotencyPersistenceLayerError:
            if self._finished is not None:
                # The work ran and its answer stands; only remembering it failed. Answering 5xx now
                # would make Dodo send it again for nothing.
                return self._finished
            return HttpResponse(503, {"error": "duplicate check unavailable; retry later"})
        finally:
            self._work = None
            self._client.pending = None
        return HttpResponse(int(stored["status"]), dict(stored["body"]))
