"""`dodo-cio reconcile`: prove that every payment, refund, dispute and subscription reached the bridge.

Dodo's logs stop at the bridge's 2xx, and Customer.io shows what arrived, not what should have. The
bridge keeps a receipt per Dodo object of the webhooks that arrived (`dodo_cio.state.table.Receipt`, kept
`ReceiptRetentionDays`); reconcile lists what Dodo holds for a period through the SDK's list calls
and compares, object by object, with the webhook each one's state implies:

* a payment: `payment.<status>` for succeeded, failed, cancelled and processing (the other statuses
  are steps of a checkout Dodo sends no webhook for);
* a refund: `refund.succeeded` or `refund.failed`;
* a dispute: `dispute.opened` (every dispute starts there);
* a subscription that has been active (any status but pending and failed): `subscription.active`.

An object with no receipt of that type is **missing** (Dodo gave up on it, the endpoint was down or
filtered that type out, or it predates the bridge); one whose webhook arrived but waits on the
retry queue, or was dead-lettered or quarantined, is **stuck**, with the reason the queue gives.
The exit status is 1 when anything is missing or stuck, so it can run on a schedule.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from dodo_cio_cli.backfill_source import MAX_PAGE_SIZE, BackfillError, sdk_client

FAMILIES: Final = ("payments", "refunds", "disputes", "subscriptions")
_PAYMENT_EVENTS: Final = {"succeeded", "failed", "cancelled", "processing"}
_REFUND_EVENTS: Final = {"succeeded", "failed"}
_NEVER_ACTIVE: Final = {"pending", "failed"}

Lister = Callable[[str, int, int], list[dict[str, Any]]]  # family, page number, page size -> items


@dataclass(frozen=True, slots=True)
class Expected:
    family: str
    object_id: str
    event_type: str
    created_at: str
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    family: str
    object_id: str
    event_type: str
    state: str  # missing | stuck
    reason: str
    customer_id: str | None = None


@dataclass(slots=True)
class Report:
    since: str
    until: str
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # family -> arrived / missing / stuck
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> str:
        return json.dumps(
            {
                "since": self.since,
                "until": self.until,
                "counts": {f: dict(c) for f, c in self.counts.items()},
                "findings": [asdict(f) for f in self.findings],
            },
            indent=2,
        )

    def format(self) -> str:
        lines = [f"reconcile {self.since} .. {self.until}"]
        for family in FAMILIES:
            c = self.counts.get(family, Counter())
            lines.append(
                f"  {family:<14} {sum(c.values()):>6} in Dodo: {c['arrived']} arrived, "
                f"{c['missing']} missing, {c['stuck']} stuck"
            )
        for f in self.findings[:200]:
            who = f" (customer {f.customer_id})" if f.customer_id else ""
            lines.append(f"  {f.state.upper():<8} {f.event_type:<22} {f.object_id}{who}: {f.reason}")
        if len(self.findings) > 200:
            lines.append(f"  … {len(self.findings) - 200} more (--json lists them all)")
        lines.append("  result: " + ("nothing missing" if self.ok else f"{len(self.findings)} to look at"))
        return "\n".join(lines)


def expected(family: str, item: Mapping[str, Any]) -> Expected | None:
    """The webhook an object's current state implies the bridge received, or None."""
    status = str(item.get("status") or item.get("dispute_status") or "").lower()
    created = str(item.get("created_at") or "")
    customer = item.get("customer")
    customer_id = customer.get("customer_id") if isinstance(customer, dict) else item.get("customer_id")
    customer_id = customer_id if isinstance(customer_id, str) else None
    if family == "payments" and status in _PAYMENT_EVENTS:
        return Expected(family, str(item.get("payment_id")), f"payment.{status}", created, customer_id)
    if family == "refunds" and status in _REFUND_EVENTS:
        return Expected(family, str(item.get("refund_id")), f"refund.{status}", created, customer_id)
    if family == "disputes" and item.get("dispute_id"):
        return Expected(family, str(item["dispute_id"]), "dispute.opened", created, customer_id)
    if family == "subscriptions" and status and status not in _NEVER_ACTIVE:
        return Expected(family, str(item.get("subscription_id")), "subscription.active", created, customer_id)
    return None


def list_family(lister: Lister, family: str, since: str, until: str, page_size: int = MAX_PAGE_SIZE) -> list[Expected]:
    """Every object of a family created in [since, until] (ISO dates), as the webhook it implies."""
    out: list[Expected] = []
    previous: list[str] | None = None
    for page in range(100_000):
        items = lister(family, page, page_size)
        if not items:
            break
        ids = [json.dumps(i, sort_keys=True) for i in items]
        if ids == previous:  # a server repeating its last page would loop forever
            break
        previous = ids
        for item in items:
            created = str(item.get("created_at") or "")
            if created and not (since <= created[: len(since)] and created[: len(until)] <= until):
                continue
            found = expected(family, item)
            if found is not None:
                out.append(found)
    return out


def reconcile(
    objects: Sequence[Expected],
    receipts: Callable[[Iterable[str]], Mapping[str, Mapping[str, Any]]],
    queued: Mapping[str, str],
    *,
    since: str,
    until: str,
) -> Report:
    """Compare Dodo's objects with the receipts; `queued`: object id -> why a message about it waits."""
    report = Report(since, until, {f: Counter() for f in FAMILIES})
    seen = receipts([o.object_id for o in objects])
    for o in objects:
        arrived = seen.get(o.object_id, {})
        if o.event_type not in arrived:
            other = ", ".join(sorted(arrived)) or "nothing"
            report.counts[o.family]["missing"] += 1
            report.findings.append(
                Finding(
                    o.family,
                    o.object_id,
                    o.event_type,
                    "missing",
                    f"no {o.event_type} webhook arrived (received: {other})",
                    o.customer_id,
                )
            )
        elif o.object_id in queued:
            report.counts[o.family]["stuck"] += 1
            report.findings.append(
                Finding(o.family, o.object_id, o.event_type, "stuck", queued[o.object_id], o.customer_id)
            )
        else:
            report.counts[o.family]["arrived"] += 1
    return report


class SdkLister:
    """Dodo's list calls through the official SDK, one numbered page at a time (as the backfill reads)."""

    def __init__(self, api_key: str, *, environment: str = "live_mode", base_url: str | None = None) -> None:
        import dodopayments  # noqa: PLC0415

        self._sdk = dodopayments
        self._client = sdk_client(api_key, environment=environment, base_url=base_url)

    def __call__(self, family: str, page: int, size: int) -> list[dict[str, Any]]:
        sdk = self._sdk
        try:
            result = getattr(self._client, family).list(page_number=page, page_size=size)
        except (sdk.AuthenticationError, sdk.PermissionDeniedError) as exc:
            raise BackfillError(
                f"Dodo Payments rejected the API key (HTTP {exc.status_code}) listing {family}"
            ) from None
        except sdk.APIStatusError as exc:
            raise BackfillError(
                f"Dodo Payments answered HTTP {exc.status_code} listing {family} page {page}", code=1
            ) from None
        except sdk.APIConnectionError as exc:
            raise BackfillError(f"cannot reach Dodo Payments listing {family}: {type(exc).__name__}", code=1) from None
        return [item.to_dict(mode="json", warnings=False) for item in result.items]

    def retrieve(self, family: str, object_id: str) -> dict[str, Any] | None:
        """One object whole, as Dodo holds it now (what a webhook's `data` carries), or None if gone."""
        sdk = self._sdk
        try:
            found = getattr(self._client, family).retrieve(object_id)
        except sdk.NotFoundError:
            return None
        except (sdk.APIStatusError, sdk.APIConnectionError) as exc:
            raise BackfillError(
                f"cannot read {object_id[:40]} from Dodo Payments: {type(exc).__name__}", code=1
            ) from None
        data: dict[str, Any] = found.to_dict(mode="json", warnings=False)
        return data

    def close(self) -> None:
        self._client.close()


def webhook_body(event_type: str, data: Mapping[str, Any]) -> bytes:
    """The webhook Dodo would have sent for the object as it is now: its envelope around its data."""
    return json.dumps(
        {
            "business_id": str(data.get("business_id") or data.get("brand_id") or ""),
            "type": event_type,
            "timestamp": str(data.get("created_at") or ""),
            "data": dict(data),
        }
    ).encode()


def fix_webhook_id(finding: Finding) -> str:
    """The same id on every `--fix` run: a second run is answered from the first, never counted twice."""
    digest = hashlib.sha256(f"{finding.event_type}\n{finding.object_id}".encode()).hexdigest()[:24]
    return f"msg_reconcile_{digest}"


def fix(
    report: Report,
    lister: SdkLister,
    send: Callable[[bytes, str], tuple[int, str]],
) -> list[tuple[Finding, str]]:
    """Each missing object fetched from Dodo and sent through the bridge's endpoint, signed, as its webhook.

    The bridge then treats it as any delivery (verify, map, deliver, park; the summary counts a
    payment once by its id; the receipt is written). Stuck objects are left alone: they are on
    the bridge's queues already (`dodo-cio dlq`, `redrive`, `reprocess`).
    """
    done: list[tuple[Finding, str]] = []
    for finding in report.findings:
        if finding.state != "missing":
            continue
        data = lister.retrieve(finding.family, finding.object_id)
        if data is None:
            done.append((finding, "Dodo no longer has it"))
            continue
        status, text = send(webhook_body(finding.event_type, data), fix_webhook_id(finding))
        done.append((finding, f"HTTP {status} {text[:200]}"))
    return done


_OBJECT_KEYS: Final = ("payment_id", "refund_id", "dispute_id", "subscription_id")


def queued_objects(sqs: Any, queues: Mapping[str, str]) -> dict[str, str]:
    """Object id -> why a message about it waits (retry queue, dead-letter queue or quarantine), peeked."""
    from dodo_cio_cli.sqs_peek import peek_messages  # noqa: PLC0415

    found: dict[str, str] = {}
    for label, url in queues.items():
        if not url:
            continue
        for message in peek_messages(sqs, url, limit=1000, what=f"the {label}", wait_seconds=0):
            try:
                doc = json.loads(message.get("Body", ""))
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            last = doc.get("last_error")
            error: Mapping[str, Any] = last if isinstance(last, dict) else {}
            why = str(error.get("reason") or doc.get("error_detail") or "")[:200]
            reason = f"{label}: {error.get('kind') or doc.get('kind')} {why}"
            for object_id in _objects_of(doc):
                found.setdefault(object_id, reason.strip())
    return found


def _objects_of(doc: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for op in doc.get("ops") or []:
        attributes = op.get("attributes") if isinstance(op, dict) else None
        if isinstance(attributes, dict):
            ids |= {v for k in _OBJECT_KEYS if isinstance(v := attributes.get(k), str)}
    body = doc.get("body")
    if isinstance(body, str):  # a quarantined webhook, kept as sent
        try:
            data = json.loads(body).get("data") or {}
        except (ValueError, AttributeError):
            data = {}
        if isinstance(data, dict):
            ids |= {v for k in _OBJECT_KEYS if isinstance(v := data.get(k), str)}
    return ids
