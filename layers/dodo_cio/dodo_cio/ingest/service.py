"""The ingest path: verify -> parse -> map -> deliver -> (park), and the HTTP answer Dodo gets.

Answers, and why:
  200 delivered / ignored   nothing left to do
  202 queued                some ops failed and are durably on the retry queue
  202 dead_lettered         the ops that failed can never be accepted as they are; they are on
                            the dead-letter queue with the reason, nothing waits on the retry queue
  202 quarantined           signed by Dodo, but this version cannot process it as it is: a body it
                            cannot read, a type it does not map, an id DynamoDB refuses as a key.
                            Kept whole on the quarantine queue (dodo_cio.receiving.quarantine), with the
                            reason, for a person to decide: `dodo-cio reprocess` after an upgrade
  400 malformed event       a direct invoke that is neither an API Gateway event nor a re-run
  401 bad signature         before the body is parsed
  413 body too large        over 256 KB, before anything else
  422 still_invalid         only for a re-run of a quarantined webhook that still cannot be processed
  500                       the event could be neither delivered nor queued (or the bridge is
                            misconfigured): Dodo retries it on its own schedule
Bad input never gets a 5xx, and a body whose signature verified is never answered 4xx: once
verified, it is ours to keep. What can never succeed as it is (permanent) is decided once, with a
2xx; only what may succeed later (DynamoDB or SQS unreachable, a misconfiguration) is a 5xx.

Every call runs to the invocation's deadline (dodo_cio.platform.deadline) less `Settings.answer_reserve`,
and each step keeps back one AWS attempt (`Settings.aws_attempt_seconds`) for every AWS call that
must follow it: lookups keep three (the idempotency transaction, parking, its completion),
Customer.io two, parking one. So a stalled DynamoDB is answered 503, a stalled SQS 500, and a
stalled Customer.io is parked (202), all before Lambda's timeout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from dodo_cio.configuration.settings import Secrets, SecretStore, Settings
from dodo_cio.delivery.budget import Budget
from dodo_cio.delivery.destination import DeliveryClients
from dodo_cio.delivery.parking import LastError, ParkedDelivery, park
from dodo_cio.delivery.track import DeliveryResult, OpResult, email_change_refusals
from dodo_cio.mapping.limits import fit_op
from dodo_cio.mapping.mapper import (
    CUSTOMER_ID,
    STATE,
    SUBSCRIPTION_STATE,
    MappingConfig,
    Op,
    identify_op,
    map_event,
    merge_op,
    payload_identifiers,
)
from dodo_cio.platform import deadline
from dodo_cio.platform.env import ConfigError
from dodo_cio.platform.sqs import SqsSender
from dodo_cio.platform.telemetry import Log, Metrics
from dodo_cio.receiving.http_api import STATE_DOWN, HttpResponse, WebhookRequest
from dodo_cio.receiving.models import (
    Dispute,
    DodoEvent,
    PayloadError,
    Payment,
    Refund,
    Subscription,
    parse_envelope,
    parse_json,
    parse_payload,
)
from dodo_cio.receiving.quarantine import RERUN_TOLERANCE_SECONDS, QuarantinedWebhook, QuarantineKind, quarantine
from dodo_cio.receiving.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    VerifiedWebhook,
    header,
    verify,
)
from dodo_cio.state.identity import Resolver, Unresolved, event_facts, readdress
from dodo_cio.state.summary import SUBSCRIPTION_STATUS, SUMMARY_STATE, Ledger, LedgerChange, change_for
from dodo_cio.state.table import (
    CUSTOMER_PREFIX,
    RECEIPT_PREFIX,
    LedgerConflict,
    LedgerWrite,
    Receipt,
    StatePlan,
    StateRejected,
    StateTable,
    StateUnavailable,
    customer_key,
    is_stale,
    key_problem,
    plan_for,
    plan_problem,
)

MAX_BODY_BYTES: Final = 256 * 1024
# An event type longer than this is not one of Dodo's; it is kept whole, but logged and labelled cut.
MAX_LOGGED_TYPE_CHARS: Final = 200
# A failed signature check re-reads the secret (a rotation may have just happened), at most this often.
SECRET_REFRESH_INTERVAL: Final = 30.0
# AWS calls that may still follow a step, each kept one attempt's worst case (see the module docstring).
CALLS_AFTER_LOOKUPS: Final = 3  # the idempotency transaction, parking, the idempotency completion
CALLS_AFTER_DELIVERY: Final = 2  # parking, the idempotency completion
CALLS_AFTER_PARKING: Final = 1  # the idempotency completion (or its removal, for a 5xx)
# Another webhook of the same customer changed the ledger between our read and our write: read again.
LEDGER_ROUNDS: Final = 3
# A merge of a customer's old address into the new one waits this long on the retry queue: Customer.io
# ignores a merge whose primary does not exist yet, and the identify creating it was sent just now.
MERGE_DELAY_SECONDS: Final = 60
BUDGET_SPENT: Final = "this container's share of the Customer.io budget is spent; sent from the retry queue"
MERGE_WAITS: Final = "merge of the customer's old address waits until the new person exists"


def _error(status: int, error: str, **extra: Any) -> HttpResponse:
    return HttpResponse(status, {"error": error, **extra})


class Dedupe(Protocol):
    def __call__(
        self, webhook_id: str, work: Callable[[], HttpResponse], plan: StatePlan | None = None
    ) -> HttpResponse: ...


@dataclass(slots=True)
class Summary:
    """A webhook's change to its customer's ledger (dodo_cio.state.summary), and the identify that sends it."""

    change: LedgerChange
    old: str | None  # the stored ledger as read: the write is conditional on it
    ledger: Ledger
    op: Op


@dataclass(slots=True)
class Prepared:
    """A verified webhook, mapped and resolved: what is left is to commit its state and deliver."""

    event: DodoEvent
    ops: list[Op]
    unresolved: list[Unresolved]
    plan: StatePlan
    secrets: Secrets
    summary: Summary | None = None

    def write_ledger(self) -> None:
        """Put the summary's ledger write in the plan, its identify's piece at the summary's stamp."""
        summary = self.summary
        if summary is None:
            self.plan.ledger = None
            return
        change = summary.change
        self.plan.ledger = LedgerWrite(change.customer_id, summary.old, summary.ledger.dumps(), change.marker)
        self.plan.record(customer_key(change.customer_id)).pieces[SUMMARY_STATE] = summary.ledger.stamp

    def drop_summary(self) -> None:
        """The payment or refund was counted before, or a newer webhook of the subscription was:
        nothing changed, so no summary is sent."""
        summary, self.summary = self.summary, None
        if summary is None:
            return
        self.ops = [op for op in self.ops if op is not summary.op]
        self.unresolved = [u for u in self.unresolved if u.op is not summary.op]
        record = self.plan.records.get(customer_key(summary.change.customer_id))
        if record is not None:
            record.pieces.pop(SUMMARY_STATE, None)
        self.write_ledger()


@dataclass(kw_only=True)
class IngestService:
    """Everything the ingest handler needs, built once per Lambda container."""

    settings: Settings
    secrets: SecretStore
    clock: Callable[[], float] = time.time
    mapping: MappingConfig
    metrics: Metrics
    logger: Log
    sqs_factory: Callable[[], SqsSender]
    session_factory: Callable[[], Any] | None = None
    # Exactly-once per webhook id (dodo_cio.state.idempotency), the identity directory and per-piece
    # freshness (dodo_cio.state.table, dodo_cio.state.identity); optional so the flow can run without a table.
    dedupe: Dedupe | None = None
    state: StateTable | None = None
    resolver: Resolver | None = None
    _clients: DeliveryClients | None = field(default=None, init=False)
    # This container's part of the workspace's Customer.io budget (dodo_cio.delivery.budget); built on first use.
    budget: Budget | None = None
    _sqs: SqsSender | None = field(default=None, init=False)
    _last_forced_refresh: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.state is not None and self.dedupe is None:
            # The state records ride in the duplicate check's one transaction (dodo_cio.state.idempotency);
            # without it nothing would commit them, and stale state could overwrite newer.
            raise ValueError("a state table needs the duplicate check (dedupe) to commit its records")

    # -- plumbing -------------------------------------------------------------------------------

    def _count(self, name: str, value: float = 1) -> None:
        self.metrics.add_metric(name=name, unit="Count", value=value)

    def _sqs_client(self) -> SqsSender:
        if self._sqs is None:
            self._sqs = self.sqs_factory()
        return self._sqs

    # -- the flow -------------------------------------------------------------------------------

    def handle(self, request: WebhookRequest) -> HttpResponse:
        self._count("WebhookReceived")
        if len(request.body) > MAX_BODY_BYTES:
            self._count("InvalidPayload")
            self.logger.warning("body too large", extra={"bytes": len(request.body)})
            return _error(413, "body too large", limit_bytes=MAX_BODY_BYTES)

        return self._authentic(request, rerun=False)

    def reprocess(self, item: QuarantinedWebhook) -> HttpResponse:
        """Run a quarantined webhook through the current model and mapping, as if Dodo sent it now.

        Its kept signature is verified again against the current secret(s) with the quarantine's
        window instead of five minutes (`RERUN_TOLERANCE_SECONDS`: it was inside five minutes when
        received, and the queue keeps nothing longer), so a re-run cannot carry a signed webhook
        older than anything the bridge could have kept. Everything after that is the ordinary flow,
        duplicate check included, except that a webhook this version still cannot process is
        answered 422 and left where it is instead of being quarantined a second time.
        """
        self._count("QuarantineReprocessed")
        return self._authentic(WebhookRequest(item.headers(), item.body), rerun=True)

    def _authentic(self, request: WebhookRequest, *, rerun: bool) -> HttpResponse:
        """Verify the signature, then process; the timestamp window applies to fresh webhooks only."""
        with deadline.keeping(self.settings.answer_reserve):  # every call below ends with time to answer
            return self._checked(request, rerun=rerun)

    def _keep(self, calls: int) -> float:
        """Seconds to keep back for `calls` AWS calls that must still follow the current step."""
        return calls * (self.settings.aws_attempt_seconds + deadline.STEP_SLACK)

    def _checked(self, request: WebhookRequest, *, rerun: bool) -> HttpResponse:
        try:
            secrets = self.secrets.load()
            tolerance = RERUN_TOLERANCE_SECONDS if rerun else 300
            verified = self._verify(request, secrets.webhook_secrets, tolerance=tolerance)
        except SignatureError as exc:
            self._count("InvalidSignature")
            self.logger.warning("signature rejected", extra={"reason": exc.reason, "rerun": rerun})
            return _error(401, "invalid signature", reason=exc.reason)
        except ConfigError as exc:
            self._count("ConfigError")
            self.logger.error("cannot verify webhooks: %s", exc)
            return _error(500, "bridge misconfigured")
        return self._process(verified, request, secrets, rerun=rerun)

    def _process(
        self, verified: VerifiedWebhook, request: WebhookRequest, secrets: Secrets, *, rerun: bool
    ) -> HttpResponse:
        self.logger.append_keys(webhook_id=verified.webhook_id)
        prepared = self._prepare(verified, request, secrets, rerun=rerun)
        if isinstance(prepared, HttpResponse):
            return prepared
        if self.dedupe is None:
            return self._deliver(prepared)
        # The state writes ride in the duplicate check's own DynamoDB call (dodo_cio.state.idempotency).
        for _ in range(LEDGER_ROUNDS):
            try:
                response = self.dedupe(verified.webhook_id, lambda: self._deliver(prepared), prepared.plan or None)
            except StateRejected as exc:  # nothing was written: the same call would fail the same way
                reason = f"{type(exc).__name__}: {exc}"  # the class and DynamoDB's reason, never a value in full
                return self._cannot_process(
                    verified, request, "rejected", "state", reason, prepared.event.type, rerun=rerun
                )
            except LedgerConflict as exc:  # nothing was written
                failed = self._recount(prepared, counted=exc.counted)
                if failed is not None:
                    return failed
                continue
            break
        else:
            self._count("StateTableError")
            self.logger.warning("the customer's ledger kept changing under this webhook")
            return _error(503, "state table busy; retry later")
        if response.status in (409, 503):
            self._count("DuplicateInProgress" if response.status == 409 else "StateTableError")
            self.logger.warning("duplicate check answered %s", response.status)
        return response

    def _prepare(
        self, verified: VerifiedWebhook, request: WebhookRequest, secrets: Secrets, *, rerun: bool = False
    ) -> Prepared | HttpResponse:
        """Parse, map and resolve: pure but for directory reads, so it runs before the duplicate check."""
        doc: Any = None
        try:
            doc = parse_json(request.body)
            envelope = parse_envelope(doc)
            self.logger.append_keys(event_type=envelope.type[:MAX_LOGGED_TYPE_CHARS])
            payload = parse_payload(envelope)
        except PayloadError as exc:
            self.logger.warning("payload unreadable", extra={"field": exc.field, "problem": exc.problem})
            event_type = doc.get("type") if isinstance(doc, dict) else None
            event_type = event_type if isinstance(event_type, str) else None
            return self._cannot_process(
                verified, request, "unreadable", exc.field, exc.problem, event_type, rerun=rerun
            )

        if payload is None:  # a type newer than this version: README "Mapping a new Dodo event type"
            if not rerun:  # a re-run that is still unmapped counts as QuarantineStillInvalid, not a new arrival
                self._count("UnknownEventType")
            detail = "no mapping for this event type in this version of the bridge"
            return self._cannot_process(verified, request, "unknown_type", "type", detail, envelope.type, rerun=rerun)

        event = DodoEvent(verified.webhook_id, envelope, payload)
        self._log_customer(event)
        try:
            ops = map_event(event, self.mapping)
        except Exception:  # a merchant's transform failed: let Dodo retry once it is fixed
            self._count("TransformError")
            self.logger.exception("mapping failed")
            return _error(500, "mapping failed")
        if not ops:
            reason = "event type not sent" if event.type in self.mapping.ignored_types else "no customer to address"
            self._count("IgnoredEvent")
            self.logger.info("nothing to deliver", extra={"reason": reason})
            return HttpResponse(200, {"status": "ignored", "reason": reason})

        summary = self._summary(event, ops, verified, request, rerun=rerun)
        if isinstance(summary, HttpResponse):
            return summary
        if summary is not None:
            ops.append(summary.op)

        known = event_facts(event, self.mapping)
        stated, stated_payments = dict(known.customers), dict(known.payments)  # what this webhook says
        stated_emails, stated_paid = dict(known.emails), dict(known.paid)
        if self.resolver is None:
            self.resolver = Resolver(self.mapping.identifier)
        with deadline.keeping(self._keep(CALLS_AFTER_LOOKUPS)):  # directory reads, Dodo API lookups
            ops, unresolved = self.resolver.resolve(ops, known)
        if unresolved:
            self._count("IdentityUnresolved", len(unresolved))
            self.logger.warning("ops parked until their person is known", extra={"reason": unresolved[0].reason})
        plan = StatePlan()
        if self.state is not None:
            payments = {**stated_payments, **known.learned_payments}  # not what the directory already holds
            plan = plan_for(
                ops,
                customers=stated,
                learned=known.learned,
                payments=payments,
                emails=stated_emails,
                learned_emails=known.learned_emails,
                paid=stated_paid,
                guard=self.mapping.identifier.kind == "email",  # an email change: merge (`_follow_identity`)
            )
            plan.receipts.extend(receipts_for(event, received_at=int(self.clock())))
        prepared = Prepared(event, ops, unresolved, plan, secrets, summary)
        prepared.write_ledger()
        if self.state is not None:
            problem = plan_problem(plan)  # measured here: DynamoDB would refuse it on every attempt
            if problem is not None:
                return self._cannot_process(verified, request, "rejected", "state", problem, event.type, rerun=rerun)
        return prepared

    def _summary(
        self, event: DodoEvent, ops: list[Op], verified: VerifiedWebhook, request: WebhookRequest, *, rerun: bool
    ) -> Summary | HttpResponse | None:
        """The ledger change this webhook makes and its summary identify; None when it makes none.

        Reads the stored ledger (one consistent GetItem: the one extra round trip a payment, a
        refund or a subscription webhook costs); the write rides in the duplicate check's
        transaction (`Prepared.write_ledger`). In profile mode the summary owns
        `subscription_status` (the most alive subscription's): it leaves the subscription's own
        identify, which would otherwise say "cancelled" while another subscription is active.
        """
        mapping = self.mapping
        if self.state is None or not (mapping.send_identify and mapping.send_summary):
            return None
        change = change_for(event)
        if change is None:
            return None
        if change.subscription is not None and self._profile_status:
            for op in ops:
                if op.get(STATE) == SUBSCRIPTION_STATE:
                    op["attributes"].pop(SUBSCRIPTION_STATUS, None)
        try:
            with deadline.keeping(self._keep(CALLS_AFTER_LOOKUPS)):
                old = self.state.read_ledger(change.customer_id)
        except StateRejected as exc:
            reason = f"{type(exc).__name__}: {exc}"
            return self._cannot_process(verified, request, "rejected", "state", reason, event.type, rerun=rerun)
        except StateUnavailable as exc:
            self._count("StateTableError")
            self.logger.warning("cannot read the customer's ledger: %s", exc)
            return _error(503, STATE_DOWN)
        stored = Ledger.loads(old)
        ledger = change.apply(stored)
        if ledger.same_as(stored):  # an older subscription webhook: nothing to count, nothing to send
            return None
        op = identify_op(event, payload_identifiers(event, mapping), self._summary_attributes(ledger), SUMMARY_STATE)
        op["timestamp"] = ledger.stamp  # never older than the summary it replaces (dodo_cio.state.summary)
        op[CUSTOMER_ID] = change.customer_id
        return Summary(change, old, ledger, op)

    @property
    def _profile_status(self) -> bool:
        """Profile mode: the person has one `subscription_status` for all their subscriptions."""
        return not self.mapping.subscription_object_type_id

    def _summary_attributes(self, ledger: Ledger) -> dict[str, Any]:
        return ledger.attributes(self.mapping.exponents, profile_status=self._profile_status)

    def _recount(self, prepared: Prepared, *, counted: bool) -> HttpResponse | None:
        """After a LedgerConflict: drop the count (already counted) or count again from a fresh read."""
        summary = prepared.summary
        if summary is None or self.state is None:  # cannot happen: only a ledger write conflicts
            return _error(503, "state table busy; retry later")
        if counted:
            self._count("AlreadyCounted")
            self.logger.info("payment or refund already counted; its summary is not sent again")
            prepared.drop_summary()
            return None
        try:
            with deadline.keeping(self._keep(CALLS_AFTER_LOOKUPS)):
                old = self.state.read_ledger(summary.change.customer_id)
        except (StateUnavailable, StateRejected) as exc:
            self._count("StateTableError")
            self.logger.warning("cannot read the customer's ledger again: %s", type(exc).__name__)
            return _error(503, STATE_DOWN)
        stored = Ledger.loads(old)
        ledger = summary.change.apply(stored)
        if ledger.same_as(stored):  # a newer webhook of the same subscription got there first
            prepared.drop_summary()
            return None
        summary.old, summary.ledger = old, ledger
        summary.op["attributes"] = self._summary_attributes(ledger)
        summary.op["timestamp"] = ledger.stamp
        prepared.write_ledger()
        return None

    def _cannot_process(
        self,
        verified: VerifiedWebhook,
        request: WebhookRequest,
        kind: QuarantineKind,
        error_field: str,
        error_detail: str,
        event_type: str | None,
        *,
        rerun: bool,
    ) -> HttpResponse:
        """A verified webhook this version can never process as it is: kept for a person to decide.

        Fresh from Dodo it is quarantined (202 once durable); a re-run that still fails is answered
        422 and stays where it is, so `dodo-cio reprocess` leaves it on the queue.
        """
        if event_type is not None and len(event_type) > MAX_LOGGED_TYPE_CHARS:
            event_type = event_type[:MAX_LOGGED_TYPE_CHARS] + "...(cut)"
        self.logger.append_keys(event_type=event_type)
        self.logger.warning(
            "cannot process this webhook as it is", extra={"kind": kind, "field": error_field, "reason": error_detail}
        )
        if rerun:
            self._count("QuarantineStillInvalid")
            return HttpResponse(422, {"status": "still_invalid", "field": error_field, "detail": error_detail})
        item = QuarantinedWebhook(
            webhook_id=verified.webhook_id,
            webhook_timestamp=header(request.headers, TIMESTAMP_HEADER) or str(verified.timestamp),
            webhook_signature=header(request.headers, SIGNATURE_HEADER) or "",
            received_at=int(self.clock()),
            event_type=event_type,
            error_field=error_field,
            error_detail=error_detail,
            body=request.body,
            kind=kind,
        )
        try:
            if not self.settings.quarantine_queue_url:
                raise ConfigError("QUARANTINE_QUEUE_URL is not set")
            quarantine(self._sqs_client(), self.settings.quarantine_queue_url, item)
        except Exception as exc:  # noqa: BLE001 - SQS or config failure: Dodo must send it again
            self._count("QuarantineFailed")
            self.logger.error("could not quarantine the webhook: %s", type(exc).__name__)
            return _error(500, "webhook could not be processed nor kept")
        self._count("WebhookQuarantined")
        return HttpResponse(202, {"status": "quarantined", "kind": kind, "field": error_field, "detail": error_detail})

    def _verify(
        self, request: WebhookRequest, webhook_secrets: tuple[bytes, ...], *, tolerance: int | None = 300
    ) -> VerifiedWebhook:
        now = self.clock()
        try:
            return verify(request.headers, request.body, webhook_secrets, now=now, tolerance_seconds=tolerance)
        except SignatureError as first:
            # The secret may have been rotated in SSM within the cache window: re-read once.
            if now - self._last_forced_refresh < SECRET_REFRESH_INTERVAL:
                raise
            self._last_forced_refresh = now
            fresh = self.secrets.load(force=True).webhook_secrets
            if fresh == webhook_secrets:
                raise first from None
            return verify(request.headers, request.body, fresh, now=now, tolerance_seconds=tolerance)

    def _fit(self, ops: list[Op]) -> tuple[list[Op], list[tuple[Op, str]]]:
        """Ops adjusted to Customer.io's limits, and the ones no adjustment can make valid."""
        sendable: list[Op] = []
        unfixable: list[tuple[Op, str]] = []
        for op in ops:
            fitted = fit_op(op)
            for warning in fitted.warnings:
                self.logger.warning("op adjusted to Customer.io limits: %s", warning)
            if fitted.unfixable:
                unfixable.append((fitted.op, fitted.unfixable))
            else:
                sendable.append(fitted.op)
        if unfixable:
            self._count("OpUnfixable", len(unfixable))
        return sendable, unfixable

    def _send(self, ops: list[Op], secrets: Secrets) -> DeliveryResult:
        """One delivery to the chosen API (`Settings.customerio_api`); missing credentials park the ops."""
        try:
            credentials = secrets.delivery_credentials()
        except ConfigError as exc:
            self._count("ConfigError")
            self.logger.error("%s; parking the delivery", exc)
            return DeliveryResult(tuple(OpResult("config", str(exc)) for _ in ops), None)
        if self._clients is None:
            self._clients = self.settings.delivery_clients(self.session_factory)
        with deadline.keeping(self._keep(CALLS_AFTER_DELIVERY)):  # what fails must still be parked
            result = self._clients.get(credentials).send(ops)
        self.metrics.add_metric(name="DeliveryLatency", unit="Milliseconds", value=result.elapsed_ms)
        if refused := email_change_refusals(result.results):  # dead-lettered like any permanent failure
            self._count("EmailChangeRefused", refused)
        return result

    def _log_customer(self, event: DodoEvent) -> None:
        """`dodo-cio trace` finds a customer's webhooks in the logs by their Dodo id (never an email)."""
        customer_id = _customer_id(event)
        if customer_id:
            self.logger.append_keys(customer_id=customer_id[:MAX_LOGGED_TYPE_CHARS])

    def _budget(self) -> Budget:
        if self.budget is None:
            self.budget = Budget(self.settings.ingest_rate_per_container)
        return self.budget

    def _follow_identity(self, prepared: Prepared) -> list[Op]:
        """What the commit learnt about the customer's address: the merges it calls for.

        Under the email strategy a customer whose webhook states a new address (newer than the
        directory's) is the same person: the old person is merged into the new one (Customer.io
        keeps the primary, fills its empty attributes from the secondary, moves 30 days of events,
        segments, journeys and message history, and deletes the secondary). The merge waits on the
        retry queue (`MERGE_DELAY_SECONDS`): sent at once, the new person might not exist yet, and a
        merge into a missing primary does nothing. A webhook older than the change still naming the
        old address is sent to the current one instead, so it does not bring the old person back.
        """
        plan = prepared.plan
        for key, current in plan.current.items():
            customer_id = key.removeprefix(CUSTOMER_PREFIX)
            for op in prepared.ops:
                if op.get(CUSTOMER_ID) == customer_id:
                    readdress(op, current)
        merges: list[Op] = []
        for key, old in plan.renamed.items():
            record = plan.records.get(key)
            if record is None or record.identifiers is None:
                continue
            merges.append(merge_op(record.identifiers, old, key.removeprefix(CUSTOMER_PREFIX)))
            self._count("EmailChanged")
            self.logger.info("customer changed address: the old person is merged into the new one")
        return merges

    def _fresh(self, prepared: Prepared) -> list[Op]:
        """Ops still worth sending: the plan was committed with the duplicate check, which marked stale pieces.

        A state plan is only ever committed inside the duplicate check's transaction (see
        __post_init__), so by the time this runs it is committed, or the webhook was answered 503.
        """
        plan = prepared.plan
        keep: list[Op] = []
        for op in prepared.ops:
            if is_stale(op, plan, plan.stale):
                self._count("StaleIdentifySkipped")
                self.logger.info("identify skipped: newer state was already applied", extra={"state": op.get("_state")})
            else:
                keep.append(op)
        return keep

    def _deliver(self, prepared: Prepared) -> HttpResponse:
        event = prepared.event
        merges = self._follow_identity(prepared)
        fresh = self._fresh(prepared)
        sendable, unfixable = self._fit(fresh)
        budget = self._budget()
        deferred: list[Op] = []
        if sendable and not budget.take():  # this container's share is spent: the retry queue batches them
            deferred, sendable = sendable, []
        result = self._send(sendable, prepared.secrets) if sendable else None
        if result is not None and result.status == 429:  # the workspace is at its limit: stop piling on
            budget.hold(result.retry_after)
            self._count("CustomerioThrottled")

        failed: dict[str, list[Op]] = {}
        errors: dict[str, LastError] = {}  # the first error of each kind, as the parked message records it
        now = int(self.clock())

        def fail(op: Op, kind: str, reason: str, sent: bool) -> None:
            failed.setdefault(kind, []).append(op)
            if kind not in errors:
                status = result.status if sent and result else None
                retry_after = result.retry_after if sent and result else None
                errors[kind] = LastError(kind=kind, reason=reason, status=status, at=now, retry_after=retry_after)

        delivered = 0
        if result is not None:
            for op, op_result in zip(sendable, result.results, strict=True):
                if op_result.outcome == "delivered":
                    delivered += 1
                else:
                    fail(op, op_result.outcome, op_result.reason, sent=True)
        for op, why in unfixable:
            fail(op, "permanent", why, sent=False)
        for item in prepared.unresolved:
            fail(item.op, item.kind, item.reason, sent=False)
        if deferred:
            self._count("DeliveryDeferred")
            wait = max(1.0, budget.wait())
            errors.setdefault("transient", LastError("transient", BUDGET_SPENT, at=now, retry_after=wait))
            failed.setdefault("transient", []).extend(deferred)
        if merges:  # not a failure: sent from the retry queue once the new person surely exists
            failed.setdefault("transient", []).extend(merges)
            errors.setdefault("transient", LastError("transient", MERGE_WAITS, at=now, retry_after=MERGE_DELAY_SECONDS))

        if delivered:
            self._count("OpsDelivered", delivered)
        if not failed:
            self._count("WebhookDelivered")
            self.logger.info("delivered", extra={"ops": delivered, "status": result.status if result else None})
            return HttpResponse(200, {"status": "delivered"})
        with deadline.keeping(self._keep(CALLS_AFTER_PARKING)):
            return self._park(event, failed, errors, attempted=result is not None)

    def _park(
        self, event: DodoEvent, failed: dict[str, list[Op]], errors: dict[str, LastError], *, attempted: bool
    ) -> HttpResponse:
        """One message per kind of failure; 202 once all are durably queued, 500 otherwise.

        Permanent failures go straight to the DLQ (retrying cannot fix them); the rest wait on
        the retry queue, not before a `Retry-After` Customer.io asked for has passed.
        """
        waiting = False
        try:
            for kind, kind_ops in failed.items():
                error = errors[kind]
                parked = ParkedDelivery(
                    webhook_id=event.webhook_id,
                    event_type=event.type,
                    event_time=event.envelope.timestamp,
                    first_seen=error.at,
                    attempts=1 if attempted else 0,
                    ops=kind_ops,
                    last_error=error,
                    customer_id=_customer_id(event),
                )
                permanent = kind == "permanent"
                queue_url = self.settings.dead_letter_queue_url if permanent else self.settings.retry_queue_url
                if not queue_url:
                    raise ConfigError("DEAD_LETTER_QUEUE_URL is not set" if permanent else "RETRY_QUEUE_URL is not set")
                delay = math.ceil(min(error.retry_after, 900)) if error.retry_after and not permanent else 0
                park(self._sqs_client(), queue_url, parked, delay_seconds=delay)
                waiting = waiting or not permanent
                self._count("DeadLettered" if permanent else "WebhookParked")
                self.logger.warning(
                    "dead-lettered" if permanent else "parked for retry",
                    extra={"kind": kind, "ops": len(kind_ops), "reason": error.reason, "status": error.status},
                )
        except Exception as exc:  # noqa: BLE001 - SQS or config failure: Dodo must retry
            self._count("ParkFailed")
            self.logger.error("could not queue the failed delivery: %s", type(exc).__name__)
            return _error(500, "delivery failed and could not be queued")
        if waiting:
            return HttpResponse(202, {"status": "queued"})
        # Nothing will be tried again: saying "queued" would promise a delivery that is not coming.
        return HttpResponse(202, {"status": "dead_lettered"})


def receipts_for(event: DodoEvent, *, received_at: int) -> list[Receipt]:
    """That this webhook arrived, under the Dodo object it is about (`dodo-cio reconcile`); none for an
    object whose id DynamoDB could not key: bookkeeping never costs a webhook its delivery."""
    p = event.payload
    object_id = (
        p.payment_id
        if isinstance(p, Payment)
        else p.refund_id
        if isinstance(p, Refund)
        else p.dispute_id
        if isinstance(p, Dispute)
        else p.subscription_id
        if isinstance(p, Subscription)
        else None
    )
    if object_id is None or key_problem(RECEIPT_PREFIX + object_id) is not None:
        return []
    at = event.envelope.timestamp
    return [Receipt(object_id, event.type, event.webhook_id, at, received_at, _customer_id(event))]


def _customer_id(event: DodoEvent) -> str | None:
    payload = event.payload
    customer = getattr(payload, "customer", None)
    if customer is not None:
        return str(customer.customer_id)
    value = getattr(payload, "customer_id", None)
    return value if isinstance(value, str) else None
