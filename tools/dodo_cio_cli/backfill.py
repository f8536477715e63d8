"""`dodo-cio backfill`: the merchant's existing customers and live subscriptions into Customer.io.

When the bridge is first installed, Customer.io knows nobody: webhooks only describe what happens
from then on. The backfill reads every customer and every subscription in the chosen statuses from
the Dodo Payments API (the official `dodopayments` SDK), turns each into the same Customer.io ops a
webhook would produce, and sends them to the Customer.io API the bridge is deployed with
(`CustomerioApi`): `/api/v2/batch` requests to Track, or Pipelines calls (`/batch`) to Pipelines.

What is sent
  * a customer -> one `identify` with `customer_profile` (dodo_customer_id, and the email, name and
    phone Dodo knows when the stack's `CustomerioContactFields` leaves them to Dodo);
  * a subscription -> the `identify` the mapping makes for a `subscription.<status>` webhook
    (customer fields plus the `subscription_*` attributes), through `map_event` and so through
    your `customize.py` (renamed events, removed attributes, transforms);
  * nothing else unless `--events`: then also one `subscription.<status>` event per subscription,
    with `"backfill": true` among its attributes, stamped with the subscription's `created_at`
    and with an id derived from `backfill:<subscription_id>` (a deterministic ULID), so running
    the backfill again can never record the event twice.
  The identifier follows the same strategy as the bridge (`--identifier`, or the stack's
  `CustomerioIdentifier`): a different one would create a second profile per customer.

The identify `timestamp` is the time the backfill *read* the object from Dodo, not its
`created_at`: the profile attributes are Dodo's state at that moment, and Customer.io orders
attribute updates by timestamp, so an older webhook delivered late must not count as newer than
what the backfill wrote (and a `created_at` timestamp would make today's state look years old).

Delivery: ops are packed by `retry.plan_requests` within the chosen API's published limits
(`Destination.limits`: each object's ops together, < 500 kB and <= 1000 ops per request), each op
made to fit by `limits.fit_op`, sent by the bridge's own client for that API
(`Settings.delivery_clients`: `TrackClient`, or `PipelinesClient`, which renders each op as one
Pipelines call in strict mode) at most `--rate` requests per second, every request a Pipelines
send makes included (`Pacer`), and classified as the bridge classifies them:
  * 2xx -> delivered; a Track 207 names the rejected ops, a Pipelines 400 is narrowed down to the
    call at fault by the client: those objects are reported, the rest count;
  * 413 -> the request is split in halves (`retry.send_with_split`, or the Pipelines client);
  * 429, 5xx, timeouts -> retried with exponential backoff (honouring Retry-After), then the run
    stops with its progress saved;
  * 401/403/404 -> stops at once: the credentials or the URL are wrong.

Resuming: after each Dodo page is delivered the state file (`--state`, default
`.backfill-state.json`) records, per listing, the next page number to read. Running the same
command again continues from there; a page that was being sent when the run stopped is sent again,
which is harmless (identify is idempotent, events carry their dedup id). Pages are counted from 0,
as Dodo's API does; the listing ends at the first empty page. Pages are read one by one, not with
the SDK's auto-paginating iterator: that iterator asks for page 2 after the first page (it treats
the unnumbered first page as page 1), which on Dodo's 0-based pages would skip page 1.

Exit codes: 0 everything delivered (or nothing to do); 1 some objects were rejected by Customer.io
or the run stopped early with its progress saved (rerun to resume); 2 usage or configuration
errors: no API key, Dodo or Customer.io rejected the credentials, a state file from another run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from dodo_cio_cli.backfill_source import (
    DEFAULT_STATUSES,
    EXIT_INCOMPLETE,
    EXIT_OK,
    MAX_PAGE_SIZE,
    MAX_RECORDED_FAILURES,
    BackfillError,
    Built,
    Listing,
    Op,
    OpBuilder,
    Source,
    listings,
    mask_op,
    redact,
)
from dodo_cio_cli.backfill_state import ListingState, State

if TYPE_CHECKING:
    from dodo_cio.delivery.track import DeliveryResult
    from dodo_cio.retry.planning import OpFate
    from dodo_cio_cli.backfill_destination import Destination
    from dodo_cio_cli.backfill_summary import SeedCounts, SummarySeeder

# -- the run ----------------------------------------------------------------------------------------


class Sender(Protocol):
    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult: ...


@dataclass(frozen=True, slots=True)
class BackfillOptions:
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    customers: bool = True
    events: bool = False
    page_size: int = MAX_PAGE_SIZE
    rate: float = 10.0  # Customer.io requests per second
    max_attempts: int = 5  # per request, for 429/5xx/timeouts
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    dry_run: bool = False
    sample: int = 3
    progress: bool | None = None  # None: a bar only when stderr is a terminal


class Pacer:
    """Every Customer.io request of the run, counted and held to `rate` per second.

    One object for the whole run, because requests start in two places: the run starts each
    planned request, and a Pipelines client starts more within one send (packing, halving a
    refused batch) through its `pace` hook. Both must count against the same rate.
    """

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        from dodo_cio.retry.pacing import RateLimiter  # noqa: PLC0415

        self.limiter = RateLimiter(rate, sleep=sleep)
        self.requests = 0

    def __call__(self) -> None:
        self.limiter.acquire()
        self.requests += 1


@dataclass(slots=True)
class Report:
    """What happened, for the summary and the exit code."""

    code: int = EXIT_OK
    message: str = ""
    requests: int = 0
    ops: int = 0
    warnings: int = 0
    samples: list[Op] = field(default_factory=list)
    per_listing: dict[str, ListingState] = field(default_factory=dict)
    seeded: SeedCounts | None = None  # the commercial summary's counts, when it was seeded


class Backfill:
    """Read pages from `source`, build ops, deliver them through `sender`, checkpoint after each page."""

    def __init__(
        self,
        source: Source,
        sender: Sender | None,
        builder: OpBuilder,
        options: BackfillOptions,
        *,
        state: State | None = None,
        state_path: Path | None = None,
        err: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        destination: Destination | None = None,
        pacer: Pacer | None = None,
        seeder: SummarySeeder | None = None,
    ) -> None:
        from dodo_cio_cli.backfill_destination import Destination  # noqa: PLC0415 - pulls in the HTTP stack

        if sender is None and not options.dry_run:
            raise ValueError("a sender is needed unless this is a dry run")
        self.source = source
        self.sender = sender
        self.builder = builder
        self.options = options
        self.state = state if state is not None else State(fingerprint={})
        self.state_path = state_path
        self.err = err if err is not None else sys.stderr  # read at run time: tests swap sys.stderr
        self.clock = clock
        self.sleep = sleep
        self.destination = destination if destination is not None else Destination()
        self.pacer = pacer if pacer is not None else Pacer(options.rate, sleep)
        self.seeder = seeder
        self.report = Report(seeded=seeder.counts if seeder is not None else None)

    def plan(self) -> list[Listing]:
        return listings(self.options.statuses, customers=self.options.customers, summary=self.seeder is not None)

    # -- driving
    def run(self) -> Report:
        plan = self.plan()
        try:
            if not self.options.dry_run:  # a checkpoint exists from the start, even if page 0 fails
                self.state.started_at = self.state.started_at or int(self.clock())
                for listing in plan:
                    self.state.listing(listing.key)
                self._save()
            for listing in plan:
                self._listing(listing)
        except BackfillError as exc:
            self.report.code = exc.code
            self.report.message = str(exc) + self._resume_hint(exc.code)
        except KeyboardInterrupt:
            self.report.code = EXIT_INCOMPLETE
            self.report.message = "interrupted" + self._resume_hint(EXIT_INCOMPLETE)
        else:
            if not self.options.dry_run:
                self.state.completed_at = int(self.clock())
                self._save()
            if any(s.failed for s in self.report.per_listing.values()):
                self.report.code = EXIT_INCOMPLETE
        if not self.options.dry_run:  # a dry run counts its planned requests instead
            self.report.requests = self.pacer.requests
        return self.report

    def _resume_hint(self, code: int) -> str:
        if self.options.dry_run or self.state_path is None:
            return ""
        pending = [
            f"{listing.label} from page {self.state.listing(listing.key).next_page}"
            for listing in self.plan()
            if not self.state.listing(listing.key).done
        ]
        more = f", then {len(pending) - 1} more listing{'s' if len(pending) > 2 else ''}" if len(pending) > 1 else ""
        where = f" (next: {pending[0]}{more})" if pending else ""
        if code == EXIT_INCOMPLETE:
            return f"\nprogress saved in {self.state_path}{where}; run the same command again to resume"
        return f"\nprogress so far is saved in {self.state_path}{where}; after fixing this, run the same command again"

    def _listing(self, listing: Listing) -> None:
        ls = self.state.listing(listing.key) if not self.options.dry_run else ListingState()
        self.report.per_listing[listing.key] = ls
        if ls.done:
            return
        previous_ids: list[str] | None = None
        with self._progress(listing, ls) as bar:
            while True:
                items = self.source.page(listing, ls.next_page, self.options.page_size)
                if not items:
                    ls.done = True
                    self._save()
                    return
                ids = [str(i.get(listing.id_field) or "") for i in items]
                if ids == previous_ids:  # a server that repeats its last page would loop forever
                    self._note(f"{listing.label}: page {ls.next_page} repeats the previous page; stopping there")
                    ls.done = True
                    self._save()
                    return
                previous_ids = ids
                self._page(listing, ls, items)
                ls.next_page += 1
                self._save()
                bar(len(items))

    def _page(self, listing: Listing, ls: ListingState, items: list[dict[str, Any]]) -> None:
        """Build and deliver one page; the listing's counters change only once the page is through."""
        from dodo_cio.retry.planning import plan_requests  # noqa: PLC0415

        now = int(self.clock())
        built = [self.builder.build(listing, item, now) for item in items]
        if self.seeder is not None:  # counts payments and refunds, adds each changed customer's summary
            self.seeder.page(listing, items, built, now)
        failures = [(b.object_id, b.problem) for b in built if b.problem is not None]
        sendable = [b for b in built if b.problem is None and b.ops]
        # Nothing to send for the rest (e.g. the mapping ignores that type): done, not failed.
        delivered = sum(1 for b in built if b.problem is None and not b.ops)
        limits = self.destination.limits  # the chosen API's: a Pipelines client may pack more finely still
        sizes = {"max_bytes": limits.max_request_bytes, "max_ops": limits.max_calls_per_request}
        plan = plan_requests([b.ops for b in sendable], **sizes) if sendable else []
        ops_count = sum(len(b.ops) for b in sendable)
        if self.options.dry_run:
            self.report.requests += len(plan)
            delivered += self._preview(sendable, failures)
        else:
            rejected: dict[int, str] = {}
            for request in plan:
                fates = self._deliver([sendable[m].ops[o] for m, o in request])
                for (m, _), fate in zip(request, fates, strict=True):
                    if fate.result.outcome != "delivered" and m not in rejected:
                        rejected[m] = fate.result.reason
            failures.extend((sendable[m].object_id, reason) for m, reason in sorted(rejected.items()))
            delivered += len(sendable) - len(rejected)
        ls.objects += len(items)
        ls.ops += ops_count
        ls.delivered += delivered
        ls.failed += len(failures)
        for object_id, reason in failures:
            if len(ls.failures) < MAX_RECORDED_FAILURES:
                ls.failures.append({"id": object_id, "reason": redact(str(reason))[:300]})
        self.report.ops += ops_count
        self.report.warnings += sum(len(b.warnings) for b in built)

    def _preview(self, sendable: list[Built], failures: list[tuple[str, str]]) -> int:
        """A dry run's page: samples as they would be sent, and the objects that would go.

        An object whose ops the chosen API cannot say (Pipelines has no call for some Track ops) is
        a failure here, with the reason the real run's client would give it.
        """
        going = 0
        for b in sendable:
            try:
                shown = [self.destination.preview(op) for op in b.ops]
            except ValueError as exc:
                failures.append((b.object_id, f"not sent: {exc}"))
                continue
            going += 1
            room = max(self.options.sample - len(self.report.samples), 0)
            self.report.samples.extend(mask_op(call) for call in shown[:room])
        return going

    def _deliver(self, ops: list[Op]) -> list[OpFate]:
        """Send one planned request; retry what failed transiently; raise when it will not go."""
        from dodo_cio.retry.planning import send_with_split  # noqa: PLC0415

        assert self.sender is not None
        sender = self.sender
        fates: list[OpFate | None] = [None] * len(ops)
        pending = list(range(len(ops)))
        attempt = 1
        while True:
            results = send_with_split(sender, [ops[i] for i in pending], self.pacer)
            for index, fate in zip(pending, results, strict=True):
                fates[index] = fate
            config = [f for f in results if f.result.outcome == "config"]
            if config:
                raise BackfillError(
                    f"Customer.io refused the request ({redact(config[0].result.reason)[:200]}): "
                    + self.destination.refused_hint
                )
            transient = [i for i, f in zip(pending, results, strict=True) if f.result.outcome == "transient"]
            if not transient:
                return [f for f in fates if f is not None]
            reason = redact(results[pending.index(transient[0])].result.reason)[:200]
            if attempt >= self.options.max_attempts:
                raise BackfillError(
                    f"Customer.io still failing after {attempt} attempts ({reason})", code=EXIT_INCOMPLETE
                )
            wait = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
            retry_after = max((f.retry_after or 0.0 for f in results), default=0.0)
            wait = max(wait, min(retry_after, self.options.backoff_cap * 4))
            self._note(f"Customer.io: {reason}; retrying in {wait:.1f} s (attempt {attempt + 1})")
            self.sleep(wait)
            attempt += 1
            pending = transient

    def _save(self) -> None:
        if self.options.dry_run or self.state_path is None:
            return
        self.state.updated_at = int(self.clock())
        self.state.save(self.state_path)

    def _note(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    @contextlib.contextmanager
    def _progress(self, listing: Listing, ls: ListingState) -> Iterator[Callable[[int], None]]:
        show = self.options.progress
        if show is None:
            show = bool(getattr(self.err, "isatty", lambda: False)())
        if not show:
            yield lambda n: None
            return
        from tqdm import tqdm  # type: ignore[import-untyped]  # noqa: PLC0415 - only when a bar is shown

        with tqdm(
            desc=listing.label,
            unit=f" {listing.noun}s",
            initial=ls.objects,
            file=self.err,
            dynamic_ncols=True,
            leave=True,
        ) as bar:
            yield bar.update


# -- the summary ------------------------------------------------------------------------------------


def format_summary(
    report: Report, options: BackfillOptions, *, elapsed: float, requests_to: str = "/api/v2/batch"
) -> str:
    """Per listing what was read and sent or failed, then the requests (to `requests_to`) and samples."""
    lines: list[str] = []
    verb = "would send" if options.dry_run else "sent"
    for key, ls in report.per_listing.items():
        path, _, status = key.partition(":")
        label = f"{status} {path}" if status else key
        noun = path
        state = "done" if ls.done else f"stopped before page {ls.next_page}"
        line = f"  {label}: {ls.objects} {noun} read, {ls.delivered} {verb}"
        if ls.failed:
            line += f", {ls.failed} failed"
        lines.append(f"{line} ({state})")
        lines.extend(f"      {f['id']}: {f['reason']}" for f in ls.failures[:10])
        if ls.failed > 10:
            lines.append(f"      … {ls.failed - 10} more (listed in the state file)")
    requests = f"{report.requests} request{'s' if report.requests != 1 else ''} to {requests_to}"
    head = "dry run: nothing was sent" if options.dry_run else f"{report.ops} ops in {requests}"
    lines.insert(0, f"{head} ({elapsed:.1f} s)" if not options.dry_run else head)
    if options.dry_run:
        lines.append(f"  {report.ops} ops in {requests}")
    if report.seeded is not None:
        seeded = report.seeded
        lines.append(
            f"  commercial summary: {seeded.counted} payments and refunds {'would be ' if options.dry_run else ''}"
            f"counted, {seeded.already} counted before (left alone), {seeded.skipped} not countable"
        )
    if report.warnings:
        lines.append(f"  {report.warnings} attribute(s) truncated or dropped to fit Customer.io's limits")
    if report.samples:
        lines.append(f"sample of what would be sent (emails, phones and names masked), first {len(report.samples)}:")
        lines.extend("  " + json.dumps(op, ensure_ascii=False, sort_keys=True) for op in report.samples)
    return "\n".join(lines)
