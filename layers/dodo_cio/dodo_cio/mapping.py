"""The default Dodo -> Customer.io mapping, and the knobs to change it without touching the plumbing.

Each webhook becomes at most two Track v2 person operations, identify first (so that a campaign
triggered by the event sees current profile attributes), then the event:

* `identify` when the payload carries current customer or subscription state;
* `event` named after the Dodo type, stamped with the Dodo event time and a ULID derived from the
  webhook id, so a redelivery can never become a second Customer.io event.

Money goes out as major units computed with the currency's ISO 4217 exponent, with the raw
minor-unit integer and the currency code beside it. Dates go out as integer Unix seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dodo_cio import events
from dodo_cio.models import (
    Customer,
    CustomerRef,
    Dispute,
    DodoEvent,
    LicenseKey,
    Payment,
    Payout,
    Refund,
    Subscription,
)
from dodo_cio.money import to_major
from dodo_cio.times import to_unix_seconds
from dodo_cio.ulid import deterministic_ulid

Op = dict[str, Any]
Transform = Callable[[DodoEvent, list[Op]], list[Op]]
AttributeHook = Callable[[DodoEvent], Mapping[str, Any]]

# Keys never forwarded, wherever they appear (top level or metadata): secrets and card data.
_SECRET_KEY = re.compile(
    r"(^key$|secret|token|password|passwd|api[_-]?key|private[_-]?key|card_number|^pan$|cvv|cvc)", re.I
)


# Envelope plumbing, and event attribute names Track v2 reserves for message overrides.
_NOT_FORWARDED = frozenset(
    {"customer", "payload_type", "business_id", "brand_id", "recipient", "from_address", "reply_to"}
)


class MappingConfigError(ValueError):
    """A customisation that cannot work (e.g. an unknown identifier strategy)."""


@dataclass(frozen=True, slots=True)
class IdentifierStrategy:
    """Which one identifier each op carries: Dodo customer id, email, or a metadata key."""

    kind: str = "customer_id"
    metadata_key: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> IdentifierStrategy:
        value = (text or "customer_id").strip()
        if value in ("", "customer_id", "id"):
            return cls()
        if value == "email":
            return cls(kind="email")
        if value.startswith("metadata:") and value[len("metadata:") :].strip():
            return cls(kind="metadata", metadata_key=value[len("metadata:") :].strip())
        raise MappingConfigError(f"identifier strategy {value!r} is not one of customer_id, email, metadata:<key>")

    def resolve(
        self, customer_id: str, email: str | None, metadata: Iterable[Mapping[str, Any]] = ()
    ) -> dict[str, str]:
        """One identifier; falls back to the customer id when the chosen one is missing."""
        if self.kind == "email" and email and email.strip():
            return {"email": email.strip()}
        if self.kind == "metadata" and self.metadata_key:
            for source in metadata:
                value = source.get(self.metadata_key)
                if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                    return {"id": str(value).strip()}
        return {"id": customer_id}


@dataclass(frozen=True)
class MappingConfig:
    """Everything a merchant may change about the mapping.

    event_names:        Dodo type -> Customer.io event name (default: the Dodo type verbatim).
    ignored_types:      Dodo types acknowledged but not sent (default: payouts, which have no customer).
    send_identify:      whether to update profile attributes at all.
    extra_attributes:   Dodo type (or "*") -> function returning attributes added to the event op.
    removed_attributes: Dodo type (or "*") -> attribute names removed from every op of that type.
    transforms:         Dodo type (or "*") -> your own function (event, default ops) -> ops.
    exponents:          currency -> minor-unit exponent, overriding the ISO 4217 table.
    """

    identifier: IdentifierStrategy = field(default_factory=IdentifierStrategy)
    event_names: Mapping[str, str] = field(default_factory=dict)
    ignored_types: frozenset[str] = events.PAYOUT_TYPES
    send_identify: bool = True
    extra_attributes: Mapping[str, AttributeHook] = field(default_factory=dict)
    removed_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    transforms: Mapping[str, Transform] = field(default_factory=dict)
    exponents: Mapping[str, int] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> MappingConfig:
        return replace(self, **changes)

    def event_name(self, event_type: str) -> str:
        return self.event_names.get(event_type, event_type)


# ---------------------------------------------------------------------------------------------
# small helpers


def _compact(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None: Customer.io would store an empty attribute, which only clutters profiles."""
    return {k: v for k, v in attrs.items() if v is not None}


def _safe_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not metadata:
        return None
    cleaned = {
        str(k): v
        for k, v in metadata.items()
        if not _SECRET_KEY.search(str(k)) and isinstance(v, str | int | float | bool)
    }
    return cleaned or None


def _str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value != "" else None


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    return value if isinstance(value, bool) else None


def _time(raw: Mapping[str, Any], key: str) -> int | None:
    return to_unix_seconds(raw.get(key))


def money(prefix: str, minor: int | None, currency: str | None, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`{prefix: 19.99, prefix_minor: 1999, prefix_currency: "USD"}`; empty when unknown."""
    if minor is None or not currency:
        return {}
    code = currency.upper()
    major = to_major(minor, code, exponents or None)
    if isinstance(major, float) and math.isinf(major):  # an absurd amount overflows; JSON has no Infinity
        return {}
    return {
        prefix: major,
        f"{prefix}_minor": minor,
        f"{prefix}_currency": code,
    }


def _interval(raw: Mapping[str, Any], interval_key: str, count_key: str) -> tuple[str | None, int | None]:
    interval = _str(raw, interval_key)
    return (interval.lower() if interval else None), _int(raw, count_key)


# ---------------------------------------------------------------------------------------------
# profile attributes (identify)


def customer_profile(customer: Customer) -> dict[str, Any]:
    return _compact(
        {
            "email": customer.email.strip() if customer.email and customer.email.strip() else None,
            "name": customer.name.strip() if customer.name and customer.name.strip() else None,
            "phone": customer.phone_number or None,
            "dodo_customer_id": customer.customer_id,
        }
    )


def subscription_profile(sub: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    raw = sub.raw
    interval, count = _interval(raw, "payment_frequency_interval", "payment_frequency_count")
    return _compact(
        {
            "subscription_id": sub.subscription_id,
            "subscription_status": sub.status,
            "subscription_product_id": sub.product_id,
            "subscription_quantity": _int(raw, "quantity"),
            **money("subscription_amount", _int(raw, "recurring_pre_tax_amount"), _str(raw, "currency"), exponents),
            "subscription_tax_inclusive": _bool(raw, "tax_inclusive"),
            "subscription_billing_interval": interval,
            "subscription_billing_interval_count": count,
            "subscription_next_billing_date": _time(raw, "next_billing_date"),
            "subscription_current_period_start": _time(raw, "previous_billing_date"),
            "subscription_cancel_at_period_end": _bool(raw, "cancel_at_next_billing_date"),
            "subscription_cancelled_at": _time(raw, "cancelled_at"),
            "subscription_expires_at": _time(raw, "expires_at"),
            "subscription_paused_at": _time(raw, "paused_at"),
            "subscription_past_due_ends_at": _time(raw, "past_due_ends_at"),
            "subscription_trial_period_days": _int(raw, "trial_period_days"),
            "subscription_started_at": _time(raw, "created_at"),
        }
    )


# ---------------------------------------------------------------------------------------------
# event attributes


def payment_attributes(p: Payment, exponents: Mapping[str, int]) -> dict[str, Any]:
    raw = p.raw
    cart = raw.get("product_cart")
    product_ids = (
        [i["product_id"] for i in cart if isinstance(i, dict) and isinstance(i.get("product_id"), str)]
        if isinstance(cart, list)
        else []
    )
    billing = raw.get("billing") if isinstance(raw.get("billing"), dict) else {}
    assert isinstance(billing, dict)
    return _compact(
        {
            "payment_id": p.payment_id,
            "status": _str(raw, "status"),
            **money("amount", p.total_amount, p.currency, exponents),
            **money("tax", _int(raw, "tax"), p.currency, exponents),
            **money(
                "settlement_amount",
                _int(raw, "settlement_amount"),
                _str(raw, "settlement_currency"),
                exponents,
            ),
            "payment_method": _str(raw, "payment_method"),
            "card_last_four": _last_four(_str(raw, "card_last_four")),
            "card_network": (_str(raw, "card_network") or "").lower() or None,
            "card_type": (_str(raw, "card_type") or "").lower() or None,
            "product_ids": product_ids or None,
            "subscription_id": _str(raw, "subscription_id"),
            "charge_type": _str(raw, "charge_type"),
            "retry_attempt": _int(raw, "retry_attempt"),
            "is_update_payment_method": _bool(raw, "is_update_payment_method"),
            "error_code": _str(raw, "error_code"),
            "error_message": _str(raw, "error_message"),
            "invoice_id": _str(raw, "invoice_id"),
            "payment_link": _str(raw, "payment_link"),
            "billing_country": _str(billing, "country"),
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(raw.get("metadata") if isinstance(raw.get("metadata"), dict) else None),
        }
    )


def _last_four(value: str | None) -> str | None:
    """Dodo sends only the last four; keep it that way even if a longer number ever appears."""
    if not value:
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits[-4:] or None


def subscription_attributes(s: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    raw = s.raw
    interval, count = _interval(raw, "payment_frequency_interval", "payment_frequency_count")
    change = raw.get("scheduled_change") if isinstance(raw.get("scheduled_change"), dict) else None
    cancelled_by = raw.get("cancelled_by") if isinstance(raw.get("cancelled_by"), dict) else None
    return _compact(
        {
            "subscription_id": s.subscription_id,
            "status": s.status,
            "product_id": s.product_id,
            "quantity": _int(raw, "quantity"),
            **money("amount", _int(raw, "recurring_pre_tax_amount"), _str(raw, "currency"), exponents),
            "tax_inclusive": _bool(raw, "tax_inclusive"),
            "billing_interval": interval,
            "billing_interval_count": count,
            "next_billing_date": _time(raw, "next_billing_date"),
            "previous_billing_date": _time(raw, "previous_billing_date"),
            "cancel_at_period_end": _bool(raw, "cancel_at_next_billing_date"),
            "cancelled_at": _time(raw, "cancelled_at"),
            "cancelled_by": _str(cancelled_by, "actor_type") if cancelled_by else None,
            "cancellation_feedback": _str(raw, "cancellation_feedback"),
            "cancellation_comment": _str(raw, "cancellation_comment"),
            "expires_at": _time(raw, "expires_at"),
            "paused_at": _time(raw, "paused_at"),
            "past_due_ends_at": _time(raw, "past_due_ends_at"),
            "trial_period_days": _int(raw, "trial_period_days"),
            "on_demand": _bool(raw, "on_demand"),
            "payment_id": _str(raw, "payment_id"),
            "scheduled_product_id": _str(change, "product_id") if change else None,
            "scheduled_change_at": _time(change, "effective_at") if change else None,
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(raw.get("metadata") if isinstance(raw.get("metadata"), dict) else None),
        }
    )


def refund_attributes(r: Refund, exponents: Mapping[str, int]) -> dict[str, Any]:
    raw = r.raw
    return _compact(
        {
            "refund_id": r.refund_id,
            "payment_id": r.payment_id,
            "status": _str(raw, "status"),
            **money("amount", r.amount, r.currency, exponents),
            "is_partial": _bool(raw, "is_partial"),
            "reason": _str(raw, "reason"),
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(raw.get("metadata") if isinstance(raw.get("metadata"), dict) else None),
        }
    )


def dispute_attributes(d: Dispute, exponents: Mapping[str, int]) -> dict[str, Any]:
    raw = d.raw
    return _compact(
        {
            "dispute_id": d.dispute_id,
            "payment_id": d.payment_id,
            **money("amount", d.amount, d.currency, exponents),
            "dispute_stage": _str(raw, "dispute_stage"),
            "dispute_status": _str(raw, "dispute_status"),
            "reason": _str(raw, "reason"),
            "remarks": _str(raw, "remarks"),
            "created_at": _time(raw, "created_at"),
        }
    )


def license_key_attributes(lk: LicenseKey) -> dict[str, Any]:
    """Never the `key` itself: it is the customer's secret."""
    raw = lk.raw
    return _compact(
        {
            "license_key_id": lk.license_key_id,
            "product_id": _str(raw, "product_id"),
            "payment_id": _str(raw, "payment_id"),
            "subscription_id": _str(raw, "subscription_id"),
            "status": _str(raw, "status"),
            "source": _str(raw, "source"),
            "activations_limit": _int(raw, "activations_limit"),
            "instances_count": _int(raw, "instances_count"),
            "expires_at": _time(raw, "expires_at"),
            "created_at": _time(raw, "created_at"),
        }
    )


def generic_attributes(raw: Mapping[str, Any], event_type: str = "") -> dict[str, Any]:
    """Families whose shape Dodo documents loosely: scalar fields only, dates as Unix seconds.

    A bare `id` (a ledger entry's, a grant's) is renamed after the family, `credit_id`, so it
    cannot be mistaken for the person's id in Customer.io.
    """
    out: dict[str, Any] = {}
    id_name = f"{event_type.split('.', 1)[0]}_id" if event_type else "object_id"
    for key, value in raw.items():
        if key == "id" and id_name not in raw:
            key = id_name  # noqa: PLW2901 - renamed on purpose
        # recipient/from_address/reply_to are Customer.io message overrides (must be emails), never payload data.
        if key in _NOT_FORWARDED or _SECRET_KEY.search(key):
            continue
        if isinstance(value, str) and (key.endswith("_at") or key.endswith("_date")):
            out[key] = to_unix_seconds(value) if to_unix_seconds(value) is not None else value
        elif isinstance(value, str | int | float | bool):
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# ops


def event_op(event: DodoEvent, identifiers: dict[str, str], name: str, attributes: dict[str, Any]) -> Op:
    return {
        "type": "person",
        "identifiers": identifiers,
        "action": "event",
        "name": name,
        "id": deterministic_ulid(event.webhook_id, event.envelope.timestamp_ms),
        "timestamp": event.envelope.timestamp,
        "attributes": attributes,
    }


def identify_op(event: DodoEvent, identifiers: dict[str, str], attributes: dict[str, Any]) -> Op:
    # The timestamp lets Customer.io order attribute updates by when they happened at Dodo.
    return {
        "type": "person",
        "identifiers": identifiers,
        "action": "identify",
        "timestamp": event.envelope.timestamp,
        "attributes": attributes,
    }


def default_ops(event: DodoEvent, config: MappingConfig) -> list[Op]:
    """The mapping a careful Customer.io admin would write by hand; [] when nothing should be sent."""
    p = event.payload
    exp = config.exponents
    customer: Customer | None = None
    customer_id: str
    profile: dict[str, Any] = {}
    attrs: dict[str, Any]
    metadata_sources: list[Mapping[str, Any]] = []

    if isinstance(p, Payout):
        return []
    if isinstance(p, Payment):
        customer, attrs = p.customer, payment_attributes(p, exp)
    elif isinstance(p, Subscription):
        customer, attrs = p.customer, subscription_attributes(p, exp)
        profile = subscription_profile(p, exp)
    elif isinstance(p, Refund):
        customer, attrs = p.customer, refund_attributes(p, exp)
    elif isinstance(p, Dispute):
        if p.customer is None:
            return []  # nobody to address; the caller logs and counts it as unroutable
        customer, attrs = p.customer, dispute_attributes(p, exp)
    elif isinstance(p, LicenseKey):
        customer_id, attrs = p.customer_id, license_key_attributes(p)
    elif isinstance(p, CustomerRef):
        customer_id, attrs = p.customer_id, generic_attributes(p.raw, event.type)
    else:  # pragma: no cover - exhaustive over Payload
        return []

    if isinstance(p.raw.get("metadata"), dict):
        metadata_sources.append(p.raw["metadata"])
    if customer is not None:
        customer_id = customer.customer_id
        metadata_sources.append(customer.metadata)
        profile = {**customer_profile(customer), **profile}
    identifiers = config.identifier.resolve(customer_id, customer.email if customer else None, metadata_sources)

    ops: list[Op] = []
    if config.send_identify and profile:
        ops.append(identify_op(event, dict(identifiers), profile))
    ops.append(event_op(event, dict(identifiers), config.event_name(event.type), attrs))
    return ops


def map_event(event: DodoEvent, config: MappingConfig) -> list[Op]:
    """Default ops, then the merchant's extra/removed attributes and transforms, in that order."""
    if event.type in config.ignored_types:
        return []
    ops = default_ops(event, config)
    for key in ("*", event.type):
        hook = config.extra_attributes.get(key)
        if hook is not None:
            extra = dict(hook(event))
            for op in ops:
                if op["action"] == "event":
                    op["attributes"] = {**op["attributes"], **extra}
    removed = config.removed_attributes.get("*", frozenset()) | config.removed_attributes.get(event.type, frozenset())
    if removed:
        for op in ops:
            op["attributes"] = {k: v for k, v in op.get("attributes", {}).items() if k not in removed}
    for key in ("*", event.type):
        transform = config.transforms.get(key)
        if transform is not None:
            ops = list(transform(event, ops))
    # Ops a transform added get their own stable dedup id; the default event keeps the plain one.
    for index, op in enumerate(ops):
        if op.get("action") == "event" and not op.get("id"):
            op["id"] = deterministic_ulid(f"{event.webhook_id}#{index}", event.envelope.timestamp_ms)
    return ops
