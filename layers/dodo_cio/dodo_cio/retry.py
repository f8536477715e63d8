"""The retry path: parked deliveries from SQS go back to Customer.io in as few requests as possible.

Per invocation, the ops of every message are packed into `/api/v2/batch` requests within the byte
limits (a message's ops stay together), sent through the same `TrackClient` and classification
as the ingest path, and each op's fate is mapped back to its message (a 207's `batch_index` names
an op of the request, which names a message). A 413 splits the request in halves.

Then each message gets one verdict:
  delivered      every op accepted -> deleted
  retry          transient/config failure within the horizon -> its visibility is set to the
                 backoff delay and it is reported as a batch item failure (SQS counts the attempt)
  repark         some ops were delivered or dead-lettered, the rest must wait -> a new message with
                 only the remaining ops (delay <= 15 min), the original deleted
  dead_letter    permanent failure, unreadable body, or past the horizon -> sent to the DLQ with
                 the reason, the time and the attempt count; the original deleted
If sending to the DLQ or re-parking fails, the message is retried instead: nothing is dropped.

Time: the invocation runs to its deadline (dodo_cio.deadline) less `Settings.answer_reserve`. A
Customer.io request is started only while its whole timeout still fits before the time kept to
record verdicts, and a verdict that needs SQS only while its calls still fit. A message that did
not get its turn is `deferred`: reported as a batch item failure with no SQS call and no
verdict, so it comes back whole after the queue's visibility timeout (it is neither lost nor
counted as delivered, re-parked or dead-lettered).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

from dodo_cio import deadline
from dodo_cio.backoff import BackoffPolicy
from dodo_cio.config import ConfigError, SecretStore, Settings
from dodo_cio.customerio import ClientCache, DeliveryResult, OpResult
from dodo_cio.identity import Known, Resolver, needs_resolution
from dodo_cio.limits import MAX_BATCH_BYTES, encoded_size, fit_op
from dodo_cio.parking import LastError, ParkedDelivery, ParkedFormatError
from dodo_cio.state import StateTable, StateUnavailable, is_stale, plan_for, state_claim
from dodo_cio.telemetry import Log, Metrics

Verdict = Literal["delivered", "retry", "repark", "dead_letter"]
_BATCH_OVERHEAD: Final = len('{"batch":[]}')
MAX_OPS_PER_REQUEST: Final = 1000
DEFERRED_REASON: Final = "deferred: too little time left in this invocation"
NOT_SENT_REASON: Final = "not sent: too little time left in this invocation"
VERDICT_CALLS: Final = 2  # SQS calls one verdict may make: a DLQ send and a re-park


class Sqs(Protocol):
    def send_message(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def change_message_visibility(self, **kwargs: Any) -> Mapping[str, Any]: ...


class Sender(Protocol):
    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult: ...


@dataclass(frozen=True, slots=True)
class SqsRecord:
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


@dataclass(frozen=True, slots=True)
class OpFate:
    result: OpResult
    status: int | None
    retry_after: float | None


@dataclass(slots=True)
class MessageOutcome:
    record: SqsRecord
    verdict: Verdict
    reason: str = ""
    delay: int | None = None
    delivered_ops: int = 0
    deferred: bool = False  # verdict "retry" without an attempt: out of time before its turn


class RateLimiter:
    """Spaces requests evenly so a container never exceeds its share of Customer.io's rate."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            self._sleep(wait)


def plan_requests(
    messages: Sequence[list[dict[str, Any]]],
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    max_ops: int = MAX_OPS_PER_REQUEST,
) -> list[list[tuple[int, int]]]:
    """Pack (message index, op index) pairs into requests under the byte and count limits.

    A message's ops go into one request whenever they fit together, so one answer decides the
    message; only a message too big for one request is spread over several.
    """
    requests: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size = _BATCH_OVERHEAD
    for m_index, ops in enumerate(messages):
        sizes = [encoded_size(op) + 1 for op in ops]  # +1 for the comma
        if current and (size + sum(sizes) > max_bytes or len(current) + len(ops) > max_ops):
            requests.append(current)
            current, size = [], _BATCH_OVERHEAD
        for o_index, op_size in enumerate(sizes):
            if current and (size + op_size > max_bytes or len(current) >= max_ops):
                requests.append(current)
                current, size = [], _BATCH_OVERHEAD
            current.append((m_index, o_index))
            size += op_size
    if current:
        requests.append(current)
    return requests


def send_with_split(
    sender: Sender,
    ops: Sequence[dict[str, Any]],
    on_request: Callable[[], None],
    can_send: Callable[[], bool] = lambda: True,
) -> list[OpFate]:
    """Send ops; on 413 split in halves until each part fits (a single op that never fits is permanent).

    A half that `can_send` no longer has time for is a transient failure: its message was attempted.
    """
    if not can_send():
        return [OpFate(OpResult("transient", NOT_SENT_REASON), None, None) for _ in ops]
    on_request()
    result = sender.send(ops)
    if result.status == 413:
        if len(ops) == 1:
            return [OpFate(OpResult("permanent", "HTTP 413: op too large for Customer.io"), 413, None)]
        middle = len(ops) // 2
        return send_with_split(sender, ops[:middle], on_request, can_send) + send_with_split(
            sender, ops[middle:], on_request, can_send
        )
    return [OpFate(r, result.status, result.retry_after) for r in result.results]


@dataclass
class RetryProcessor:
    """One invocation's worth of parked messages: deliver, then decide each message's fate."""

    sqs: Sqs
    retry_queue_url: str
    dead_letter_queue_url: str
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    clock: Callable[[], float] = time.time
    rng: Callable[[], float] = random.random
    state: StateTable | None = None
    resolver: Resolver | None = None
    # Under a deadline: the longest one Customer.io request may take, and the time one message's
    # verdict may need (a DLQ send and a re-park, one AWS attempt each). Zero: no time checks.
    request_seconds: float = 0.0
    verdict_seconds: float = 0.0
    monotonic: Callable[[], float] = time.monotonic

    def _has_time(self, seconds: float) -> bool:
        """Whether work that may take `seconds` ends before the current deadline (True without one)."""
        limit = deadline.current()
        return limit is None or limit.fits(seconds, self.monotonic())

    def _pre_send_fates(self, messages: list[list[dict[str, Any]]]) -> list[list[OpFate | None]]:
        """Pre-decided fates: who each op is for, whether it fits, whether newer state was applied.

        Per batch, not per op: one directory read for the ops that still need their person
        (`dodo_cio.identity`), then one transaction that moves every piece of state forward
        (`dodo_cio.state`); a stale identify counts as done, one that could not be checked waits.
        Ops are fitted to Customer.io's limits here too, since a parked op may have been resolved
        only now.
        """
        fates: list[list[OpFate | None]] = [[None] * len(ops) for ops in messages]
        flat = [(m, o, op) for m, ops in enumerate(messages) for o, op in enumerate(ops)]
        pending = [op for _, _, op in flat if needs_resolution(op)]
        unresolved: dict[int, OpFate] = {}
        known = Known()
        if pending and self.resolver is None:
            why = OpFate(OpResult("config", "no identity resolver: cannot address this op"), None, None)
            unresolved = {id(op): why for op in pending}
        elif pending and self.resolver is not None:
            _, missing = self.resolver.resolve(pending, known)
            unresolved = {id(u.op): OpFate(OpResult(u.kind, u.reason), None, None) for u in missing}
        for m, o, op in flat:
            if id(op) in unresolved:
                fates[m][o] = unresolved[id(op)]
                continue
            fitted = fit_op(op)
            if fitted.unfixable:
                fates[m][o] = OpFate(OpResult("permanent", fitted.unfixable), None, None)
            messages[m][o] = fitted.op
        if self.state is None:
            return fates
        admitted = [messages[m][o] for m, o, _ in flat if fates[m][o] is None]
        plan = plan_for(admitted, learned=known.learned, payments=known.learned_payments)
        try:
            self.state.commit(plan)
        except StateUnavailable:  # cannot tell; try again later rather than risk going back
            waiting = OpFate(OpResult("transient", "state table unreachable for the freshness check"), None, None)
            for m, o, _ in flat:
                if fates[m][o] is None and state_claim(messages[m][o]) is not None:
                    fates[m][o] = waiting
            return fates
        for m, o, _ in flat:
            if fates[m][o] is None and is_stale(messages[m][o], plan, plan.stale):
                fates[m][o] = OpFate(OpResult("delivered", "skipped: newer state was already applied"), None, None)
        return fates

    def process(
        self,
        records: Sequence[SqsRecord],
        sender: Sender | None,
        *,
        on_request: Callable[[], None] = lambda: None,
        missing_credentials: str = "Customer.io credentials missing in SSM",
    ) -> list[MessageOutcome]:
        now = self.clock()
        outcomes: list[MessageOutcome] = []
        readable: list[tuple[SqsRecord, ParkedDelivery]] = []
        for record in records:
            try:
                readable.append((record, ParkedDelivery.from_json(record.body)))
            except ParkedFormatError as exc:
                outcomes.append(self._dead_letter_raw(record, f"unreadable parked message: {exc}", now))

        # None: the op was not tried in this invocation (no time); its message is deferred whole.
        slots: list[list[OpFate | None]]
        if sender is None:
            slots = [[OpFate(OpResult("config", missing_credentials), None, None) for _ in p.ops] for _, p in readable]
        else:
            # Directory reads, Dodo API lookups and the state commit leave room for one request.
            with deadline.keeping(self.verdict_seconds + self.request_seconds):
                slots = self._pre_send_fates([p.ops for _, p in readable])
            pending = [[o for o, fate in enumerate(row) if fate is None] for row in slots]
            plan = plan_requests([[p.ops[o] for o in pending[m]] for m, (_, p) in enumerate(readable)])

            def can_send() -> bool:
                return self._has_time(self.request_seconds)

            with deadline.keeping(self.verdict_seconds):
                for request in plan:
                    if not can_send():
                        break  # no request starts that its timeout could carry past the time kept
                    ops = [readable[m][1].ops[pending[m][k]] for m, k in request]
                    for (m, k), fate in zip(request, send_with_split(sender, ops, on_request, can_send), strict=True):
                        slots[m][pending[m][k]] = fate

        for (record, parked), row in zip(readable, slots, strict=True):
            fates = [f for f in row if f is not None]
            if len(fates) < len(row):
                outcomes.append(self._deferred(record, sum(f.result.outcome == "delivered" for f in fates)))
            elif any(f.result.outcome != "delivered" for f in fates) and not self._has_time(self.verdict_seconds):
                outcomes.append(self._deferred(record, 0))  # its SQS calls might not end in time
            else:
                outcomes.append(self._decide(record, parked, fates, now))
        return outcomes

    @staticmethod
    def _deferred(record: SqsRecord, delivered_ops: int) -> MessageOutcome:
        """Back on the queue untouched after its visibility timeout; what was delivered is resent then."""
        return MessageOutcome(record, "retry", DEFERRED_REASON, None, delivered_ops, deferred=True)

    # -- verdicts -------------------------------------------------------------------------------

    def _decide(self, record: SqsRecord, parked: ParkedDelivery, fates: list[OpFate], now: float) -> MessageOutcome:
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
            dead = self._with_error(parked, [op for op, _ in permanent], op_fate, "permanent", attempts, now)
            if not self._send(self.dead_letter_queue_url, dead):
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
            expired = self._with_error(parked, [op for op, _ in waiting], fate, kind, attempts, now)
            expired = replace(
                expired,
                last_error=replace(expired.last_error, reason=f"gave up after {hours:.1f} h: {fate.result.reason}"),
            )
            if self._send(self.dead_letter_queue_url, expired):
                return MessageOutcome(record, "dead_letter", expired.last_error.reason, delivered_ops=len(delivered))
            return self._retry(record, parked, attempts, kind, retry_after, "could not reach the DLQ", len(delivered))

        delay = self.policy.delay(attempts, kind=kind, retry_after=retry_after, rng=self.rng)
        if delivered or permanent:
            remaining = self._with_error(parked, [op for op, _ in waiting], fate, kind, attempts, now)
            if self._send(self.retry_queue_url, remaining, delay=min(delay, 900)):
                return MessageOutcome(record, "repark", fate.result.reason, delay, len(delivered))
        return self._retry(record, parked, attempts, kind, retry_after, fate.result.reason, len(delivered), delay)

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
            self.sqs.change_message_visibility(
                QueueUrl=self.retry_queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
            )
        except Exception:  # noqa: BLE001 - the queue's own visibility timeout still brings it back
            delay = None
        return MessageOutcome(record, "retry", reason, delay, delivered_ops)

    @staticmethod
    def _with_error(
        parked: ParkedDelivery, ops: list[dict[str, Any]], fate: OpFate, kind: str, attempts: int, now: float
    ) -> ParkedDelivery:
        return replace(
            parked,
            ops=ops,
            attempts=attempts,
            last_error=LastError(
                kind=kind,
                reason=fate.result.reason,
                status=fate.status,
                at=int(now),
                retry_after=fate.retry_after,
            ),
        )

    def _send(self, queue_url: str, parked: ParkedDelivery, *, delay: int = 0) -> bool:
        try:
            self.sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=parked.to_json(),
                DelaySeconds=max(0, min(delay, 900)),
                MessageAttributes={
                    "event_type": {"DataType": "String", "StringValue": parked.event_type},
                    "error_kind": {"DataType": "String", "StringValue": parked.last_error.kind},
                },
            )
        except Exception:  # noqa: BLE001 - the caller keeps the original message instead
            return False
        return True

    def _dead_letter_raw(self, record: SqsRecord, reason: str, now: float) -> MessageOutcome:
        """A body this version cannot read goes to the DLQ untouched, the reason in its attributes."""
        try:
            self.sqs.send_message(
                QueueUrl=self.dead_letter_queue_url,
                MessageBody=record.body or "(empty)",
                MessageAttributes={
                    "error_kind": {"DataType": "String", "StringValue": "unreadable"},
                    "reason": {"DataType": "String", "StringValue": reason[:256]},
                    "dead_lettered_at": {"DataType": "Number", "StringValue": str(int(now))},
                },
            )
        except Exception:  # noqa: BLE001
            return MessageOutcome(record, "retry", reason)
        return MessageOutcome(record, "dead_letter", reason)


def summarise(outcomes: Sequence[MessageOutcome]) -> dict[str, int]:
    """Messages per verdict; a deferred message counts as "deferred" only, not also as "retry"."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = "deferred" if outcome.deferred else outcome.verdict
        counts[key] = counts.get(key, 0) + 1
    return counts


def failed_message_ids(outcomes: Sequence[MessageOutcome]) -> set[str]:
    return {o.record.message_id for o in outcomes if o.verdict == "retry"}


_VERDICT_METRICS: Final = {
    "delivered": "RetryDelivered",
    "retry": "RetryScheduled",
    "repark": "RetryReparked",
    "dead_letter": "DeadLettered",
    "deferred": "RetryDeferred",
}


@dataclass
class RetryService:
    """Everything the retry handler needs, built once per Lambda container."""

    settings: Settings
    secrets: SecretStore
    metrics: Metrics
    logger: Log
    sqs_factory: Callable[[], Sqs]
    session_factory: Callable[[], Any] | None = None
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    clock: Callable[[], float] = time.time
    rng: Callable[[], float] = random.random
    limiter: RateLimiter | None = None
    state: StateTable | None = None
    resolver: Resolver | None = None
    _clients: ClientCache | None = field(default=None, init=False)
    _processor: RetryProcessor | None = field(default=None, init=False)

    def _processor_for_queues(self) -> RetryProcessor:
        if self._processor is None:
            if not self.settings.retry_queue_url or not self.settings.dead_letter_queue_url:
                raise ConfigError("RETRY_QUEUE_URL and DEAD_LETTER_QUEUE_URL must both be set")
            self._processor = RetryProcessor(
                self.sqs_factory(),
                self.settings.retry_queue_url,
                self.settings.dead_letter_queue_url,
                self.policy,
                self.clock,
                self.rng,
                self.state,
                self.resolver or Resolver(self.settings.identifier, self.state),
                request_seconds=self.settings.track_request_seconds,
                verdict_seconds=VERDICT_CALLS * (self.settings.aws_attempt_seconds + deadline.STEP_SLACK),
            )
        return self._processor

    def _sender(self) -> tuple[Sender | None, str]:
        try:
            site_id, api_key = self.secrets.customerio()
        except ConfigError as exc:
            return None, str(exc)
        if not site_id or not api_key:
            return None, "Customer.io credentials missing in SSM"
        if self._clients is None:
            self._clients = self.settings.track_clients(self.session_factory)
        return self._clients.get(site_id, api_key), ""

    def handle(self, records: Sequence[Mapping[str, Any]]) -> list[MessageOutcome]:
        with deadline.keeping(self.settings.answer_reserve):  # every call below ends with time to answer
            return self._handle(records)

    def _handle(self, records: Sequence[Mapping[str, Any]]) -> list[MessageOutcome]:
        processor = self._processor_for_queues()
        with deadline.keeping(processor.verdict_seconds + processor.request_seconds):  # the SSM read
            sender, why_not = self._sender()
        if sender is None:
            self.metrics.add_metric(name="ConfigError", unit="Count", value=1)
            self.logger.error("cannot deliver parked messages: %s", why_not)
        if self.limiter is None:
            self.limiter = RateLimiter(self.settings.rate_per_container)
        requests = 0

        def on_request() -> None:
            nonlocal requests
            requests += 1
            assert self.limiter is not None
            self.limiter.acquire()

        outcomes = processor.process(
            [SqsRecord.from_lambda(r) for r in records],
            sender,
            on_request=on_request,
            missing_credentials=why_not or "Customer.io credentials missing in SSM",
        )
        self.metrics.add_metric(name="RetryRequests", unit="Count", value=requests)
        for verdict, count in summarise(outcomes).items():
            self.metrics.add_metric(name=_VERDICT_METRICS[verdict], unit="Count", value=count)
        for outcome in outcomes:
            if outcome.verdict != "delivered":
                self.logger.warning(
                    "parked message not delivered",
                    extra={
                        "message_id": outcome.record.message_id,
                        "verdict": outcome.verdict,
                        "reason": outcome.reason[:300],
                        "delay": outcome.delay,
                        "deferred": outcome.deferred,
                    },
                )
        self.logger.info(
            "retry batch done", extra={"messages": len(outcomes), "requests": requests, **summarise(outcomes)}
        )
        return outcomes
