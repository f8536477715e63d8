"""Verdicts: what becomes of each parked message once its ops have been tried.

One verdict per message, recorded on SQS before the handler answers:

  delivered      every op accepted -> deleted (not reported)
  retry          transient/config failure within the horizon -> its visibility is set to the
                 backoff delay and it is reported as a batch item failure (SQS counts the attempt)
  repark         some ops were delivered or dead-lettered, the rest must wait -> a new message with
                 only the remaining ops (delay <= 15 min), the original deleted
  dead_letter    permanent failure, unreadable body, or past the horizon -> sent to the DLQ with
                 the reason, the time and the attempt count; the original deleted
  deferred       not tried in time (a "retry" with `deferred` set) -> reported with no SQS call,
                 so it comes back whole after the queue's visibility timeout

If sending to the DLQ or re-parking fails, the message is retried instead: nothing is dropped,
because only a reported message stays on the queue and every other one is deleted by Lambda.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol, TypedDict

from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.parking import LastError, ParkedDelivery
from dodo_cio.retry.planning import OpFate

Verdict = Literal["delivered", "retry", "repark", "dead_letter"]
DEFERRED_REASON: Final = "deferred: too little time left in this invocation"
VERDICT_CALLS: Final = 2  # SQS calls one verdict may make: a DLQ send and a re-park
SQS_MAX_DELAY: Final = 900  # DelaySeconds' maximum on a standard queue


class Sqs(Protocol):
    def send_message(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def change_message_visibility(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class SqsRecord:
    """The fields of a Lambda SQS record the retry path uses; read leniently, judged later."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int

    @classmethod
    def from_lambda(cls, record: Mapping[str, Any]) -> SqsRecord:
        attributes = record.get("attributes") or {}
        try:
            count = int(attributes.get("ApproximateReceiveCount", "1"))
        except (TypeError, ValueError):
            count = 1
        return cls(
            message_id=str(record.get("messageId", "")),
            receipt_handle=str(record.get("receiptHandle", "")),
            body=str(record.get("body", "")),
            receive_count=max(1, count),
        )


@dataclass(slots=True)
class MessageOutcome:
    record: SqsRecord
    verdict: Verdict
    reason: str = ""
    delay: int | None = None
    delivered_ops: int = 0
    deferred: bool = False  # verdict "retry" without an attempt: out of time before its turn
    email_changes_refused: int = 0  # its ops Customer.io refused as an email change by id (EmailChangeRefused)


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


def rewrite(
    parked: ParkedDelivery, ops: list[dict[str, Any]], fate: OpFate, kind: str, attempts: int, now: float
) -> ParkedDelivery:
    """The parked message that goes on (to the DLQ or re-parked): only `ops`, and why they stopped."""
    return replace(
        parked,
        ops=ops,
        attempts=attempts,
        last_error=LastError(
            kind=kind, reason=fate.result.reason, status=fate.status, at=int(now), retry_after=fate.retry_after
        ),
    )


@dataclass(frozen=True, slots=True)
class Queues:
    """Where verdicts are recorded: the retry queue and the dead-letter queue, through one client."""

    sqs: Sqs
    retry_url: str
    dead_letter_url: str


@dataclass
class Verdicts:
    """Decides each message's verdict from its ops' fates and records it on SQS."""

    queues: Queues
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: Callable[[], float] = random.random

    @staticmethod
    def deferred(record: SqsRecord, delivered_ops: int) -> MessageOutcome:
        """Back on the queue untouched after its visibility timeout; what was delivered is resent then."""
        return MessageOutcome(record, "retry", DEFERRED_REASON, None, delivered_ops, deferred=True)

    def decide(self, record: SqsRecord, parked: ParkedDelivery, fates: list[OpFate], now: float) -> MessageOutcome:
        """One verdict from every op's fate; permanent ops are dead-lettered before the rest is judged."""
        attempts = parked.attempts + record.receive_count
        delivered = [op for op, f in zip(parked.ops, fates, strict=True) if f.result.outcome == "delivered"]
        permanent = [(op, f) for op, f in zip(parked.ops, fates, strict=True) if f.result.outcome == "permanent"]
        waiting = [
            (op, f) for op, f in zip(parked.ops, fates, strict=True) if f.result.outcome in ("transient", "config")
        ]
        if not permanent and not waiting:
            return MessageOutcome(record, "delivered", delivered_ops=len(delivered))

        if permanent:
            op_fate = permanent[0][1]
            dead = rewrite(parked, [op for op, _ in permanent], op_fate, "permanent", attempts, now)
            if not self._send(self.queues.dead_letter_url, dead):
                return self._retry(
                    record, parked, attempts, "transient", None, "could not reach the DLQ", len(delivered)
                )

        if not waiting:
            return MessageOutcome(record, "dead_letter", permanent[0][1].result.reason, delivered_ops=len(delivered))

        kind = "config" if all(f.result.outcome == "config" for _, f in waiting) else "transient"
        fate = waiting[0][1]
        retry_after = max((f.retry_after for _, f in waiting if f.retry_after is not None), default=None)
        if self.policy.expired(kind=kind, first_seen=parked.first_seen, now=now):
            hours = (now - parked.first_seen) / 3600
            expired = rewrite(parked, [op for op, _ in waiting], fate, kind, attempts, now)
            expired = replace(
                expired,
                last_error=replace(expired.last_error, reason=f"gave up after {hours:.1f} h: {fate.result.reason}"),
            )
            if self._send(self.queues.dead_letter_url, expired):
                return MessageOutcome(record, "dead_letter", expired.last_error.reason, delivered_ops=len(delivered))
            return self._retry(record, parked, attempts, kind, retry_after, "could not reach the DLQ", len(delivered))

        delay = self.policy.delay(attempts, kind=kind, retry_after=retry_after, rng=self.rng)
        if delivered or permanent:
            remaining = rewrite(parked, [op for op, _ in waiting], fate, kind, attempts, now)
            if self._send(self.queues.retry_url, remaining, delay=min(delay, SQS_MAX_DELAY)):
                return MessageOutcome(record, "repark", fate.result.reason, delay, len(delivered))
        return self._retry(record, parked, attempts, kind, retry_after, fate.result.reason, len(delivered), delay)

    def dead_letter_raw(self, record: SqsRecord, reason: str, now: float) -> MessageOutcome:
        """A body this version cannot read goes to the DLQ untouched, the reason in its attributes."""
        try:
            self.queues.sqs.send_message(
                QueueUrl=self.queues.dead_letter_url,
                MessageBody=record.body or "(empty)",
                MessageAttributes={
                    "error_kind": {"DataType": "String", "StringValue": "unreadable"},
                    "reason": {"DataType": "String", "StringValue": reason[:256]},
                    "dead_lettered_at": {"DataType": "Number", "StringValue": str(int(now))},
                },
            )
        except Exception:  # noqa: BLE001 - kept on the queue instead: reported as a retry
            return MessageOutcome(record, "retry", reason)
        return MessageOutcome(record, "dead_letter", reason)

    def _retry(
        self,
        record: SqsRecord,
        parked: ParkedDelivery,
        attempts: int,
        kind: str,
        retry_after: float | None,
        reason: str,
        delivered_ops: int,
        delay: int | None = None,
    ) -> MessageOutcome:
        if delay is None:
            delay = self.policy.delay(attempts, kind=kind, retry_after=retry_after, rng=self.rng)
        try:
            self.queues.sqs.change_message_visibility(
                QueueUrl=self.queues.retry_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
            )
        except Exception:  # noqa: BLE001 - the queue's own visibility timeout still brings it back
            delay = None
        return MessageOutcome(record, "retry", reason, delay, delivered_ops)

    def _send(self, queue_url: str, parked: ParkedDelivery, *, delay: int = 0) -> bool:
        try:
            self.queues.sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=parked.to_json(),
                DelaySeconds=max(0, min(delay, SQS_MAX_DELAY)),
                MessageAttributes={
                    "event_type": {"DataType": "String", "StringValue": parked.event_type},
                    "error_kind": {"DataType": "String", "StringValue": parked.last_error.kind},
                },
            )
        except Exception:  # noqa: BLE001 - the caller keeps the original message instead
            return False
        return True


def summarise(outcomes: Sequence[MessageOutcome]) -> dict[str, int]:
    """Messages per verdict; a deferred message counts as "deferred" only, not also as "retry"."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = "deferred" if outcome.deferred else outcome.verdict
        counts[key] = counts.get(key, 0) + 1
    return counts


def failed_message_ids(outcomes: Sequence[MessageOutcome]) -> set[str]:
    """The messages that must stay on the queue: every "retry", deferred ones included."""
    return {o.record.message_id for o in outcomes if o.verdict == "retry"}


def batch_response(outcomes: Sequence[MessageOutcome]) -> BatchResponse:
    """Lambda's partial batch response (ReportBatchItemFailures): the "retry" messages, in order.

    Lambda deletes every message of the batch the list does not name, so an empty list means all
    were handled (delivered, re-parked or dead-lettered). Each id is named once.
    """
    seen: set[str] = set()
    failures: list[BatchItemFailure] = []
    for outcome in outcomes:
        message_id = outcome.record.message_id
        if outcome.verdict == "retry" and message_id not in seen:
            seen.add(message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
