"""`dodo-cio backfill`: the merchant's existing customers and live subscriptions into Customer.io.

When the bridge is first installed, Customer.io knows nobody: webhooks only describe what happens
from then on. The backfill reads every customer and every subscription in the chosen statuses from
the Dodo Payments API (the official `dodopayments` SDK), turns each into the same Customer.io ops a
webhook would produce, and sends them in `/api/v2/batch` requests.

What is sent
  * a customer -> one `identify` with `customer_profile` (email, name, phone, dodo_customer_id);
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

Delivery: ops are packed by `retry.plan_requests` (each object's ops together, < 500 kB and
<= 1000 ops per request), each op made to fit by `limits.fit_op`, sent by `customerio.TrackClient`
at most `--rate` requests per second and classified by the bridge's own `classify_response`:
  * 2xx -> delivered; a 207 names the rejected ops: those objects are reported, the rest count;
  * 413 -> the request is split in halves (`retry.send_with_split`);
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

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO, cast

from dodo_cio import events as event_catalogue
from dodo_cio.attributes import customer_profile
from dodo_cio.mapping import (
    CUSTOMER_ID,
    CUSTOMER_STATE,
    STATE,
    TIMESTAMP,
    IdentifierStrategy,
    MappingConfig,
    MappingConfigError,
    map_event,
)
from dodo_cio.models import Customer, DodoEvent, Envelope, PayloadError, Subscription
from dodo_cio.times import to_unix_ms

if TYPE_CHECKING:
    from dodo_cio.customerio import DeliveryResult
    from dodo_cio.retry import OpFate

__all__ = [
    "DEFAULT_STATE_FILE",
    "DEFAULT_STATUSES",
    "Backfill",
    "BackfillError",
    "BackfillOptions",
    "Listing",
    "OpBuilder",
    "Report",
    "SdkSource",
    "Source",
    "State",
    "add_arguments",
    "command",
    "listings",
    "mask_op",
]

DEFAULT_STATE_FILE: Final = ".backfill-state.json"
DEFAULT_API_KEY_ENV: Final = "DODO_PAYMENTS_API_KEY"
DODO_API_KEY_PARAMETER: Final = "dodo-api-key"
# Active last: a customer with several subscriptions ends with the attributes of the one sent last.
DEFAULT_STATUSES: Final = ("paused", "on_hold", "past_due", "active")
SUBSCRIPTION_STATUSES: Final = ("pending", "active", "on_hold", "paused", "cancelled", "failed", "expired", "past_due")
MAX_PAGE_SIZE: Final = 100  # Dodo's documented maximum
STATE_VERSION: Final = 1
MAX_RECORDED_FAILURES: Final = 200
EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_USAGE: Final = 2

Op = dict[str, Any]
_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


class BackfillError(Exception):
    """Stops the run with `code` (1: rerun to resume; 2: fix something first) and a message to print."""

    def __init__(self, message: str, *, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- listings and the Dodo source -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One paginated Dodo listing: all customers, or the subscriptions in one status."""

    key: str  # state key: "customers" or "subscriptions:<status>"
    path: str  # "customers" | "subscriptions"
    status: str | None = None

    @property
    def label(self) -> str:
        return self.path if self.status is None else f"{self.status} subscriptions"

    @property
    def noun(self) -> str:
        return "customer" if self.path == "customers" else "subscription"


def listings(statuses: Sequence[str], *, customers: bool = True) -> list[Listing]:
    out = [Listing("customers", "customers")] if customers else []
    out.extend(Listing(f"subscriptions:{s}", "subscriptions", s) for s in statuses)
    return out


def parse_statuses(text: str) -> tuple[str, ...]:
    """`active,on_hold` -> ("active", "on_hold"); unknown or repeated statuses are usage errors."""
    items = [s.strip().lower() for s in text.replace(" ", ",").split(",") if s.strip()]
    unknown = [s for s in items if s not in SUBSCRIPTION_STATUSES]
    if unknown:
        raise BackfillError(f"--statuses: unknown {', '.join(unknown)}; choose from {', '.join(SUBSCRIPTION_STATUSES)}")
    return tuple(dict.fromkeys(items))


class Source(Protocol):
    """Where objects come from: one page of one listing, as plain JSON objects."""

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]: ...


class SdkSource:
    """Dodo Payments through its official SDK, one numbered page at a time."""

    def __init__(
        self,
        api_key: str,
        *,
        environment: str = "live_mode",
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        import dodopayments  # noqa: PLC0415 - only the backfill needs the SDK (httpx, pydantic)

        self._sdk = dodopayments
        self.environment = environment
        self.where = base_url or dodopayments.ENVIRONMENTS.get(environment, environment)
        if base_url:
            self._client = dodopayments.DodoPayments(
                bearer_token=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout
            )
        else:  # base_url=None: ignore a DODO_PAYMENTS_BASE_URL in the environment, use the named one
            self._client = dodopayments.DodoPayments(
                bearer_token=api_key,
                environment=cast(Any, environment),
                base_url=None,
                max_retries=max_retries,
                timeout=timeout,
            )

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
        sdk = self._sdk
        where = f"{listing.label} page {page_number}"
        try:
            if listing.path == "customers":
                result: Any = self._client.customers.list(page_number=page_number, page_size=page_size)
            else:
                result = self._client.subscriptions.list(
                    page_number=page_number, page_size=page_size, status=cast(Any, listing.status)
                )
        except (sdk.AuthenticationError, sdk.PermissionDeniedError) as exc:
            other = "test_mode" if self.environment == "live_mode" else "live_mode"
            raise BackfillError(
                f"Dodo Payments rejected the API key (HTTP {exc.status_code}) reading {where} from {self.where}; "
                f"check the key, and that it belongs to this mode (a {other} key needs --environment {other})"
            ) from None
        except (sdk.NotFoundError, sdk.BadRequestError, sdk.UnprocessableEntityError) as exc:
            raise BackfillError(
                f"Dodo Payments answered HTTP {exc.status_code} reading {where} from {self.where}: "
                "check --base-url / --environment and --page-size"
            ) from None
        except sdk.APIStatusError as exc:  # 429 and 5xx after the SDK's own retries: try again later
            raise BackfillError(
                f"Dodo Payments answered HTTP {exc.status_code} reading {where}", code=EXIT_INCOMPLETE
            ) from None
        except sdk.APIConnectionError as exc:
            raise BackfillError(
                f"cannot reach Dodo Payments at {self.where} reading {where}: {type(exc).__name__}",
                code=EXIT_INCOMPLETE,
            ) from None
        except sdk.APIError as exc:  # an answer the SDK could not read as a page
            raise BackfillError(f"unexpected answer from Dodo Payments reading {where}: {exc}") from None
        return [item.to_dict(mode="json", warnings=False) for item in result.items]

    def close(self) -> None:
        self._client.close()


# -- from Dodo objects to Customer.io ops -----------------------------------------------------------


@dataclass(slots=True)
class Built:
    """One Dodo object's ops, or why it has none that can be sent."""

    object_id: str
    ops: list[Op] = field(default_factory=list)
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)


class OpBuilder:
    """The same mapping as the webhooks, with the backfill's rules on top (see the module doc)."""

    def __init__(self, mapping: MappingConfig, *, events: bool = False) -> None:
        self.mapping = mapping
        self.events = events

    def build(self, listing: Listing, raw: Mapping[str, Any], now: int) -> Built:
        built = self.customer(raw, now) if listing.path == "customers" else self.subscription(raw, now)
        return self._fit(built)

    def customer(self, raw: Mapping[str, Any], now: int) -> Built:
        object_id = str(raw.get("customer_id") or "?")
        try:
            customer = Customer.parse(raw, "customer")
        except PayloadError as exc:
            return Built(object_id, problem=f"unusable customer: {exc}")
        if not self.mapping.send_identify:
            return Built(object_id)
        removed = self.mapping.removed_attributes.get("*", frozenset())
        profile = customer_profile(customer, metadata=self.mapping.profile_metadata)
        attributes = {k: v for k, v in profile.items() if k not in removed}
        identifiers = self.mapping.identifier.resolve(customer.customer_id, customer.email, [customer.metadata])
        if identifiers is None:  # a fallback id would make a second person; the webhooks would not find it
            return Built(object_id, problem=f"no {self.mapping.identifier.text} for this customer: not sent")
        op: Op = {
            "type": "person",
            "identifiers": identifiers,
            "action": "identify",
            "timestamp": now,
            "attributes": attributes,
            CUSTOMER_ID: customer.customer_id,
            STATE: CUSTOMER_STATE,
        }
        return Built(object_id, [op])

    def subscription(self, raw: Mapping[str, Any], now: int) -> Built:
        object_id = str(raw.get("subscription_id") or "?")
        status = str(raw.get("status") or "")
        own_type = f"subscription.{status}"
        event_type = own_type if event_catalogue.is_known(own_type) else "subscription.updated"
        data = {**raw, "payload_type": "Subscription"}
        created_ms = to_unix_ms(raw.get("created_at"))
        if created_ms is None:
            created_ms = now * 1000
        try:
            payload = Subscription.parse(data)
        except PayloadError as exc:
            return Built(object_id, problem=f"unusable subscription: {exc}")
        envelope = Envelope(
            type=event_type,
            timestamp=created_ms // 1000,
            timestamp_ms=created_ms,
            data=data,
            business_id=raw.get("business_id") if isinstance(raw.get("business_id"), str) else None,
        )
        event = DodoEvent(webhook_id=f"backfill:{payload.subscription_id}", envelope=envelope, payload=payload)
        try:
            mapped = map_event(event, self.mapping)
        except Exception as exc:  # noqa: BLE001 - the merchant's transform; report it, carry on
            return Built(object_id, problem=f"the mapping failed: {type(exc).__name__}: {_redact(str(exc))[:200]}")
        if any(not op.get("identifiers") and op.get("type") != "object" for op in mapped):
            return Built(object_id, problem=f"no {self.mapping.identifier.text} for its customer: not sent")
        ops: list[Op] = []
        for op in mapped:
            if op.get(STATE) == CUSTOMER_STATE:
                continue  # the customer's own fields come from the customers listing, read at its own time
            if op.get("action") == "identify":
                ops.append({**op, TIMESTAMP: now} if op.get("type") == "object" else {**op, "timestamp": now})
            elif self.events and event_type == own_type:
                marked = op.get("action") == "event"
                ops.append({**op, "attributes": {**op.get("attributes", {}), "backfill": True}} if marked else op)
        return Built(object_id, ops)

    @staticmethod
    def _fit(built: Built) -> Built:
        from dodo_cio.limits import fit_op  # noqa: PLC0415

        fitted: list[Op] = []
        for op in built.ops:
            result = fit_op(op)
            if result.unfixable:
                return Built(built.object_id, problem=f"cannot be sent: {result.unfixable}", warnings=built.warnings)
            built.warnings.extend(result.warnings)
            fitted.append(result.op)
        built.ops = fitted
        return built


# -- masking for what is printed --------------------------------------------------------------------


def _redact(text: str) -> str:
    return _EMAIL.sub("<email>", text) if "@" in text else text


def _mask_email(value: str) -> str:
    local, sep, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if sep else value


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if "@" in value:
            return _EMAIL.sub(lambda m: _mask_email(m.group(0)), value)
        if key in {"phone", "phone_number"}:
            return "*" * max(len(value) - 2, 0) + value[-2:]
        if key == "name":
            return " ".join(part[:1] + "***" for part in value.split())
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    return value


def mask_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `op` safe to print: emails, phone numbers and names masked wherever they appear."""
    return {k: _mask_value(str(k), v) for k, v in op.items()}


# -- state ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ListingState:
    next_page: int = 0
    done: bool = False
    objects: int = 0  # read from Dodo
    delivered: int = 0  # objects whose every op Customer.io accepted
    failed: int = 0  # objects rejected (207/400) or unusable
    ops: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)  # the first MAX_RECORDED_FAILURES

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ListingState:
        return cls(
            next_page=int(doc.get("next_page", 0)),
            done=bool(doc.get("done", False)),
            objects=int(doc.get("objects", 0)),
            delivered=int(doc.get("delivered", 0)),
            failed=int(doc.get("failed", 0)),
            ops=int(doc.get("ops", 0)),
            failures=[dict(f) for f in doc.get("failures", []) if isinstance(f, dict)],
        )


@dataclass(slots=True)
class State:
    """The checkpoint: per listing, the next Dodo page to read; written atomically after each page."""

    fingerprint: dict[str, Any]
    listings: dict[str, ListingState] = field(default_factory=dict)
    started_at: int = 0
    updated_at: int = 0
    completed_at: int | None = None

    def listing(self, key: str) -> ListingState:
        return self.listings.setdefault(key, ListingState())

    def to_json(self) -> str:
        doc = {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "listings": {k: asdict(v) for k, v in self.listings.items()},
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackfillError(f"cannot read the state file {path}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                raise ValueError("not a backfill state file of this version")
            return cls(
                fingerprint=dict(doc["fingerprint"]),
                listings={str(k): ListingState.from_json(v) for k, v in doc.get("listings", {}).items()},
                started_at=int(doc.get("started_at", 0)),
                updated_at=int(doc.get("updated_at", 0)),
                completed_at=doc.get("completed_at"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackfillError(
                f"the state file {path} is unreadable ({exc}); move it away, or pass --restart to start over"
            ) from None

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over the old one: a crash never leaves half a file."""
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(self.to_json(), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            raise BackfillError(f"cannot write the state file {path}: {exc.strerror or exc}") from None


def fingerprint(
    *, dodo: str, customerio_url: str, site_id: str, identifier: str, events: bool, page_size: int
) -> dict[str, Any]:
    """What must not change between a run and its resumption (page cursors mean nothing otherwise)."""
    workspace = hashlib.sha256(f"{customerio_url}\n{site_id}".encode()).hexdigest()[:16]
    return {
        "dodo": dodo,
        "customerio": workspace,
        "identifier": identifier,
        "events": events,
        "page_size": page_size,
    }


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
        err: TextIO = sys.stderr,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from dodo_cio.retry import RateLimiter  # noqa: PLC0415

        if sender is None and not options.dry_run:
            raise ValueError("a sender is needed unless this is a dry run")
        self.source = source
        self.sender = sender
        self.builder = builder
        self.options = options
        self.state = state if state is not None else State(fingerprint={})
        self.state_path = state_path
        self.err = err
        self.clock = clock
        self.sleep = sleep
        self.limiter = RateLimiter(options.rate, sleep=sleep)
        self.report = Report()

    # -- driving
    def run(self) -> Report:
        plan = listings(self.options.statuses, customers=self.options.customers)
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
        return self.report

    def _resume_hint(self, code: int) -> str:
        if self.options.dry_run or self.state_path is None:
            return ""
        pending = [
            f"{listing.label} from page {self.state.listing(listing.key).next_page}"
            for listing in listings(self.options.statuses, customers=self.options.customers)
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
                ids = [str(i.get("customer_id") or i.get("subscription_id") or "") for i in items]
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
        from dodo_cio.retry import plan_requests  # noqa: PLC0415

        now = int(self.clock())
        built = [self.builder.build(listing, item, now) for item in items]
        failures = [(b.object_id, b.problem) for b in built if b.problem is not None]
        sendable = [b for b in built if b.problem is None and b.ops]
        # Nothing to send for the rest (e.g. the mapping ignores that type): done, not failed.
        delivered = sum(1 for b in built if b.problem is None and not b.ops)
        plan = plan_requests([b.ops for b in sendable]) if sendable else []
        ops_count = sum(len(b.ops) for b in sendable)
        if self.options.dry_run:
            self.report.requests += len(plan)
            for b in sendable:
                for op in b.ops:
                    if len(self.report.samples) < self.options.sample:
                        self.report.samples.append(mask_op(op))
            delivered += len(sendable)
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
                ls.failures.append({"id": object_id, "reason": _redact(str(reason))[:300]})
        self.report.ops += ops_count
        self.report.warnings += sum(len(b.warnings) for b in built)

    def _deliver(self, ops: list[Op]) -> list[OpFate]:
        """Send one planned request; retry what failed transiently; raise when it will not go."""
        from dodo_cio.retry import send_with_split  # noqa: PLC0415

        assert self.sender is not None
        sender = self.sender
        fates: list[OpFate | None] = [None] * len(ops)
        pending = list(range(len(ops)))
        attempt = 1
        while True:
            results = send_with_split(sender, [ops[i] for i in pending], self._on_request)
            for index, fate in zip(pending, results, strict=True):
                fates[index] = fate
            config = [f for f in results if f.result.outcome == "config"]
            if config:
                raise BackfillError(
                    f"Customer.io refused the request ({_redact(config[0].result.reason)[:200]}): "
                    "check the site id and API key (Settings → API credentials → Track API) and the track URL"
                )
            transient = [i for i, f in zip(pending, results, strict=True) if f.result.outcome == "transient"]
            if not transient:
                return [f for f in fates if f is not None]
            reason = _redact(results[pending.index(transient[0])].result.reason)[:200]
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

    def _on_request(self) -> None:
        self.limiter.acquire()
        self.report.requests += 1

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


def format_summary(report: Report, options: BackfillOptions, *, elapsed: float) -> str:
    lines: list[str] = []
    verb = "would send" if options.dry_run else "sent"
    for key, ls in report.per_listing.items():
        label = key if ":" not in key else f"{key.split(':', 1)[1]} subscriptions"
        noun = "customers" if key == "customers" else "subscriptions"
        state = "done" if ls.done else f"stopped before page {ls.next_page}"
        line = f"  {label}: {ls.objects} {noun} read, {ls.delivered} {verb}"
        if ls.failed:
            line += f", {ls.failed} failed"
        lines.append(f"{line} ({state})")
        lines.extend(f"      {f['id']}: {f['reason']}" for f in ls.failures[:10])
        if ls.failed > 10:
            lines.append(f"      … {ls.failed - 10} more (listed in the state file)")
    requests = f"{report.requests} request{'s' if report.requests != 1 else ''} to /api/v2/batch"
    head = "dry run: nothing was sent" if options.dry_run else f"{report.ops} ops in {requests}"
    lines.insert(0, f"{head} ({elapsed:.1f} s)" if not options.dry_run else head)
    if options.dry_run:
        lines.append(f"  {report.ops} ops in {requests}")
    if report.warnings:
        lines.append(f"  {report.warnings} attribute(s) truncated or dropped to fit Customer.io's limits")
    if report.samples:
        lines.append(f"sample of the ops (emails, phones and names masked), first {len(report.samples)}:")
        lines.extend("  " + json.dumps(op, ensure_ascii=False, sort_keys=True) for op in report.samples)
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", help="CloudFormation stack name: SSM path, Customer.io region/URL and identifier from its parameters"
    )
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--ssm-path", help="SSM path of the secrets (default: the stack's SsmParameterPath)")
    parser.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        metavar="NAME",
        help="environment variable holding the Dodo API key (default %(default)s); when it is unset the key "
        f"is read from SSM <path>/{DODO_API_KEY_PARAMETER} (with --stack or --ssm-path)",
    )
    parser.add_argument(
        "--environment",
        choices=("live_mode", "test_mode"),
        default="live_mode",
        help="which Dodo Payments API to read (default %(default)s)",
    )
    parser.add_argument("--base-url", help="Dodo API base URL instead of --environment (a proxy or a local fake)")
    parser.add_argument(
        "--dodo-retries",
        type=int,
        default=2,
        help="retries of a failed Dodo request, with the SDK's backoff, before stopping (default %(default)s)",
    )
    parser.add_argument(
        "--statuses",
        default=",".join(DEFAULT_STATUSES),
        help="subscription statuses to backfill, comma separated, in the order sent: a customer with several "
        "subscriptions keeps the attributes of the one sent last (default %(default)s)",
    )
    parser.add_argument("--no-customers", action="store_true", help="skip the customer listing (subscriptions only)")
    parser.add_argument(
        "--events",
        action="store_true",
        help="also send one subscription.<status> event per subscription (attribute backfill=true, dedup id "
        "from backfill:<subscription_id>); off by default: identify only",
    )
    parser.add_argument(
        "--identifier",
        help="customer_id | email | metadata:<key>; must match the bridge's (default: the stack's "
        "CustomerioIdentifier, else $CUSTOMERIO_IDENTIFIER, else customer_id)",
    )
    parser.add_argument(
        "--region-cio",
        choices=("us", "eu"),
        help="Customer.io region (default: the stack's CustomerioRegion, else $CUSTOMERIO_REGION, else us)",
    )
    parser.add_argument("--track-url", help="Customer.io Track base URL override (default: the stack's, if any)")
    parser.add_argument(
        "--customize",
        metavar="FILE",
        help="the mapping customisation to apply (default: functions/ingest/customize.py when it exists here)",
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, help="Customer.io requests per second (default %(default)s)"
    )
    parser.add_argument(
        "--page-size", type=int, default=MAX_PAGE_SIZE, help="Dodo page size, 1-100 (default %(default)s)"
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="attempts per Customer.io request on 429/5xx/timeouts before stopping (default %(default)s)",
    )
    parser.add_argument(
        "--state",
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help="checkpoint file; a rerun continues from it (default %(default)s)",
    )
    parser.add_argument("--restart", action="store_true", help="ignore the checkpoint and start from the first page")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read Dodo and build the ops, print counts and a masked sample, send nothing (needs no Customer.io "
        "credentials, writes no checkpoint)",
    )
    parser.add_argument("--sample", type=int, default=3, help="ops shown by --dry-run (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_mapping(identifier: IdentifierStrategy, customize: str | None) -> tuple[MappingConfig, str]:
    """The merchant's `build_mapping` applied to the defaults, as the ingest function does."""
    defaults = MappingConfig(identifier=identifier)
    path = Path(customize) if customize else Path("functions/ingest/customize.py")
    if not path.is_file():
        if customize:
            raise BackfillError(f"--customize: no file {customize}")
        return defaults, "the default mapping"
    directory = str(path.resolve().parent)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)  # customize.py may import recipes.py beside it
    try:
        spec = importlib.util.spec_from_file_location("_dodo_cio_backfill_customize", path)
        if spec is None or spec.loader is None:
            raise BackfillError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        build = getattr(module, "build_mapping", None)
        if not callable(build):
            raise BackfillError(f"{path} has no build_mapping(defaults) function")
        mapping = build(defaults)
    except BackfillError:
        raise
    except Exception as exc:  # noqa: BLE001 - the merchant's code: say where it failed
        raise BackfillError(f"{path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
    if not isinstance(mapping, MappingConfig):
        raise BackfillError(f"{path}: build_mapping must return a MappingConfig, not {type(mapping).__name__}")
    return mapping, str(path)


def _ssm_value(ssm: Any, name: str, *, what: str) -> str | None:
    """A decrypted SSM parameter, None when it does not exist; access problems are errors."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        value = str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", ""))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "ParameterNotFound":
            return None
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        raise BackfillError(f"reading {what} from SSM {name} failed: {code}: {message}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise BackfillError(f"reading {what} from SSM {name} failed: {exc}") from None
    return value.strip() or None


def command(args: argparse.Namespace, aws: Callable[[str, str | None], Any]) -> int:
    """`dodo-cio backfill`: resolve settings and credentials, run, print the summary; the exit code."""
    started = time.monotonic()
    try:
        return _command(args, aws, started)
    except BackfillError as exc:
        print(f"dodo-cio backfill: {exc}", file=sys.stderr)
        return exc.code


@dataclass(frozen=True, slots=True)
class _Target:
    """Where the run reads from and writes to, resolved from the options, the stack and the environment."""

    ssm_path: str
    region: str
    track_override: str | None
    track_url: str
    identifier: str
    mapping: MappingConfig
    mapping_source: str


def _options(args: argparse.Namespace) -> BackfillOptions:
    if not 1 <= args.page_size <= MAX_PAGE_SIZE:
        raise BackfillError(f"--page-size must be 1 to {MAX_PAGE_SIZE}, not {args.page_size}")
    if not args.rate > 0:
        raise BackfillError(f"--rate must be a positive number of requests per second, not {args.rate}")
    if args.max_attempts < 1:
        raise BackfillError(f"--max-attempts must be at least 1, not {args.max_attempts}")
    if args.dodo_retries < 0:
        raise BackfillError(f"--dodo-retries must be 0 or more, not {args.dodo_retries}")
    statuses = parse_statuses(args.statuses)
    if args.no_customers and not statuses:
        raise BackfillError("nothing to backfill: --no-customers and no --statuses")
    return BackfillOptions(
        statuses=statuses,
        customers=not args.no_customers,
        events=args.events,
        page_size=args.page_size,
        rate=args.rate,
        max_attempts=args.max_attempts,
        dry_run=args.dry_run,
        sample=max(0, args.sample),
        progress=False if args.no_progress else None,
    )


def _target(args: argparse.Namespace, aws: Callable[[str, str | None], Any]) -> _Target:
    from dodo_cio.customerio import track_base_url  # noqa: PLC0415
    from dodo_cio_cli import operator  # noqa: PLC0415

    parameters: dict[str, str] = {}
    if args.stack:
        try:
            parameters = operator.resolve_stack_parameters(
                aws("cloudformation", args.region), args.stack, required=("SsmParameterPath",)
            )
        except operator.OperatorError as exc:
            raise BackfillError(str(exc)) from None
    env = os.environ
    region = (args.region_cio or parameters.get("CustomerioRegion") or env.get("CUSTOMERIO_REGION") or "us").lower()
    track_override = args.track_url or parameters.get("CustomerioTrackUrl") or env.get("CUSTOMERIO_TRACK_URL")
    identifier = (
        args.identifier or parameters.get("CustomerioIdentifier") or env.get("CUSTOMERIO_IDENTIFIER") or "customer_id"
    )
    try:
        track_url = track_base_url(region, track_override)
        strategy = IdentifierStrategy.parse(identifier)
    except (ValueError, MappingConfigError) as exc:
        raise BackfillError(str(exc)) from None
    mapping, mapping_source = load_mapping(strategy, args.customize)
    if not mapping.send_identify and not args.events:
        raise BackfillError(
            f"{mapping_source} turns identify off (send_identify=False): nothing to send without --events"
        )
    return _Target(
        ssm_path=(args.ssm_path or parameters.get("SsmParameterPath") or "").rstrip("/"),
        region=region,
        track_override=track_override or None,
        track_url=track_url,
        identifier=identifier,
        mapping=mapping,
        mapping_source=mapping_source,
    )


def _credentials(
    args: argparse.Namespace, target: _Target, aws: Callable[[str, str | None], Any]
) -> tuple[str, str, str]:
    """(Dodo API key, Customer.io site id, Customer.io API key): the environment first, then SSM."""
    ssm: Any = None

    def read(name: str, what: str) -> str:
        nonlocal ssm
        if not target.ssm_path:
            return ""
        if ssm is None:
            ssm = aws("ssm", args.region)
        return _ssm_value(ssm, f"{target.ssm_path}/{name}", what=what) or ""

    api_key = os.environ.get(args.api_key_env, "").strip() or read(DODO_API_KEY_PARAMETER, "the Dodo API key")
    if not api_key:
        where = (
            f" or put it in SSM {target.ssm_path}/{DODO_API_KEY_PARAMETER}"
            if target.ssm_path
            else " (or pass --stack/--ssm-path to read it from SSM)"
        )
        raise BackfillError(
            f"no Dodo Payments API key: set ${args.api_key_env}{where}; create one in Dodo's dashboard "
            "(Developer → API keys)"
        )
    if args.dry_run:
        return api_key, "", ""
    site_id = os.environ.get("CUSTOMERIO_SITE_ID", "").strip()
    cio_key = os.environ.get("CUSTOMERIO_API_KEY", "").strip()
    if not (site_id and cio_key):
        site_id = read("customerio-site-id", "the Customer.io site id")
        cio_key = read("customerio-api-key", "the Customer.io API key")
    if not (site_id and cio_key):
        raise BackfillError(
            "no Customer.io credentials: pass --stack/--ssm-path to read them from SSM, or set "
            "CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY (or try --dry-run first: it needs none)"
        )
    return api_key, site_id, cio_key


def _open_state(path: Path, wanted: dict[str, Any], *, restart: bool) -> State:
    state = None if restart else State.load(path)
    if state is None:
        return State(fingerprint=wanted)
    differs = sorted(k for k in set(wanted) | set(state.fingerprint) if wanted.get(k) != state.fingerprint.get(k))
    if differs:
        raise BackfillError(
            f"the state file {path} belongs to a different backfill ({', '.join(differs)} changed); "
            "pass --restart to start over, or --state to use another file"
        )
    return state


def _command(args: argparse.Namespace, aws: Callable[[str, str | None], Any], started: float) -> int:
    from dodo_cio.customerio import TrackClient  # noqa: PLC0415

    options = _options(args)
    target = _target(args, aws)
    api_key, site_id, cio_key = _credentials(args, target, aws)
    sender: TrackClient | None = None
    if not options.dry_run:
        _preflight(target.track_override, target.region, site_id, cio_key)
        sender = TrackClient(target.track_url, site_id, cio_key, connect_timeout=5.0, read_timeout=30.0)
    source = SdkSource(api_key, environment=args.environment, base_url=args.base_url, max_retries=args.dodo_retries)
    state_path = Path(args.state)
    state: State | None = None
    if options.dry_run:
        print(f"dry run: reading Dodo {source.where}; nothing will be sent ({target.mapping_source})", flush=True)
    else:
        print(
            f"Dodo {source.where} -> Customer.io {target.track_url} "
            f"(identifier {target.identifier}; {target.mapping_source})",
            flush=True,
        )
        wanted = fingerprint(
            dodo=source.where,
            customerio_url=target.track_url,
            site_id=site_id,
            identifier=target.identifier,
            events=options.events,
            page_size=options.page_size,
        )
        state = _open_state(state_path, wanted, restart=args.restart)
        if state.started_at:
            plan = listings(options.statuses, customers=options.customers)
            if state.completed_at and all(state.listing(listing.key).done for listing in plan):
                print(f"already complete according to {state_path}; nothing to do (--restart sends everything again)")
                source.close()
                if sender is not None:
                    sender.close()
                return EXIT_OK
            print(f"resuming from {state_path}", flush=True)
            state.completed_at = None

    builder = OpBuilder(target.mapping, events=options.events)
    backfill = Backfill(source, sender, builder, options, state=state, state_path=state_path)
    try:
        report = backfill.run()
    finally:
        source.close()
        if sender is not None:
            sender.close()
    print(format_summary(report, options, elapsed=time.monotonic() - started))
    if report.message:
        print(f"dodo-cio backfill: {report.message}", file=sys.stderr)
    elif report.code == EXIT_INCOMPLETE:
        print(
            "dodo-cio backfill: some objects were rejected (listed above and in the state file); "
            "fix the data or the mapping, then run again with --restart",
            file=sys.stderr,
        )
    return report.code


def _preflight(track_override: str | None, region: str, site_id: str, api_key: str) -> None:
    """Fail before reading Dodo when the Customer.io credentials or region are wrong."""
    from dodo_cio_cli.check import check_customerio  # noqa: PLC0415

    finding = check_customerio(region, track_override, site_id, api_key)
    if finding.status != "ok":
        hint = f" ({finding.hint})" if finding.hint else ""
        raise BackfillError(f"Customer.io check failed: {finding.reason}{hint}")
