"""The load test's settings, configuration and what it reports (dodo_cio_testdata.loadtest runs it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from dodo_cio_local.local_template import REPO_ROOT

if TYPE_CHECKING:
    pass


SAMPLES_DIR: Final = REPO_ROOT / "events" / "dodo"
SEND_TIMEOUT: Final = 15.0  # Dodo gives up on an answer after 15 s
# The local run's drain sleeps this long after a poll that found nothing visible (make run: 1 s).
DRAIN_IDLE_INTERVAL: Final = 0.25
PROGRESS_EVERY: Final = 5.0
SANDBOX_LOGGER: Final = "dodo_cio_local.sandbox"
# Renewal day's targets (issue 18), for `--burst`.
BURST_WEBHOOKS: Final = 10_000
BURST_SENDERS: Final = 50
BURST_SANDBOX_RPS: Final = 4.0  # 5x is 20 webhooks/s: what one local container answers on 2 cores (README)
BURST_OVERLOAD: Final = 5  # senders start webhooks at this many times the sandbox's limit
BURST_MAX_429_SHARE: Final = 0.02
BURST_MAX_REQUESTS_PER_EVENT: Final = 0.3
BURST_MAX_DRAIN_SECONDS: Final = 120.0
BURST_MAX_MEMORY_MB: Final = 1024.0
# Ids in the samples that name one object: rewritten per webhook so each is a distinct event.
OBJECT_ID_KEYS: Final = (
    "payment_id",
    "refund_id",
    "dispute_id",
    "subscription_id",
    "invoice_id",
    "checkout_session_id",
)


class LoadTestError(RuntimeError):
    """The load test cannot run; the message says why."""


# --- Configuration and results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What `make load` runs; the defaults are the command line's (dodo_cio_testdata.loadtest)."""

    webhooks: int = 2000
    concurrency: int = 20
    duplicate_rate: float = 0.05
    fail_rate: float = 0.2  # of Customer.io requests, answered 503 by the sandbox
    seed: int = 20260101
    url: str | None = None  # a running `make run`; None starts one in this process
    secret: str | None = None  # default: $DODO_WEBHOOK_SECRET, else the development secret
    # Dodo retries a failed delivery 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h later; compressed here.
    max_attempts: int = 8
    retry_pause: float = 0.1  # seconds; attempt n+1 waits n times this
    drain_timeout: float = 180.0
    request_timeout: float = SEND_TIMEOUT
    verbose: bool = False  # bridge and sandbox logs on the console instead of a log file
    progress: bool = True
    # Renewal day (`--burst`): the sandbox answers 429 above this many requests a second, and the
    # senders together start at most `send_rate` webhooks a second (None: as fast as they are answered).
    sandbox_rate_limit: float | None = None
    send_rate: float | None = None

    @property
    def burst(self) -> bool:
        return self.sandbox_rate_limit is not None

    def __post_init__(self) -> None:
        if self.webhooks < 1:
            raise ValueError("webhooks must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 <= self.duplicate_rate <= 1:
            raise ValueError("duplicate_rate must be between 0 and 1")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.retry_pause < 0 or self.drain_timeout <= 0 or self.request_timeout <= 0:
            raise ValueError("retry_pause must be >= 0; drain_timeout and request_timeout > 0")
        for name in ("sandbox_rate_limit", "send_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of requests a second")


@dataclass(frozen=True, slots=True)
class Webhook:
    """One distinct Dodo event: what is sent, and the Customer.io event id it must become."""

    index: int
    webhook_id: str
    event_type: str
    body: bytes
    event_id: str
    customer_id: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None  # None: no answer (connection error, timeout)
    answer: str  # the body's "status" or "error", or the exception's name
    latency_ms: float


@dataclass(slots=True)
class Delivery:
    """One Dodo delivery of a webhook (the original or the deliberate duplicate), every attempt."""

    webhook: Webhook
    duplicate: bool
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.attempts) and is_2xx(self.attempts[-1].status)

    @property
    def final(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """An event op Customer.io (the sandbox) accepted. `event_id` is None when not visible (HTTP view)."""

    event_id: str | None
    customer: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class WireStats:
    requests: int  # POSTs to the Track API
    injected_503: int
    status_counts: dict[str, int]
    events: list[AcceptedEvent]


@dataclass(slots=True)
class LoadReport:
    mode: str
    config: LoadConfig
    webhooks: int = 0
    duplicates: int = 0
    deliveries: int = 0
    attempts: int = 0
    dodo_retries: int = 0
    unacknowledged: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    unexpected_answers: int = 0  # 4xx other than 409: the test or the bridge is broken
    ignored: int = 0  # webhooks the bridge acknowledged without an event (none with the samples)
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    wall_seconds: float = 0.0
    drained: bool = False
    max_retry_depth: int = 0
    retry_queue_left: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    wire_requests: int = 0
    injected_503: int = 0
    wire_status: dict[str, int] = field(default_factory=dict)
    events_accepted: int = 0  # accepted event ops attributed to this run, wire duplicates included
    events_delivered: int = 0  # distinct webhooks whose event id was accepted
    wire_duplicates: int = 0
    lost: int = 0
    doubled: int | None = 0  # None: not checkable (event ids not visible)
    other_events: int = 0  # accepted events not from this run (a long-lived `make run`)
    dlq_depth: int = 0
    lost_examples: list[str] = field(default_factory=list)
    doubled_examples: list[str] = field(default_factory=list)
    log_path: str | None = None
    log_errors: int = 0
    peak_memory_mb: float = 0.0  # this process's peak RSS: the emulator, the sandbox and the senders

    @property
    def throttled_share(self) -> float:
        """429s among the requests to Customer.io."""
        return self.wire_status.get("429", 0) / self.wire_requests if self.wire_requests else 0.0

    @property
    def requests_per_event(self) -> float:
        return self.wire_requests / self.events_delivered if self.events_delivered else 0.0

    def target_misses(self) -> list[str]:
        """Renewal day's targets (issue 18), checked on a burst only."""
        if not self.config.burst:
            return []
        misses = []
        if self.throttled_share > BURST_MAX_429_SHARE:
            misses.append(f"429s {self.throttled_share:.1%} of requests (target <= {BURST_MAX_429_SHARE:.0%})")
        if self.requests_per_event > BURST_MAX_REQUESTS_PER_EVENT:
            per_event = f"{self.requests_per_event:.2f} requests per event"
            misses.append(f"{per_event} (target <= {BURST_MAX_REQUESTS_PER_EVENT})")
        if self.drained and self.drain_seconds > BURST_MAX_DRAIN_SECONDS:
            late = f"delivered {self.drain_seconds:.0f} s after the last webhook"
            misses.append(f"{late} (target <= {BURST_MAX_DRAIN_SECONDS:.0f} s)")
        if self.peak_memory_mb >= BURST_MAX_MEMORY_MB:
            misses.append(f"peak memory {self.peak_memory_mb:.0f} MB (target < {BURST_MAX_MEMORY_MB:.0f} MB)")
        return misses

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and not self.doubled
            and self.dlq_depth == 0
            and self.unacknowledged == 0
            and self.unexpected_answers == 0
            and self.drained
            and not self.target_misses()
        )

    def failures(self) -> list[str]:
        problems: list[str] = []
        if self.lost:
            problems.append(f"{self.lost} webhook(s) lost (event id never accepted)")
        if self.doubled:
            problems.append(f"{self.doubled} webhook(s) doubled (two different event ids accepted)")
        if self.dlq_depth:
            problems.append(f"{self.dlq_depth} message(s) on the dead-letter queue")
        if self.unacknowledged:
            problems.append(
                f"{self.unacknowledged} delivery(ies) never got a 2xx in {self.config.max_attempts} attempts"
            )
        if self.unexpected_answers:
            problems.append(f"{self.unexpected_answers} unexpected 4xx answer(s)")
        if not self.drained:
            problems.append(
                f"retry queue not empty after {self.config.drain_timeout:g} s ({self.retry_queue_left} left)"
            )
        problems.extend(self.target_misses())
        return problems

    def format(self) -> str:
        cfg = self.config
        sent = self.deliveries / self.send_seconds if self.send_seconds else 0.0
        end_to_end = self.webhooks / self.wall_seconds if self.wall_seconds else 0.0
        per_invocation = self.send_seconds * 1000 / self.attempts if self.attempts else 0.0
        answers = ", ".join(f"{k} x{v}" for k, v in sorted(self.answers.items(), key=lambda kv: (-kv[1], kv[0])))
        wire = ", ".join(f"{k} x{v}" for k, v in sorted(self.wire_status.items()))
        doubled = "not checkable (event ids not visible over HTTP)" if self.doubled is None else str(self.doubled)
        lines = [
            "",
            f"Load test ({self.mode}): {cfg.webhooks} webhooks from {cfg.concurrency} concurrent senders, "
            f"sandbox fail_rate {cfg.fail_rate:g}, seed {cfg.seed}",
            f"  webhooks sent        {self.webhooks} distinct",
            f"  duplicates sent      {self.duplicates} (same webhook-id, signed again)",
            f"  answers by status    {answers}",
            f"  Dodo-style retries   {self.dodo_retries} ({self.attempts} requests for {self.deliveries} deliveries; "
            f"unacknowledged {self.unacknowledged})",
            f"  send phase           {self.send_seconds:.1f} s, {sent:.1f} deliveries/s "
            f"(~{per_invocation:.0f} ms each: invocations are serialised, one warm container)",
            f"  ingest latency       p50 {self.latency_p50_ms:.0f} ms, p99 {self.latency_p99_ms:.0f} ms, "
            f"max {self.latency_max_ms:.0f} ms (as the senders saw it)",
            f"  retry queue          max depth {self.max_retry_depth} while sending; "
            + (
                f"empty {self.drain_seconds:.1f} s after the last answer"
                if self.drained
                else f"{self.retry_queue_left} still there after {self.drain_seconds:.1f} s"
            ),
            f"  wall time            {self.wall_seconds:.1f} s, first send to empty retry queue "
            f"({end_to_end:.1f} webhooks/s end to end)",
            f"  Customer.io requests {self.wire_requests} on the wire ({wire or 'none'})",
            f"  503s injected        {self.injected_503}",
            f"  events delivered     {self.events_delivered} distinct of {self.webhooks - self.ignored} expected "
            f"({self.events_accepted} accepted event ops, wire duplicates {self.wire_duplicates})",
            f"  lost                 {self.lost}"
            + (f"  e.g. {', '.join(self.lost_examples)}" if self.lost_examples else ""),
            f"  doubled              {doubled}"
            + (f"  e.g. {', '.join(self.doubled_examples)}" if self.doubled_examples else ""),
            f"  DLQ depth            {self.dlq_depth}",
        ]
        if self.ignored:
            lines.append(f"  ignored by bridge    {self.ignored} (acknowledged, no event expected)")
        if self.other_events:
            lines.append(f"  other events         {self.other_events} accepted during the run, not from it")
        if self.log_path:
            lines.append(f"  bridge log           {self.log_path} ({self.log_errors} ERROR lines)")
        if cfg.burst:
            lines += [
                f"  renewal day          sandbox limit {cfg.sandbox_rate_limit:g} req/s, senders at up to "
                f"{cfg.send_rate or 0:g} webhooks/s",
                f"  429 share            {self.throttled_share:.2%} of Customer.io requests (target <= 2 %)",
                f"  requests per event   {self.requests_per_event:.3f} (target <= 0.3)",
                f"  delivered after      {self.drain_seconds:.1f} s after the last answer (target <= 120 s)",
                f"  peak memory          {self.peak_memory_mb:.0f} MB, this process (target < 1024 MB)",
            ]
        problems = self.failures()
        lines.append("  result               " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
        return "\n".join(lines)


def is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
