"""A local SQS event source: what Lambda's SQS poller does for one function, run in-process.

moto does not run event source mappings (it would start the function in Docker), so the local run
and the integration tests drive the retry function the way Lambda's poller does:

* receive up to ``batch_size`` messages with every system and message attribute, so
  ``ApproximateReceiveCount`` is SQS's own count (moto's here), never one we make up; SQS hands
  out at most 10 per ReceiveMessage, so a larger batch is several calls, stopping early when the
  queue has nothing more visible (Lambda's batching window, without its wait);
* build the event Lambda builds: ``Records`` of ``messageId``, ``receiptHandle``, ``body``,
  ``attributes``, ``messageAttributes`` (``stringValue``/``binaryValue``/``stringListValues``/
  ``binaryListValues``/``dataType``), ``md5OfBody``, ``eventSource``, ``eventSourceARN``,
  ``awsRegion``;
* invoke the handler once with the whole batch;
* with ReportBatchItemFailures: delete (DeleteMessageBatch) every message the response does not
  name in ``batchItemFailures`` and leave the named ones where the handler put them (their
  visibility is whatever the handler set). A missing, null or empty list means all succeeded; a
  malformed one (not a list, an entry without a string ``itemIdentifier``, an id not in the batch)
  fails the whole batch, as Lambda does;
* if the handler raises, delete nothing: every message comes back after its visibility timeout
  and SQS's redrive policy counts the receive.

Not emulated: concurrent pollers (one invocation at a time here), the batching window's wait,
Lambda's scale-down after function errors (an idle sleep stands in) and throttling.
Stdlib only; the SQS client is passed in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

from dodo_cio_local.lambda_context import FakeLambdaContext

MAX_RECEIVE: Final = 10  # SQS: MaxNumberOfMessages is 1..10
MAX_DELETE: Final = 10  # SQS: at most 10 entries per DeleteMessageBatch
# System attributes Lambda passes on in `attributes` (when SQS returns them).
SYSTEM_ATTRIBUTES: Final = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)

Handler = Callable[[dict[str, Any], Any], Any]


class InvalidBatchResponse(ValueError):
    """The handler's answer is not a valid partial batch response: Lambda fails the whole batch."""


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did.

    ``failed``: ids of the received messages left on the queue (the ones the handler reported, or
    the whole batch when it raised). ``error``: the handler's exception (or the invalid response's
    error); for `run()`, also an SQS error that stopped the poll before anything was received.
    ``delete_failed``: ids SQS refused to delete (they come back after their visibility timeout).
    """

    received: int = 0
    deleted: int = 0
    failed: tuple[str, ...] = ()
    error: BaseException | None = None
    delete_failed: tuple[str, ...] = ()
    event: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def idle(self) -> bool:
        """Nothing received and nothing went wrong: not worth a log line."""
        return self.received == 0 and self.error is None

    @property
    def receipt_handles(self) -> dict[str, str]:
        """messageId -> receipt handle of this poll's messages (to change their visibility in tests)."""
        records = (self.event or {}).get("Records") or []
        return {r["messageId"]: r["receiptHandle"] for r in records}

    def summary(self) -> str:
        parts = [f"received {self.received}", f"deleted {self.deleted}"]
        if self.failed:
            parts.append(f"left {len(self.failed)} for retry")
        if self.delete_failed:
            parts.append(f"delete failed for {len(self.delete_failed)}")
        if self.error is not None:
            parts.append(f"error {type(self.error).__name__}: {str(self.error)[:200]}")
        return ", ".join(parts)


def lambda_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """One message attribute in Lambda's shape (binary values base64-encoded, as in the JSON event)."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues") or [])
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    out["dataType"] = value["DataType"]
    return out


def _b64(value: bytes | str) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def lambda_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message as a Lambda SQS event record."""
    body = str(message.get("Body", ""))
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {k: str(attributes[k]) for k in SYSTEM_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: lambda_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else ""
    return record


def reported_failures(response: Any, message_ids: Sequence[str]) -> set[str]:
    """The message ids a partial batch response names; raises InvalidBatchResponse like Lambda would."""
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        raise InvalidBatchResponse(f"the response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    known = set(message_ids)
    named: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"batchItemFailures entry without an itemIdentifier: {item!r}")
        if identifier not in known:
            raise InvalidBatchResponse(f"itemIdentifier {identifier!r} is not a message of this batch")
        named.add(identifier)
    return named


@dataclass(eq=False)
class SqsEventSource:
    """Polls one queue and invokes one handler with Lambda's SQS events (see the module docstring).

    ``lock``, when given, is held for a whole poll (receive, invoke, delete): the local run shares
    one with its other handler, since moto and a warm container's module state are not meant to be
    used by two invocations at once. ``context_factory`` makes each invocation's context (default:
    a 30 s one named after the queue).
    """

    sqs: Any
    queue_url: str
    handler: Handler
    _: KW_ONLY
    batch_size: int = 10
    wait_seconds: int = 0
    context_factory: Callable[[], Any] | None = None
    report_batch_item_failures: bool = True
    lock: AbstractContextManager[Any] | None = None
    _queue_arn: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= self.wait_seconds <= 20:
            raise ValueError("wait_seconds must be between 0 and 20 (SQS long polling)")

    def _context(self) -> Any:
        if self.context_factory is not None:
            return self.context_factory()
        return FakeLambdaContext(self.queue_url.rsplit("/", 1)[-1] + "-consumer", timeout_seconds=30)

    @property
    def queue_arn(self) -> str:
        if self._queue_arn is None:
            attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = str(attrs["Attributes"]["QueueArn"])
        return self._queue_arn

    # -- one poll ---------------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Receive one batch, invoke the handler, delete what succeeded. SQS errors propagate."""
        with self.lock if self.lock is not None else contextlib.nullcontext():
            messages = self._receive()
            if not messages:
                return PollResult()
            arn = self.queue_arn
            event = {"Records": [lambda_record(m, arn) for m in messages]}
            ids = [r["messageId"] for r in event["Records"]]
            try:
                response = self.handler(event, self._context())
                failed = reported_failures(response, ids) if self.report_batch_item_failures else set()
            except Exception as exc:  # noqa: BLE001 - a function error: Lambda deletes nothing
                return PollResult(len(ids), 0, tuple(ids), exc, event=event)
            to_delete = [r for r in event["Records"] if r["messageId"] not in failed]
            deleted, delete_failed = self._delete(to_delete)
        return PollResult(
            received=len(ids),
            deleted=deleted,
            failed=tuple(i for i in ids if i in failed),
            delete_failed=tuple(delete_failed),
            event=event,
        )

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        wait = self.wait_seconds
        while len(messages) < self.batch_size:
            want = max(1, min(MAX_RECEIVE, self.batch_size - len(messages)))
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = answer.get("Messages") or []
            if not got:
                break
            messages.extend(got)
            wait = 0  # only the first call may long-poll; the rest just top the batch up
        return messages

    def _delete(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, list[str]]:
        deleted = 0
        failed: list[str] = []
        for start in range(0, len(records), MAX_DELETE):
            chunk = records[start : start + MAX_DELETE]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            try:
                answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception:  # noqa: BLE001 - they come back after their visibility timeout
                failed.extend(r["messageId"] for r in chunk)
                continue
            deleted += len(answer.get("Successful") or [])
            failed.extend(chunk[int(e["Id"])]["messageId"] for e in answer.get("Failed") or [])
        return deleted, failed

    # -- loops ------------------------------------------------------------------------------------

    def run(
        self,
        stop_event: threading.Event,
        idle_sleep: float = 1.0,
        on_poll: Callable[[PollResult], None] | None = None,
    ) -> None:
        """Poll until `stop_event` is set; sleep `idle_sleep` after an empty or failed poll.

        `on_poll` sees every poll that did something (received messages or hit an error); an SQS
        error is reported as a PollResult with `received=0` and the error, and polling goes on.
        """
        while not stop_event.is_set():
            try:
                result = self.poll_once()
            except Exception as exc:  # noqa: BLE001 - keep polling, like Lambda's poller
                result = PollResult(error=exc)
            if on_poll is not None and not result.idle:
                on_poll(result)
            if result.received == 0 or result.error is not None:
                stop_event.wait(idle_sleep)

    def drain(self, max_polls: int = 20, *, until_empty: bool = True) -> list[PollResult]:
        """Poll up to `max_polls` times (for tests); with `until_empty`, stop after a poll that got nothing.

        Messages left for retry are invisible until their delay passes, so "empty" means nothing
        is visible right now, not that the queue holds nothing.
        """
        results: list[PollResult] = []
        for _ in range(max_polls):
            result = self.poll_once()
            results.append(result)
            if until_empty and result.received == 0:
                break
        return results
