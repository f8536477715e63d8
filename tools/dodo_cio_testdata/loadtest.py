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
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from dodo_cio_cli import options
from dodo_cio_testdata.loadtest_model import (
    BURST_OVERLOAD,
    BURST_SANDBOX_RPS,
    BURST_SENDERS,
    BURST_WEBHOOKS,
    OBJECT_ID_KEYS,
    SAMPLES_DIR,
    AcceptedEvent,
    Delivery,
    LoadConfig,
    LoadReport,
    LoadTestError,
    Webhook,
    WireStats,
    percentile,
)
from dodo_cio_testdata.loadtest_targets import Target, open_target, send_all, total_messages

if TYPE_CHECKING:
    pass


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
    from dodo_cio.platform.ulid import deterministic_ulid  # noqa: PLC0415
    from dodo_cio.receiving.models import parse_envelope  # noqa: PLC0415

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
    for key in OBJECT_ID_KEYS:
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


# --- Waiting and checking --------------------------------------------------------------------------


def wait_for_drain(target: Target, timeout: float, poll: float = 0.25) -> tuple[bool, int, dict[str, dict[str, int]]]:
    """(drained, messages left, last depths): drained after two empty readings in a row."""
    deadline = time.monotonic() + timeout
    empty_in_a_row = 0
    depths = target.depths()
    while True:
        left = total_messages(depths.get("retry_queue", {}))
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
                    max_depth[0] = max(max_depth[0], total_messages(target.depths().get("retry_queue", {})))

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
        report.dlq_depth = total_messages(depths.get("dead_letter_queue", {}))
        report.max_retry_depth = max_depth[0]
        report.wall_seconds = time.perf_counter() - send_start
        wire = target.wire()
    _fill_report(report, webhooks, deliveries, wire)
    report.peak_memory_mb = peak_memory_mb()
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


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    import resource  # noqa: PLC0415 - POSIX only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _count_errors(path: str) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if '"level":"ERROR"' in line.replace(" ", "") or "Traceback (most recent call last)" in line:
                count += 1
    return count


# --- Command line --------------------------------------------------------------------------------


DEFAULTS: Final = LoadConfig()


# The load test's options, one entry each: (flags, argparse keywords).
_OPTIONS: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    ("-n --webhooks", {"type": int, "default": DEFAULTS.webhooks, "help": "distinct webhooks (%(default)s)"}),
    (
        "-c --concurrency",
        {"type": int, "default": DEFAULTS.concurrency, "help": "concurrent senders (%(default)s)"},
    ),
    (
        "--duplicates",
        {
            "type": float,
            "default": DEFAULTS.duplicate_rate,
            "help": "fraction of webhooks delivered twice with the same webhook-id (%(default)s)",
        },
    ),
    (
        "--fail-rate",
        {
            "type": float,
            "default": DEFAULTS.fail_rate,
            "help": "fraction of Customer.io requests the sandbox answers 503 (%(default)s)",
        },
    ),
    ("--seed", {"type": int, "default": DEFAULTS.seed, "help": "seeds the plan and the sandbox (%(default)s)"}),
    (
        "--url",
        {"default": None, "help": "webhook URL of a running `make run` (default: start the local run in this process)"},
    ),
    (
        "--secret",
        {"default": None, "help": "webhook secret; default $DODO_WEBHOOK_SECRET, else the development secret"},
    ),
    (
        "--max-attempts",
        {"type": int, "default": DEFAULTS.max_attempts, "help": "Dodo-style attempts per delivery (%(default)s)"},
    ),
    (
        "--retry-pause",
        {
            "type": float,
            "default": DEFAULTS.retry_pause,
            "help": "seconds before retry n is n times this (%(default)s)",
        },
    ),
    (
        "--drain-timeout",
        {
            "type": float,
            "default": DEFAULTS.drain_timeout,
            "help": "seconds to wait for the retry queue to empty (%(default)s)",
        },
    ),
    (
        "--sandbox-rate-limit",
        {
            "type": float,
            "default": None,
            "metavar": "RPS",
            "help": "the sandbox answers 429 with Retry-After above this many requests a second "
            "(a workspace at its limit)",
        },
    ),
    (
        "--burst",
        {
            "action": "store_true",
            "help": f"renewal day: {BURST_WEBHOOKS:,} webhooks from {BURST_SENDERS} senders at {BURST_OVERLOAD}x the "
            f"sandbox's limit (--sandbox-rate-limit, default {BURST_SANDBOX_RPS:g}), no injected 503s; checks the "
            "targets (429s <= 2 %%, <= 0.3 requests per event, delivered <= 2 min after the last webhook, < 1 GB)",
        },
    ),
    (
        "-v --verbose",
        {"action": "store_true", "help": "show the bridge's and the sandbox's logs instead of filing them"},
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dodo_cio_testdata.loadtest", description=(__doc__ or "").split("\n\n")[0]
    )
    options.add_declared(parser, _OPTIONS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit = args.sandbox_rate_limit
    if args.burst:
        limit = limit or BURST_SANDBOX_RPS
        given = set(argv if argv is not None else sys.argv[1:])
        args.webhooks = args.webhooks if {"-n", "--webhooks"} & given else BURST_WEBHOOKS
        args.concurrency = args.concurrency if {"-c", "--concurrency"} & given else BURST_SENDERS
        args.fail_rate = args.fail_rate if "--fail-rate" in given else 0.0
    try:
        config = LoadConfig(
            webhooks=args.webhooks,
            concurrency=args.concurrency,
            duplicate_rate=args.duplicates,
            fail_rate=args.fail_rate,
            sandbox_rate_limit=limit,
            send_rate=limit * BURST_OVERLOAD if args.burst and limit else None,
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
