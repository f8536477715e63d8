"""Event attributes: what happened, compacted (no `None`), for templates and event filters.

Pure functions over the lenient models, one per payload family; the profile state the identify
ops carry is `dodo_cio.mapping.profile`, the field readers they share `dodo_cio.mapping.payload_fields`. Amounts
go out as four attributes named after what the amount is (`total_amount`, `refund_amount`, ...),
never a bare `amount` whose meaning depends on the event. docs-draft/mapping-fields.md lists every
attribute per family.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from dodo_cio.mapping import payload_fields as f
from dodo_cio.mapping.money import decimal_number
from dodo_cio.mapping.profile import subscription_profile
from dodo_cio.platform.secret_names import is_secret_key
from dodo_cio.platform.times import to_unix_seconds
from dodo_cio.receiving.models import Dispute, LicenseKey, Payment, Refund, Subscription

# Envelope plumbing, and event attribute names Track v2 reserves for message overrides.
_NOT_FORWARDED: Final = frozenset(
    {"customer", "payload_type", "business_id", "brand_id", "recipient", "from_address", "reply_to"}
)


def _fields(text: str = "", lower: str = "", whole: str = "", flags: str = "", times: str = "") -> dict[str, f.Reader]:
    """The payload keys each family forwards under their own names, by how each is read."""
    readers = ((text, f.text_at), (lower, f.lower_at), (whole, f.int_at), (flags, f.flag_at), (times, f.time_at))
    return {key: reader for names, reader in readers for key in names.split()}


_PAYMENT: Final = _fields(
    text="status payment_method card_issuing_country subscription_id charge_type refund_status error_code "
    "error_message invoice_id invoice_url payment_link",
    lower="payment_method_type card_network card_type",
    whole="retry_attempt",
    flags="is_multi_subscription is_update_payment_method digital_products_delivered",
    times="created_at",
)
_SUBSCRIPTION: Final = _fields(
    text="cancellation_comment payment_id", flags="on_demand", times="previous_billing_date created_at"
)
_REFUND: Final = _fields(text="status reason network_reference network_reference_type", flags="is_partial")
_DISPUTE: Final = _fields(text="dispute_stage dispute_status reason remarks", flags="is_resolved_by_rdr")
_LICENSE_KEY: Final = _fields(
    text="product_id payment_id subscription_id status source",
    whole="activations_limit instances_count",
    times="expires_at",
)
_CREATED: Final = _fields(times="created_at")


def _last_four(value: str | None) -> str | None:
    """Dodo sends only the last four; keep it that way even if a longer number ever appears."""
    if not value:
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits[-4:] or None


def _card_expiry(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Month and year as numbers, and `card_expires_at`: the first second after the expiry month,
    when the card stops working, so "card expires within 30 days" is a plain time condition."""
    month = decimal_number(raw.get("card_exp_month"))
    year = decimal_number(raw.get("card_exp_year"))
    if not isinstance(month, int) or not 1 <= month <= 12:
        month = None
    if isinstance(year, int) and 0 <= year < 100:
        year += 2000  # a two-digit year
    if not isinstance(year, int) or not 2000 <= year <= 9998:
        year = None
    expires = None
    if month is not None and year is not None:
        after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        expires = int(after.timestamp())
    return {"card_exp_month": month, "card_exp_year": year, "card_expires_at": expires}


def _metadata(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {"metadata": f.safe_metadata(f.dict_at(raw, "metadata"))}


def payment_attributes(p: Payment, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`total_amount` is what the customer was charged, tax included; `tax_amount` the tax in it."""
    raw = p.raw
    cart = f.lines(raw, "product_cart", "product_id")
    discounts = f.discounts(raw)
    ids = raw.get("subscription_ids")
    subscription_ids = [s for s in ids if isinstance(s, str)] if isinstance(ids, list) else []
    settlement = f.int_at(raw, "settlement_amount"), f.text_at(raw, "settlement_currency")
    return f.compact(
        {
            "payment_id": p.payment_id,
            **f.read(raw, _PAYMENT),
            **f.money("total_amount", p.total_amount, p.currency, exponents),
            **f.money("tax_amount", f.int_at(raw, "tax"), p.currency, exponents),
            **f.money("settlement_amount", *settlement, exponents),
            "card_last_four": _last_four(f.text_at(raw, "card_last_four")),
            **_card_expiry(raw),
            "product_ids": f.capped((i["product_id"] for i in cart), f.EVENT_LIST_BYTES),
            "product_cart": f.capped(cart, f.EVENT_LIST_BYTES),
            "product_quantity": f.quantity(cart) if cart else None,
            "subscription_ids": f.capped(subscription_ids, f.EVENT_LIST_BYTES),
            "discount_code": discounts[0].get("code") if discounts else None,
            "discounts": f.capped(discounts, f.EVENT_LIST_BYTES),
            "custom_fields": f.custom_fields(raw),
            "billing_country": f.billing_country(raw),
            **_metadata(raw),
        }
    )


def subscription_attributes(
    s: Subscription, exponents: Mapping[str, int], profile: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The subscription's state under the profile's names (so a template and a segment read the same
    `recurring_amount`, `trial_ends_at`, `discount_code`), plus what only this event needs: who
    cancelled, the renewal payment, the full lists, custom fields, the trial price.

    `recurring_amount` is the price per billing period before tax (see `tax_inclusive`).
    `profile` is `subscription_profile(s, exponents)` when the caller already has it.
    """
    raw = s.raw
    state = f.compact(subscription_profile(s, exponents) if profile is None else profile)
    for renamed in ("current_period_start", "started_at"):  # sent as Dodo names them, below
        state.pop(renamed, None)
    return f.compact(
        {
            "subscription_id": s.subscription_id,
            **state,
            **f.money("trial_amount", f.int_at(raw, "trial_amount"), f.text_at(raw, "currency"), exponents),
            **f.read(raw, _SUBSCRIPTION),
            "cancelled_by": f.text_at(f.dict_at(raw, "cancelled_by"), "actor_type"),
            "discounts": f.capped(f.discounts(raw), f.EVENT_LIST_BYTES),
            "addons": f.capped(f.lines(raw, "addons", "addon_id"), f.EVENT_LIST_BYTES),
            "meters": f.capped(f.objects(raw, "meters", f.METER_FIELDS), f.EVENT_LIST_BYTES),
            "credit_balances": f.capped(f.objects(raw, "credit_entitlement_cart", f.CREDIT_FIELDS), f.EVENT_LIST_BYTES),
            "custom_fields": f.custom_fields(raw),
            "scheduled_quantity": f.int_at(f.dict_at(raw, "scheduled_change"), "quantity"),
            **_metadata(raw),
        }
    )


def refund_attributes(r: Refund, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`refund_amount` is what goes back to the customer; the network reference lets them trace it."""
    amount = f.money("refund_amount", r.amount, r.currency, exponents)
    ids = {"refund_id": r.refund_id, "payment_id": r.payment_id}
    return f.compact({**ids, **f.read(r.raw, _REFUND), **amount, **f.read(r.raw, _CREATED), **_metadata(r.raw)})


def dispute_attributes(d: Dispute, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`dispute_amount` is the amount the customer disputes (Dodo sends it as a string of minor units)."""
    amount = f.money("dispute_amount", d.amount, d.currency, exponents)
    ids = {"dispute_id": d.dispute_id, "payment_id": d.payment_id}
    return f.compact({**ids, **amount, **f.read(d.raw, _DISPUTE), **f.read(d.raw, _CREATED)})


def license_key_attributes(lk: LicenseKey) -> dict[str, Any]:
    """Never the `key` itself: it is the customer's secret."""
    return f.compact({"license_key_id": lk.license_key_id, **f.read(lk.raw, _LICENSE_KEY), **f.read(lk.raw, _CREATED)})


# Credit ledger and low-balance fields Dodo sends as decimal strings; `amount` there counts credits,
# not money, so it goes out as `credit_amount`.
_CREDIT_NUMBERS: Final = frozenset(
    "amount balance_before balance_after overage_before overage_after available_balance "  # noqa: SIM905
    "subscription_credits_amount threshold_amount".split()
)

_DATE_SUFFIXES: Final = ("_at", "_date")

# Nested objects of an entitlement grant: the fields worth a template, and the prefix they go out
# with (`license_key_status`). Never the license key's `key`, nor the short-lived presigned file URLs.
_NESTED: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "feature": ("", ("feature_id", "feature_type")),
    "license_key": ("license_key_", ("id", "status", "activations_used", "activations_limit", "expires_at")),
    "digital_product_delivery": ("delivery_", ("external_url", "instructions")),
}


def generic_attributes(raw: Mapping[str, Any], event_type: str = "") -> dict[str, Any]:
    """Credit, dunning, abandoned-checkout and entitlement payloads: their scalar fields, dates as
    Unix seconds, credit amounts as numbers, the useful parts of an entitlement grant's nested
    objects, and safe metadata.

    A bare `id` (a ledger entry's, a grant's) is renamed after the family, `credit_id`, so it
    cannot be mistaken for the person's id in Customer.io.
    """
    family = event_type.split(".", 1)[0] if event_type else ""
    id_name = f"{family}_id" if family else "object_id"
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "id" and id_name not in raw:
            key = id_name  # noqa: PLW2901 - renamed on purpose
        # recipient/from_address/reply_to are Customer.io message overrides (must be emails), never payload data.
        if key in _NOT_FORWARDED:
            continue
        if key in _NESTED and isinstance(value, dict):  # before the secret check: `license_key` is a name
            prefix, fields = _NESTED[key]
            for field in fields:
                nested = value.get(field)
                if f.is_scalar(nested) and nested != "":
                    out[prefix + field] = to_unix_seconds(nested) if field.endswith(_DATE_SUFFIXES) else nested
            if isinstance(value.get("files"), list):
                out["delivery_file_count"] = len(value["files"])
        elif is_secret_key(key):
            continue
        elif family == "credit" and key in _CREDIT_NUMBERS:
            out["credit_amount" if key == "amount" else key] = f.number(value)
        elif isinstance(value, str) and key.endswith(_DATE_SUFFIXES):
            seconds = to_unix_seconds(value)
            out[key] = seconds if seconds is not None else value
        elif f.is_scalar(value):
            out[key] = value
        elif key == "metadata" and isinstance(value, dict):
            safe = f.safe_metadata(value)
            if safe:
                out["metadata"] = safe
    return f.compact(out)
