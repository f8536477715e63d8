"""Load on one machine: thousands of signed webhooks from concurrent senders, then an exact count.

`make load` (or `python -m dodo_cio_testdata.loadtest`) starts the local run in this process (port 0,
the Customer.io sandbox answering a seeded 20 % of requests with 503, the retry drain on) unless
`--url` names a running `make run`, and then:

* sends N distinct webhooks (default 2,000) from C senders (default 20; threads, one
  `requests.Session` each). Bodies are the samples in events/dodo/, rotated, each with its own
  webhook-id and its own customer / payment / subscription ids, so every webhook is a distinct event
  for a distinct person; about 5 % are delivered a second time (same webhook-id, signed again), some
  while the first is still in flight, to show the idempotency layer holds under load;
* behaves like Dodo: any answer that is not 2xx (5xx, 409) or no answer at all is retried by the
  same sender after a short pause (Dodo's schedule, compressed), up to a limit;
* waits until the retry queue holds nothing (visible, in flight or delayed);
* checks at the sandbox that every webhook's event id -- `deterministic_ulid(webhook_id,
  event_time_ms)`, as the mapping computes it -- was accepted, and that no webhook got two different
  event ids (zero lost, zero doubled); the same id accepted twice on the wire is counted apart, since
  Customer.io deduplicates events by id; and that the dead-letter queue is empty.

The exit status is non-zero on any loss, double, dead letter, unacknowledged webhook or a retry
queue that did not drain. Against `--url` the sandbox's HTTP view does not show event ids, so
events are attributed by their (unique) customer id and doubles cannot be told from wire duplicates.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, WEBHOOK_PATH
from dodo_cio_local.local_template import REPO_ROOT

if TYPE_CHECKING:
    import requests

    from dodo_cio_local.local_run import LocalBridge

SAMPLES_DIR: Final = REPO_ROOT / "events" / "dodo"
DEFAULT_WEBHOOKS: Final = 2000
DEFAULT_CONCURRENCY: Final = 20
DEFAULT_DUPLICATE_RATE: Final = 0.05
DEFAULT_FAIL_RATE: Final = 0.2
DEFAULT_SEED: Final = 20260101
# Dodo retries a failed delivery 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h later; compressed here.
DEFAULT_MAX_ATTEMPTS: Final = 8
DEFAULT_RETRY_PAUSE: Final = 0.1  # seconds; attempt n+1 waits n times this
DEFAULT_DRAIN_TIMEOUT: Final = 180.0
SEND_TIMEOUT: Final = 15.0  # Dodo gives up on an answer after 15 s
# The local run's drain sleeps this long after a poll that found nothing visible (make run: 1 s).
DRAIN_IDLE_INTERVAL: Final = 0.25
PROGRESS_EVERY: Final = 5.0
SANDBOX_LOGGER: Final = "dodo_cio_local.sandbox"
# Ids in the samples that name one object: rewritten per webhook so each is a distinct event.
_OBJECT_ID_KEYS: Final = (
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
    webhooks: int = DEFAULT_WEBHOOKS
    concurrency: int = DEFAULT_CONCURRENCY
    duplicate_rate: float = DEFAULT_DUPLICATE_RATE
    fail_rate: float = DEFAULT_FAIL_RATE
    seed: int = DEFAULT_SEED
    url: str | None = None  # a running `make run`; None starts one in this process
    secret: str | None = None  # default: $DODO_WEBHOOK_SECRET, else the development secret
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_pause: float = DEFAULT_RETRY_PAUSE
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    request_timeout: float = SEND_TIMEOUT
    verbose: bool = False  # bridge and sandbox logs on the console instead of a log file
    progress: bool = True

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
        return bool(self.attempts) and _is_2xx(self.attempts[-1].status)

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

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and not self.doubled
            and self.dlq_depth == 0
            and self.unacknowledged == 0
            and self.unexpected_answers == 0
            and self.drained
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
        problems = self.failures()
        lines.append("  result               " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
        return "\n".join(lines)


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- Webhooks ------------------------------------------------------------------------------------


def load_samples(directory: Path = SAMPLES_DIR) -> list[tuple[str, dict[str, Any]]]:
    samples = [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("*.json"))]
    if not samples:
        raise LoadTestError(f"no sample bodies in {directory}")
    return samples


def _unique(value: str, tag: str) -> str:
    prefix, sep, _ = value.partition("_")
    return f"{prefix}_{tag}" if sep else f"{value}_{tag}"


def make_webhook(index: int, sample: Mapping[str, Any], run_token: str) -> Webhook:
    """The sample as a distinct event: its own webhook id, customer and object ids."""
    from dodo_cio.models import parse_envelope  # noqa: PLC0415
    from dodo_cio.ulid import deterministic_ulid  # noqa: PLC0415

    tag = f"load{run_token}{index:06d}"
    doc = json.loads(json.dumps(sample))
    data = doc["data"]
    customer_id = f"cus_{tag}"
    email: str | None = None
    if isinstance(data.get("customer"), dict):
        data["customer"]["customer_id"] = customer_id
        if data["customer"].get("email"):
            email = data["customer"]["email"] = f"load+{run_token}{index:06d}@example.com"
    if isinstance(data.get("customer_id"), str):
        data["customer_id"] = customer_id
    for key in _OBJECT_ID_KEYS:
        if isinstance(data.get(key), str):
            data[key] = _unique(data[key], tag)
    if data.get("payload_type") == "LicenseKey" and isinstance(data.get("id"), str):
        data["id"] = _unique(data["id"], tag)
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    envelope = parse_envelope(doc)
    webhook_id = f"msg_{tag}"
    return Webhook(
        index=index,
        webhook_id=webhook_id,
        event_type=envelope.type,
        body=body,
        event_id=deterministic_ulid(webhook_id, envelope.timestamp_ms),
        customer_id=customer_id,
        email=email,
    )


def make_webhooks(count: int, run_token: str, samples: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Webhook]:
    """`count` distinct webhooks, the samples rotated."""
    return [make_webhook(i, samples[i % len(samples)][1], run_token) for i in range(count)]


def plan_deliveries(
    webhooks: Sequence[Webhook], duplicate_rate: float, concurrency: int, rng: random.Random
) -> list[tuple[Webhook, bool]]:
    """Send order: every webhook once, plus ~`duplicate_rate` of them again, each duplicate soon after
    its original (within about three rounds of the senders), so some race the first delivery."""
    dup_count = round(len(webhooks) * duplicate_rate)
    duplicated = rng.sample(range(len(webhooks)), dup_count)
    keyed: list[tuple[float, int, Webhook, bool]] = [(float(w.index), 0, w, False) for w in webhooks]
    for i in duplicated:
        keyed.append((i + rng.uniform(0.5, 3 * concurrency), 1, webhooks[i], True))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(w, dup) for _, _, w, dup in keyed]


# --- Sending, like Dodo --------------------------------------------------------------------------


def _answer_label(response: requests.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    if isinstance(doc, dict):
        value = doc.get("status") if _is_2xx(response.status_code) else doc.get("error", doc.get("message"))
        return str(value) if value is not None else ""
    return ""


def deliver(
    session: requests.Session,
    webhook: Webhook,
    *,
    duplicate: bool,
    url: str,
    secret: str,
    config: LoadConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """One Dodo delivery: signed afresh on every attempt, retried on anything but a 2xx."""
    import requests  # noqa: PLC0415

    from dodo_cio_cli.sender import send_webhook  # noqa: PLC0415

    delivery = Delivery(webhook, duplicate)
    for attempt in range(1, config.max_attempts + 1):
        start = time.perf_counter()
        try:
            response = send_webhook(
                webhook.body,
                url=url,
                secret=secret,
                webhook_id=webhook.webhook_id,
                timeout=config.request_timeout,
                session=session,
                user_agent="dodo-cio-loadtest",
            )
        except requests.RequestException as exc:
            delivery.attempts.append(Attempt(None, type(exc).__name__, (time.perf_counter() - start) * 1000))
        else:
            label = _answer_label(response)
            delivery.attempts.append(Attempt(response.status_code, label, (time.perf_counter() - start) * 1000))
            if _is_2xx(response.status_code):
                break
        if attempt < config.max_attempts:
            sleep(config.retry_pause * attempt)
    return delivery


def send_all(
    plan: Sequence[tuple[Webhook, bool]],
    *,
    url: str,
    secret: str,
    config: LoadConfig,
    on_progress: Callable[[int], None] | None = None,
) -> list[Delivery]:
    """`config.concurrency` sender threads, each with its own session, taking deliveries in plan order."""
    import requests  # noqa: PLC0415

    jobs: queue.SimpleQueue[tuple[Webhook, bool]] = queue.SimpleQueue()
    for job in plan:
        jobs.put(job)
    results: list[Delivery] = []
    errors: list[BaseException] = []

    def sender() -> None:
        session = requests.Session()
        try:
            while True:
                try:
                    webhook, duplicate = jobs.get_nowait()
                except queue.Empty:
                    return
                results.append(deliver(session, webhook, duplicate=duplicate, url=url, secret=secret, config=config))
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)
        finally:
            session.close()

    threads = [
        threading.Thread(target=sender, name=f"dodo-load-sender-{n}", daemon=True) for n in range(config.concurrency)
    ]
    for thread in threads:
        thread.start()
    last = time.monotonic()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.2)
        if on_progress is not None and time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            on_progress(len(results))
    if errors:
        raise LoadTestError(f"a sender crashed: {errors[0]!r}") from errors[0]
    return results


# --- The bridge under test -------------------------------------------------------------------------


class Target:
    """What the load test needs from the bridge: where to send, queue depths, what Customer.io got."""

    mode = ""
    webhook_url = ""
    secret = ""
    log_path: str | None = None

    def depths(self) -> dict[str, dict[str, int]]:
        raise NotImplementedError

    def wire(self) -> WireStats:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what was started; undo what was changed."""


def _total(depth: Mapping[str, int]) -> int:
    return int(depth.get("visible", 0)) + int(depth.get("in_flight", 0)) + int(depth.get("delayed", 0))


class _Sink(io.TextIOBase):
    """stdout while the in-process bridge runs: its JSON logs and metrics go to a file, not the console.

    Stays usable after `close_file()` (Powertools' Logger keeps a reference to the stream it was built
    with; later writes are dropped instead of failing on a closed file).
    """

    def __init__(self, path: str) -> None:
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close_file
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._file is not None:
                self._file.write(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close_file(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            file.close()


class InProcessTarget(Target):
    """A LocalBridge in this process: port 0, sandbox on a free port, its fail_rate and seed set."""

    mode = "in-process local run"

    def __init__(self, config: LoadConfig) -> None:
        from dodo_cio_local.local_run import LocalBridge  # noqa: PLC0415
        from dodo_cio_local.local_template import LocalRunError  # noqa: PLC0415

        self.secret = config.secret or os.environ.get("DODO_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
        self._stack = contextlib.ExitStack()
        self._sink: _Sink | None = None
        if not config.verbose:
            self._quiet()
        try:
            bridge = LocalBridge(
                port=0,
                sandbox_port=0,
                secret=self.secret,
                log=_console_log if config.verbose else self._bridge_log,
                drain=True,
                drain_interval=DRAIN_IDLE_INTERVAL,
            )
            self._stack.callback(bridge.stop)
            info = bridge.start()
        except LocalRunError as exc:
            self.close()
            raise LoadTestError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        sandbox = bridge.sandbox
        assert sandbox is not None  # no credentials were given: the sandbox is always used
        sandbox.fail_rate = config.fail_rate
        sandbox.seed = config.seed
        sandbox.reset()  # re-seeds the failure sequence
        self.bridge: LocalBridge = bridge
        self.webhook_url = info.webhook_url

    def _quiet(self) -> None:
        handle, path = tempfile.mkstemp(prefix="dodo-cio-load-", suffix=".log")
        os.close(handle)
        sink = self._sink = _Sink(path)
        self.log_path = path
        previous_stdout = sys.stdout
        sys.stdout = sink

        def give_stdout_back() -> None:
            sys.stdout = previous_stdout
            # Loggers created meanwhile (Powertools' in the handler modules) bound the sink: rebind them.
            for logger in list(logging.Logger.manager.loggerDict.values()):
                for handler in getattr(logger, "handlers", ()):
                    if isinstance(handler, logging.StreamHandler) and handler.stream is sink:
                        handler.setStream(previous_stdout)

        self._stack.callback(sink.close_file)
        self._stack.callback(give_stdout_back)
        sandbox_log = logging.getLogger(SANDBOX_LOGGER)
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s track-sandbox %(message)s", "%H:%M:%S"))
        saved = (sandbox_log.level, sandbox_log.propagate)
        sandbox_log.addHandler(handler)  # the sandbox adds its stderr handler only when none exists
        sandbox_log.setLevel(logging.INFO)
        sandbox_log.propagate = False

        def restore() -> None:
            sandbox_log.removeHandler(handler)
            sandbox_log.setLevel(saved[0])
            sandbox_log.propagate = saved[1]

        self._stack.callback(restore)

    def _bridge_log(self, line: str) -> None:
        if self._sink is not None:
            self._sink.write(line + "\n")

    def depths(self) -> dict[str, dict[str, int]]:
        return self.bridge.queue_depths()

    def wire(self) -> WireStats:
        sandbox = self.bridge.sandbox
        assert sandbox is not None
        records = list(sandbox.requests)
        posts = [r for r in records if r.method == "POST" and r.path.startswith("/api/")]
        statuses = Counter(str(r.status or "closed") for r in posts)
        events = [
            AcceptedEvent(
                event_id=op.get("id") if isinstance(op.get("id"), str) else None,
                customer=_identifier(op.get("identifiers")),
                name=op.get("name") if isinstance(op.get("name"), str) else None,
            )
            for op in sandbox.accepted_ops()
            if op.get("action") == "event"
        ]
        return WireStats(
            requests=len(posts),
            injected_503=sum(1 for r in posts if r.scripted == "fail_rate"),
            status_counts=dict(statuses),
            events=events,
        )

    def close(self) -> None:
        self._stack.close()


def _console_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _identifier(identifiers: Any) -> str | None:
    if not isinstance(identifiers, dict):
        return None
    for key in ("id", "email", "cio_id"):
        value = identifiers.get(key)
        if isinstance(value, str):
            return value
    return None


class HttpTarget(Target):
    """A `make run` in another process: its status page, its sandbox's control endpoints."""

    mode = "running local bridge"

    def __init__(self, config: LoadConfig, url: str) -> None:
        import requests  # noqa: PLC0415

        self.secret = config.secret or os.environ.get("DODO_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
        parts = urlsplit(url if "://" in url else f"http://{url}")
        path = parts.path.rstrip("/")
        if not path.endswith(WEBHOOK_PATH):
            path += WEBHOOK_PATH
        self.webhook_url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.status_url = urlunsplit((parts.scheme, parts.netloc, "/__local", "", ""))
        self._http = requests.Session()
        try:
            page = self._http.get(self.status_url, timeout=10).json()
        except (requests.RequestException, ValueError) as exc:
            raise LoadTestError(
                f"no local run answers at {self.status_url} ({exc}); start it with `make run`"
            ) from None
        sandbox = page.get("sandbox_url") if isinstance(page, dict) else None
        if not sandbox:
            raise LoadTestError(
                f"{self.status_url} delivers to the real Customer.io Track API; the load test needs the local sandbox"
            )
        self.sandbox_url = str(sandbox).rstrip("/")
        self.mode = f"running local bridge at {self.webhook_url}"
        self._saved_config = self._control("config", {})
        self._control("config", {"fail_rate": config.fail_rate, "seed": config.seed})
        self._offset = len(self._requests())

    def _control(self, name: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        response = self._http.post(f"{self.sandbox_url}/__sandbox/{name}", json=dict(doc), timeout=10)
        if response.status_code != 200:
            raise LoadTestError(f"sandbox {name}: HTTP {response.status_code} {response.text[:200]}")
        answer: dict[str, Any] = response.json()
        return answer

    def _requests(self) -> list[dict[str, Any]]:
        response = self._http.get(f"{self.sandbox_url}/__sandbox/requests", timeout=60)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def depths(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = self._http.get(self.status_url, timeout=10).json()["queues"]
        return queues

    def wire(self) -> WireStats:
        records = [r for r in self._requests()[self._offset :] if str(r.get("path", "")).startswith("/api/")]
        posts = [r for r in records if r.get("method") == "POST"]
        events: list[AcceptedEvent] = []
        for rec in posts:
            status = int(rec.get("status") or 0)
            if not _is_2xx(status) or rec.get("scripted") in {"close", "reset"}:
                continue
            rejected = {e.get("batch_index") for e in rec.get("errors") or [] if isinstance(e, dict)}
            for index, op in enumerate(rec.get("ops") or []):
                if index in rejected or not isinstance(op, dict) or op.get("action") != "event":
                    continue
                ident = str(op.get("identifier") or "")
                _, _, value = ident.partition("=")
                events.append(AcceptedEvent(None, value or None, op.get("name")))
        return WireStats(
            requests=len(posts),
            injected_503=sum(1 for r in posts if r.get("scripted") == "fail_rate"),
            status_counts=dict(Counter(str(r.get("status") or "closed") for r in posts)),
            events=events,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            saved: dict[str, Any] = {k: v for k, v in self._saved_config.items() if k in {"fail_rate", "seed"}}
            self._control("config", saved)
        self._http.close()


@contextlib.contextmanager
def open_target(config: LoadConfig) -> Iterator[Target]:
    target: Target = HttpTarget(config, config.url) if config.url else InProcessTarget(config)
    try:
        yield target
    finally:
        target.close()


# --- Waiting and checking --------------------------------------------------------------------------


def wait_for_drain(target: Target, timeout: float, poll: float = 0.25) -> tuple[bool, int, dict[str, dict[str, int]]]:
    """(drained, messages left, last depths): drained after two empty readings in a row."""
    deadline = time.monotonic() + timeout
    empty_in_a_row = 0
    depths = target.depths()
    while True:
        left = _total(depths.get("retry_queue", {}))
        empty_in_a_row = empty_in_a_row + 1 if left == 0 else 0
        if empty_in_a_row >= 2:
            return True, 0, depths
        if time.monotonic() >= deadline:
            return False, left, depths
        time.sleep(poll)
        depths = target.depths()


@dataclass(frozen=True, slots=True)
class Verdict:
    delivered: int
    accepted: int
    wire_duplicates: int
    lost: list[Webhook]
    doubled: list[Webhook] | None
    other: int


def check_events(expected: Sequence[Webhook], events: Sequence[AcceptedEvent]) -> Verdict:
    """Attribute every accepted event to the webhook it came from, by event id and by customer.

    Each webhook has its own customer, so an event with a known customer but an id that is not that
    webhook's id, or a known id on another webhook's customer, is a second event for one webhook.
    """
    by_event_id = {w.event_id: w for w in expected}
    by_customer: dict[str, Webhook] = {w.customer_id: w for w in expected}
    by_customer.update({w.email: w for w in expected if w.email})
    ids_seen: dict[int, set[str]] = {}
    ops_seen: Counter[int] = Counter()
    wire: Counter[str] = Counter()
    crossed: set[int] = set()
    ids_visible = all(e.event_id is not None for e in events)
    other = 0
    for event in events:
        by_id = by_event_id.get(event.event_id) if event.event_id else None
        by_who = by_customer.get(event.customer) if event.customer else None
        webhook = by_id or by_who
        if webhook is None:
            other += 1
            continue
        if by_id is not None and by_who is not None and by_id is not by_who:
            crossed.update({by_id.index, by_who.index})
        ops_seen[webhook.index] += 1
        if event.event_id is not None:
            ids_seen.setdefault(webhook.index, set()).add(event.event_id)
            wire[event.event_id] += 1
    if ids_visible:
        lost = [w for w in expected if w.event_id not in ids_seen.get(w.index, set())]
        doubled: list[Webhook] | None = [
            w for w in expected if len(ids_seen.get(w.index, ())) > 1 or w.index in crossed
        ]
        delivered = sum(1 for w in expected if w.event_id in ids_seen.get(w.index, set()))
        duplicates = sum(count - 1 for count in wire.values())
    else:
        lost = [w for w in expected if ops_seen[w.index] == 0]
        doubled = None
        delivered = len(expected) - len(lost)
        duplicates = sum(count - 1 for count in ops_seen.values() if count > 1)
    return Verdict(delivered, sum(ops_seen.values()), duplicates, lost, doubled, other)


# --- The run -------------------------------------------------------------------------------------


def run_load(config: LoadConfig, out: TextIO | None = None) -> LoadReport:
    """Start (or attach to) the bridge, send, wait for the retry queue, check; returns the report."""
    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        if config.progress:
            print(text, file=stream, flush=True)

    rng = random.Random(config.seed)  # noqa: S311 - test data, not security
    run_token = uuid.uuid4().hex[:8]  # fresh ids every run: a long-lived bridge remembers webhook ids
    webhooks = make_webhooks(config.webhooks, run_token, load_samples())
    plan = plan_deliveries(webhooks, config.duplicate_rate, config.concurrency, rng)
    with open_target(config) as target:
        report = LoadReport(mode=target.mode, config=config, log_path=target.log_path)
        say(
            f"load test: {len(webhooks)} webhooks (+{len(plan) - len(webhooks)} duplicates) from "
            f"{config.concurrency} senders -> {target.webhook_url}"
        )
        monitor_stop = threading.Event()
        max_depth = [0]

        def monitor() -> None:
            while not monitor_stop.wait(0.5):
                with contextlib.suppress(Exception):
                    max_depth[0] = max(max_depth[0], _total(target.depths().get("retry_queue", {})))

        watcher = threading.Thread(target=monitor, name="dodo-load-monitor", daemon=True)
        watcher.start()

        def progress(done: int) -> None:
            say(f"  {done}/{len(plan)} deliveries answered, retry queue peak {max_depth[0]} so far")

        send_start = time.perf_counter()
        try:
            deliveries = send_all(
                plan, url=target.webhook_url, secret=target.secret, config=config, on_progress=progress
            )
        finally:
            monitor_stop.set()
            watcher.join(timeout=5)
        report.send_seconds = time.perf_counter() - send_start
        say(f"  all {len(deliveries)} deliveries answered in {report.send_seconds:.1f} s; waiting for the retry queue")

        drain_start = time.perf_counter()
        report.drained, report.retry_queue_left, depths = wait_for_drain(target, config.drain_timeout)
        report.drain_seconds = time.perf_counter() - drain_start
        report.dlq_depth = _total(depths.get("dead_letter_queue", {}))
        report.max_retry_depth = max_depth[0]
        report.wall_seconds = time.perf_counter() - send_start
        wire = target.wire()
    _fill_report(report, webhooks, deliveries, wire)
    if report.log_path:
        report.log_errors = _count_errors(report.log_path)
    return report


def _fill_report(
    report: LoadReport, webhooks: Sequence[Webhook], deliveries: Sequence[Delivery], wire: WireStats
) -> None:
    attempts = [a for d in deliveries for a in d.attempts]
    report.webhooks = len(webhooks)
    report.duplicates = sum(1 for d in deliveries if d.duplicate)
    report.deliveries = len(deliveries)
    report.attempts = len(attempts)
    report.dodo_retries = len(attempts) - len(deliveries)
    report.unacknowledged = sum(1 for d in deliveries if not d.acknowledged)
    report.answers = dict(
        Counter(
            f"{a.status} {a.answer}".strip() if a.status is not None else f"no answer ({a.answer})" for a in attempts
        )
    )
    report.unexpected_answers = sum(
        1 for a in attempts if a.status is not None and 400 <= a.status < 500 and a.status != 409
    )
    latencies = [a.latency_ms for a in attempts if a.status is not None]
    report.latency_p50_ms = percentile(latencies, 50)
    report.latency_p99_ms = percentile(latencies, 99)
    report.latency_max_ms = max(latencies, default=0.0)
    ignored = {
        d.webhook.index for d in deliveries if d.final is not None and d.acknowledged and d.final.answer == "ignored"
    }
    report.ignored = len(ignored)
    expected = [w for w in webhooks if w.index not in ignored]
    verdict = check_events(expected, wire.events)
    report.wire_requests = wire.requests
    report.injected_503 = wire.injected_503
    report.wire_status = wire.status_counts
    report.events_accepted = verdict.accepted
    report.events_delivered = verdict.delivered
    report.wire_duplicates = verdict.wire_duplicates
    report.lost = len(verdict.lost)
    report.doubled = None if verdict.doubled is None else len(verdict.doubled)
    report.other_events = verdict.other
    report.lost_examples = [f"{w.webhook_id} ({w.event_type})" for w in verdict.lost[:5]]
    report.doubled_examples = [f"{w.webhook_id} ({w.event_type})" for w in (verdict.doubled or [])[:5]]


def _count_errors(path: str) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if '"level":"ERROR"' in line.replace(" ", "") or "Traceback (most recent call last)" in line:
                count += 1
    return count


# --- Command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dodo_cio_testdata.loadtest", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("-n", "--webhooks", type=int, default=DEFAULT_WEBHOOKS, help="distinct webhooks (%(default)s)")
    parser.add_argument(
        "-c", "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="concurrent senders (%(default)s)"
    )
    parser.add_argument(
        "--duplicates",
        type=float,
        default=DEFAULT_DUPLICATE_RATE,
        help="fraction of webhooks delivered twice with the same webhook-id (%(default)s)",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=DEFAULT_FAIL_RATE,
        help="fraction of Customer.io requests the sandbox answers 503 (%(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds the plan and the sandbox (%(default)s)")
    parser.add_argument(
        "--url",
        default=None,
        help="webhook URL of a running `make run` (default: start the local run in this process)",
    )
    parser.add_argument(
        "--secret", default=None, help="webhook secret; default $DODO_WEBHOOK_SECRET, else the development secret"
    )
    parser.add_argument(
        "--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, help="Dodo-style attempts per delivery (%(default)s)"
    )
    parser.add_argument(
        "--retry-pause",
        type=float,
        default=DEFAULT_RETRY_PAUSE,
        help="seconds before retry n is n times this (%(default)s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        help="seconds to wait for the retry queue to empty (%(default)s)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the bridge's and the sandbox's logs instead of filing them"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = LoadConfig(
            webhooks=args.webhooks,
            concurrency=args.concurrency,
            duplicate_rate=args.duplicates,
            fail_rate=args.fail_rate,
            seed=args.seed,
            url=args.url,
            secret=args.secret,
            max_attempts=args.max_attempts,
            retry_pause=args.retry_pause,
            drain_timeout=args.drain_timeout,
            verbose=args.verbose,
        )
    except ValueError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    try:
        report = run_load(config, out)
    except LoadTestError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(report.format(), file=out, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
