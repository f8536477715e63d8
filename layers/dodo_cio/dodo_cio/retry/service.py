"""The retry service: one invocation's batch of parked messages, from SQS records to verdicts.

Order of work, and why:
  1. read each body; one this version cannot read is dead-lettered untouched (`verdicts`);
  2. pre-send fates for the whole batch at once: who each op is for (`dodo_cio.state.identity`), whether
     it fits Customer.io's limits, whether newer state was already applied (`dodo_cio.state.table`);
  3. the ops still to send, packed into few requests (`planning`), paced (`pacing`), sent through
     the same `TrackClient` and classification as the ingest path;
  4. one verdict per message from its ops' fates (`verdicts`), recorded on SQS.

Time: the invocation runs to its deadline (`dodo_cio.platform.deadline`) less `Settings.answer_reserve`. A
Customer.io request is started only while its whole timeout still fits before the time kept to
record verdicts, and a verdict that needs SQS only while its calls still fit. A message that did
not get its turn is deferred: reported as a batch item failure with no SQS call and no verdict,
so it comes back whole after the queue's visibility timeout (it is neither lost nor counted as
delivered, re-parked or dead-lettered).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dodo_cio.configuration.settings import SecretStore, Settings
from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.destination import TRACK_LIMITS, ApiLimits, DeliveryClients
from dodo_cio.delivery.parking import ParkedDelivery, ParkedFormatError
from dodo_cio.delivery.track import OpResult, email_change_refusals
from dodo_cio.mapping.limits import fit_op
from dodo_cio.platform import deadline
from dodo_cio.platform.env import ConfigError
from dodo_cio.platform.telemetry import Log, Metrics
from dodo_cio.retry.pacing import RateLimiter
from dodo_cio.retry.planning import OpFate, Sender, plan_requests, send_with_split
from dodo_cio.retry.verdicts import VERDICT_CALLS, MessageOutcome, Queues, Sqs, SqsRecord, Verdicts, summarise
from dodo_cio.state.identity import Known, Resolver, needs_resolution
from dodo_cio.state.table import (
    StateRejected,
    StateTable,
    StateUnavailable,
    claim_problem,
    is_stale,
    plan_for,
    state_claim,
)

_VERDICT_METRICS: Final = {
    "delivered": "RetryDelivered",
    "retry": "RetryScheduled",
    "repark": "RetryReparked",
    "dead_letter": "DeadLettered",
    "deferred": "RetryDeferred",
}


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
    # The chosen API's request limits (`Settings.delivery_limits`), which the requests are planned by.
    limits: ApiLimits = TRACK_LIMITS
    monotonic: Callable[[], float] = time.monotonic

    def _has_time(self, seconds: float) -> bool:
        """Whether work that may take `seconds` ends before the current deadline (True without one)."""
        limit = deadline.current()
        return limit is None or limit.fits(seconds, self.monotonic())

    def _pre_send_fates(self, messages: list[list[dict[str, Any]]]) -> list[list[OpFate | None]]:
        """Pre-decided fates: who each op is for, whether it fits, whether newer state was applied.

        Per batch, not per op: one directory read for the ops that still need their person
        (`dodo_cio.state.identity`), then one transaction that moves every piece of state forward
        (`dodo_cio.state.table`); a stale identify counts as done, one that could not be checked waits.
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
            elif self.state is not None and (refused := claim_problem(fitted.op)) is not None:
                fates[m][o] = OpFate(OpResult("permanent", f"state record refused: {refused}"), None, None)
            messages[m][o] = fitted.op
        if self.state is None:
            return fates
        admitted = [(m, o) for m, o, _ in flat if fates[m][o] is None]
        if not self._commit_state(admitted, messages, fates, known):
            # DynamoDB refused the batch's records as they are: find whose, one message at a time,
            # so one bad message cannot send the others to the dead-letter queue.
            for m in sorted({m for m, _ in admitted}):
                self._commit_state([(mm, o) for mm, o in admitted if mm == m], messages, fates, known)
        return fates

    def _commit_state(
        self,
        slots: list[tuple[int, int]],
        messages: list[list[dict[str, Any]]],
        fates: list[list[OpFate | None]],
        known: Known,
    ) -> bool:
        """Commit the freshness records of these ops and set the fates that follow; False if DynamoDB refused them."""
        if self.state is None:
            return True
        plan = plan_for(
            [messages[m][o] for m, o in slots],
            learned=known.learned,
            payments=known.learned_payments,
            learned_emails=known.learned_emails,
        )
        fate: OpFate | None = None
        try:
            self.state.commit(plan)
        except StateRejected as exc:  # permanent: the same records are refused every time
            if len({m for m, _ in slots}) > 1:
                return False
            fate = OpFate(OpResult("permanent", f"state records refused: {exc}"), None, None)
        except StateUnavailable:  # cannot tell; try again later rather than risk going back
            fate = OpFate(OpResult("transient", "state table unreachable for the freshness check"), None, None)
        for m, o in slots:
            if fate is not None:
                if state_claim(messages[m][o]) is not None:
                    fates[m][o] = fate
            elif is_stale(messages[m][o], plan, plan.stale):
                fates[m][o] = OpFate(OpResult("delivered", "skipped: newer state was already applied"), None, None)
        return True

    def process(
        self,
        records: Sequence[SqsRecord],
        sender: Sender | None,
        *,
        on_request: Callable[[], None] = lambda: None,
        missing_credentials: str = "Customer.io credentials missing in SSM",
    ) -> list[MessageOutcome]:
        """One outcome per record, in the records' order."""
        now = self.clock()
        queues = Queues(self.sqs, self.retry_queue_url, self.dead_letter_queue_url)
        verdicts = Verdicts(queues, self.policy, self.rng)
        outcomes: dict[int, MessageOutcome] = {}
        readable: list[tuple[int, SqsRecord, ParkedDelivery]] = []
        for index, record in enumerate(records):
            try:
                readable.append((index, record, ParkedDelivery.from_json(record.body)))
            except ParkedFormatError as exc:
                outcomes[index] = verdicts.dead_letter_raw(record, f"unreadable parked message: {exc}", now)

        # None: the op was not tried in this invocation (no time); its message is deferred whole.
        slots: list[list[OpFate | None]]
        if sender is None:
            slots = [[OpFate(OpResult("config", missing_credentials), None, None) for _ in p.ops] for *_, p in readable]
        else:
            # Directory reads, Dodo API lookups and the state commit leave room for one request.
            with deadline.keeping(self.verdict_seconds + self.request_seconds):
                slots = self._pre_send_fates([p.ops for *_, p in readable])
            pending = [[o for o, fate in enumerate(row) if fate is None] for row in slots]
            plan = plan_requests(
                [[p.ops[o] for o in pending[m]] for m, (*_, p) in enumerate(readable)],
                max_bytes=self.limits.max_request_bytes,
                max_ops=self.limits.max_calls_per_request,
            )

            def can_send() -> bool:
                return self._has_time(self.request_seconds)

            with deadline.keeping(self.verdict_seconds):
                for request in plan:
                    if not can_send():
                        break  # no request starts that its timeout could carry past the time kept
                    ops = [readable[m][2].ops[pending[m][k]] for m, k in request]
                    for (m, k), fate in zip(request, send_with_split(sender, ops, on_request, can_send), strict=True):
                        slots[m][pending[m][k]] = fate

        for (index, record, parked), row in zip(readable, slots, strict=True):
            fates = [f for f in row if f is not None]
            if len(fates) < len(row):
                outcomes[index] = verdicts.deferred(record, sum(f.result.outcome == "delivered" for f in fates))
            elif any(f.result.outcome != "delivered" for f in fates) and not self._has_time(self.verdict_seconds):
                outcomes[index] = verdicts.deferred(record, 0)  # its SQS calls might not end in time
            else:
                outcomes[index] = verdicts.decide(record, parked, fates, now)
                outcomes[index].email_changes_refused = email_change_refusals([f.result for f in fates])
        return [outcomes[index] for index in range(len(records))]


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
    monotonic: Callable[[], float] = time.monotonic  # the deadlines' clock (dodo_cio.platform.deadline); tests drive it
    _clients: DeliveryClients | None = field(default=None, init=False)
    _requests: int = field(default=0, init=False)
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
                limits=self.settings.delivery_limits,
                monotonic=self.monotonic,
            )
        return self._processor

    def _pace(self) -> None:
        """Before every Customer.io request, a Pipelines send's extra ones included: counted and paced."""
        self._requests += 1
        if self.limiter is None:
            self.limiter = RateLimiter(self.settings.rate_per_container)
        self.limiter.acquire()

    def _sender(self) -> tuple[Sender | None, str]:
        """The chosen API's client (`Settings.customerio_api`), or None and why not."""
        try:
            credentials = self.secrets.delivery_credentials()
        except ConfigError as exc:
            return None, str(exc)
        if self._clients is None:
            self._clients = self.settings.delivery_clients(self.session_factory, pace=self._pace)
        return self._clients.get(credentials), ""

    def handle(self, records: Sequence[Mapping[str, Any]]) -> list[MessageOutcome]:
        """Every record's outcome, in order; counted in metrics and logged unless delivered."""
        with deadline.keeping(self.settings.answer_reserve):  # every call below ends with time to answer
            return self._handle(records)

    def _handle(self, records: Sequence[Mapping[str, Any]]) -> list[MessageOutcome]:
        processor = self._processor_for_queues()
        with deadline.keeping(processor.verdict_seconds + processor.request_seconds):  # the SSM read
            sender, why_not = self._sender()
        if sender is None:
            self.metrics.add_metric(name="ConfigError", unit="Count", value=1)
            self.logger.error("cannot deliver parked messages: %s", why_not)
        self._requests = 0
        outcomes = processor.process(
            [SqsRecord.from_lambda(r) for r in records],
            sender,
            on_request=self._pace,
            missing_credentials=why_not,
        )
        requests = self._requests
        self.metrics.add_metric(name="RetryRequests", unit="Count", value=requests)
        for verdict, count in summarise(outcomes).items():
            self.metrics.add_metric(name=_VERDICT_METRICS[verdict], unit="Count", value=count)
        if refused := sum(o.email_changes_refused for o in outcomes):  # refused ops: dead-lettered, not retried
            self.metrics.add_metric(name="EmailChangeRefused", unit="Count", value=refused)
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
