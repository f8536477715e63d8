"""What each Dodo object says, as Customer.io attributes: profile state and event attributes.

Pure functions over the lenient models. Two kinds of output:

* state (`customer_profile`, `subscription_profile`): the current value of each field Dodo sent.
  A field present in the payload as `null` is kept as `None`, which the mapping turns into a
  removal in Customer.io; a field Dodo did not send at all is left out, so nothing is cleared
  on a guess.
* event attributes: what happened, compacted (no `None`), money as major units beside the raw
  minor-unit integer and the currency code, dates as Unix seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from dodo_cio.models import Customer, Dispute, LicenseKey, Payment, Refund, Subscription
from dodo_cio.money import to_major
from dodo_cio.times import to_unix_seconds

# Keys never forwarded, wherever they appear (top level or metadata): secrets and card data.
_SECRET_KEY = re.compile(
    r"(^key$|secret|token|password|passwd|api[_-]?key|private[_-]?key|card_number|^pan$|cvv|cvc)", re.I
)


# Envelope plumbing, and event attribute names Track v2 reserves for message overrides.
_NOT_FORWARDED = frozenset(
    {"customer", "payload_type", "business_id", "brand_id", "recipient", "from_address", "reply_to"}
)


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


def _state(raw: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Keep a field when Dodo sent its key: its value, or None (a removal) when it was null.

    `fields` maps each output name to (source key, converted value); a source key absent from
    the payload says nothing about the field, so nothing is cleared on a guess.
    """
    return {name: value for name, (key, value) in fields.items() if key in raw}


def customer_profile(customer: Customer, *, metadata: str = "prefixed") -> dict[str, Any]:
    """The person's own fields, as current state (None: Dodo cleared it)."""
    email = customer.email.strip() if customer.email and customer.email.strip() else None
    name = customer.name.strip() if customer.name and customer.name.strip() else None
    out: dict[str, Any] = {"dodo_customer_id": customer.customer_id}
    if email:  # an email is never removed: an empty one is a gap in the payload, not a change
        out["email"] = email
    out["name"] = name
    out["phone"] = customer.phone_number or None
    if metadata == "prefixed":
        for key, value in (_safe_metadata(customer.metadata) or {}).items():
            out[f"metadata_{key}"] = value
    return out


def subscription_profile(sub: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    """The subscription's current state, unprefixed (the mapping puts it on the person or an object)."""
    raw = sub.raw
    interval, count = _interval(raw, "payment_frequency_interval", "payment_frequency_count")
    amount = money("amount", _int(raw, "recurring_pre_tax_amount"), _str(raw, "currency"), exponents)
    return {
        "status": sub.status,
        "product_id": sub.product_id,
        **amount,
        **_state(
            raw,
            {
                "quantity": ("quantity", _int(raw, "quantity")),
                "tax_inclusive": ("tax_inclusive", _bool(raw, "tax_inclusive")),
                "billing_interval": ("payment_frequency_interval", interval),
                "billing_interval_count": ("payment_frequency_count", count),
                "next_billing_date": ("next_billing_date", _time(raw, "next_billing_date")),
                "current_period_start": ("previous_billing_date", _time(raw, "previous_billing_date")),
                "cancel_at_period_end": ("cancel_at_next_billing_date", _bool(raw, "cancel_at_next_billing_date")),
                "cancelled_at": ("cancelled_at", _time(raw, "cancelled_at")),
                "expires_at": ("expires_at", _time(raw, "expires_at")),
                "paused_at": ("paused_at", _time(raw, "paused_at")),
                "past_due_ends_at": ("past_due_ends_at", _time(raw, "past_due_ends_at")),
                "trial_period_days": ("trial_period_days", _int(raw, "trial_period_days")),
                "started_at": ("created_at", _time(raw, "created_at")),
            },
        ),
    }


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
