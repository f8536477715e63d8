"""What each Dodo object says, as Customer.io attributes: profile state and event attributes.

Pure functions over the lenient models. Two kinds of output:

* state (`customer_profile`, `subscription_profile`): the current value of each durable fact a
  marketer segments on. A field present in the payload as `null` is kept as `None`, which the
  mapping turns into a removal in Customer.io; a field Dodo did not send at all is left out, so
  nothing is cleared on a guess. Every value fits Customer.io's 1000-byte profile limit.
* event attributes: what happened, compacted (no `None`), for templates and event filters.

Money goes out as four attributes per amount, named after what the amount is (`total_amount`,
`recurring_amount`, `refund_amount`, ...), never a bare `amount` whose meaning depends on the event:
`<prefix>` in major units (`49`, `19.99`), `<prefix>_minor`, `<prefix>_currency` and
`<prefix>_display` (`$49.00`). Dates are Unix seconds. Nested lists go out as short lists of small
objects. docs-draft/mapping-fields.md lists every attribute per family.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dodo_cio.limits import MAX_ATTRIBUTE_VALUE_BYTES, encoded_size
from dodo_cio.models import Customer, Dispute, LicenseKey, Payment, Refund, Subscription
from dodo_cio.money import decimal_number, format_amount, json_number, to_major
from dodo_cio.times import to_unix_seconds

# ---------------------------------------------------------------------------------------------
# secrets
#
# A name is split into words on `_`, `-`, `.`, spaces and camelCase (`apiKey` -> api, key). It is a
# secret when its LAST word is a secret word (`stripe_secret`, `reset_token`, `X-Api-Key`, `pan`),
# or its last two words are a secret pair (`card_number`), optionally followed by one word that only
# says how the secret is stored (`password_hash`, `api_key_value`). A secret word elsewhere in the
# name names something else: `secret_santa`, `tokens_purchased`, `key_count`, `keyboard`, `monkey`
# and `license_key_id` are forwarded. Matching whole words, not substrings, is the point: a
# substring rule dropped merchants' ordinary fields and still needed a list of exceptions.

# `key` on its own is a credential (api_key, private_key, license_key); the fused compounds are
# written without a separator, which the word split cannot see.
_SECRET_WORDS = frozenset(
    "secret secrets password passwords passwd passphrase pwd token tokens key keys cvv cvv2 cvc cvc2 pan "  # noqa: SIM905
    "apikey secretkey privatekey accesstoken refreshtoken authtoken clientsecret cardnumber".split()
)
_SECRET_PAIRS = frozenset({("card", "number"), ("card", "num"), ("card", "no"), ("cc", "number"), ("cc", "num")})
_STORAGE_SUFFIXES = frozenset(
    "value hash hashed digest plain plaintext raw encrypted enc b64 base64 hex str string confirm confirmation".split()  # noqa: SIM905
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")


def name_words(name: str) -> list[str]:
    """`X-Api-Key` -> ["x", "api", "key"]; `APIKey` -> ["api", "key"]; `card_number` -> ["card", "number"]."""
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_key(name: object) -> bool:
    """True for a field name that holds a credential or card data (rule above): never forwarded."""
    words = name_words(str(name))
    if len(words) > 1 and words[-1] in _STORAGE_SUFFIXES:
        words = words[:-1]
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or tuple(words[-2:]) in _SECRET_PAIRS


# Envelope plumbing, and event attribute names Track v2 reserves for message overrides.
_NOT_FORWARDED = frozenset(
    {"customer", "payload_type", "business_id", "brand_id", "recipient", "from_address", "reply_to"}
)

# A list is cut to what fits: Customer.io's per-value limit on a profile; on an event (no such
# limit) a cap all the same, so one long cart cannot push the rest out of the 32 KB op.
PROFILE_VALUE_BYTES = MAX_ATTRIBUTE_VALUE_BYTES
EVENT_LIST_BYTES = 4096

# ---------------------------------------------------------------------------------------------
# small helpers


def _compact(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None: Customer.io would store an empty attribute, which only clutters profiles."""
    return {k: v for k, v in attrs.items() if v is not None}


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _safe_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not metadata:
        return None
    cleaned = {str(k): v for k, v in metadata.items() if not is_secret_key(k) and _scalar(v)}
    return cleaned or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(raw: Mapping[str, Any], key: str) -> str | None:
    return _text(raw.get(key))


def _lower(raw: Mapping[str, Any], key: str) -> str | None:
    value = _str(raw, key)
    return value.lower() if value else None


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    return _whole(raw.get(key))


def _bool(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    return value if isinstance(value, bool) else None


def _time(raw: Mapping[str, Any], key: str) -> int | None:
    return to_unix_seconds(raw.get(key))


def _dict(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _items(raw: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects of a list field; anything else in it is skipped, not fatal."""
    value = raw.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _number(value: object) -> object:
    """A decimal string (`"1000"`, `"12.5"`) as a number; any other value as it came."""
    number = decimal_number(value)
    return value if number is None else number


def _capped(items: Iterable[Any], budget: int) -> list[Any] | None:
    """The leading items whose JSON list fits `budget` bytes; None when there are none."""
    kept: list[Any] = []
    size = 2  # []
    for item in items:
        size += encoded_size(item) + (1 if kept else 0)
        if size > budget:
            break
        kept.append(item)
    return kept or None


def money(prefix: str, minor: int | None, currency: str | None, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`{prefix: 19.99, prefix_minor: 1999, prefix_currency: "USD", prefix_display: "$19.99"}`.

    Empty when the amount or its currency is unknown, or the amount is too large for any JSON
    number Customer.io can store (a hostile payload, not a price).
    """
    code = currency.strip().upper() if currency else ""
    if minor is None or isinstance(minor, bool) or not code:
        return {}
    major = to_major(minor, code, exponents or None)
    try:
        if not math.isfinite(major):
            return {}
    except OverflowError:  # an int past the float range
        return {}
    return {
        prefix: major,
        f"{prefix}_minor": minor,
        f"{prefix}_currency": code,
        f"{prefix}_display": format_amount(minor, code, exponents or None),
    }


def _interval(raw: Mapping[str, Any], interval_key: str, count_key: str) -> tuple[str | None, int | None]:
    interval = _str(raw, interval_key)
    return (interval.lower() if interval else None), _int(raw, count_key)


# ---------------------------------------------------------------------------------------------
# nested lists, summarised


def _discounts(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stacked discounts in stack order, each as what a template shows: code, name, percent off.

    Dodo gives `amount` in basis points; only a percentage discount has a clear meaning for it, so
    a flat discount goes out without an amount rather than with a guessed unit.
    """
    ordered = sorted(_items(raw, "discounts"), key=lambda d: _int(d, "position") or 0)
    out: list[dict[str, Any]] = []
    for d in ordered:
        points = _int(d, "amount")
        percent = json_number(Decimal(points) / 100) if points is not None and d.get("type") == "percentage" else None
        entry = _compact(
            {
                "code": _str(d, "code"),
                "name": _str(d, "name"),
                "type": _str(d, "type"),
                "percent_off": percent,
                "cycles_remaining": _int(d, "cycles_remaining"),
            }
        )
        if entry:
            out.append(entry)
    return out


def _lines(raw: Mapping[str, Any], key: str, id_key: str) -> list[dict[str, Any]]:
    """Add-ons and cart lines: `[{"addon_id": "adn_1", "quantity": 2}]`."""
    return [
        {id_key: i[id_key], "quantity": _int(i, "quantity") or 1}
        for i in _items(raw, key)
        if isinstance(i.get(id_key), str)
    ]


def _quantity(items: list[dict[str, Any]]) -> int:
    return sum(int(item["quantity"]) for item in items)


def _objects(raw: Mapping[str, Any], key: str, fields: Mapping[str, tuple[str, Any]]) -> list[dict[str, Any]]:
    """Each object of a list field reduced to `fields` (output name -> (source key, converter))."""
    return [_compact({name: conv(item.get(src)) for name, (src, conv) in fields.items()}) for item in _items(raw, key)]


_METER_FIELDS = {
    "meter_id": ("meter_id", _text),
    "name": ("name", _text),
    "unit": ("measurement_unit", _text),
    "free_threshold": ("free_threshold", _whole),
    "price_per_unit": ("price_per_unit", _number),
}
# Balances as numbers: Dodo sends them as decimal strings.
_CREDIT_FIELDS = {
    "credit_entitlement_id": ("credit_entitlement_id", _text),
    "name": ("credit_entitlement_name", _text),
    "unit": ("unit", _text),
    "remaining_balance": ("remaining_balance", _number),
    "overage_balance": ("overage_balance", _number),
}


def _custom_fields(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """Checkout answers as `{key: value}`, so a template reads `event.custom_fields.company_size`
    instead of looping over a list of pairs. A key that names a secret is left out."""
    out = {
        r["key"]: r.get("value")
        for r in _items(raw, "custom_field_responses")
        if isinstance(r.get("key"), str) and r["key"] and not is_secret_key(r["key"]) and _scalar(r.get("value"))
    }
    return out or None


def _billing_country(raw: Mapping[str, Any]) -> str | None:
    country = _str(_dict(raw, "billing"), "country")
    return country.upper() if country else None


# ---------------------------------------------------------------------------------------------
# profile attributes (identify)


def _state(raw: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Keep a field when Dodo sent its key: its value, or None (a removal) when it was null.

    `fields` maps each output name to (source key, converted value); a source key absent from
    the payload says nothing about the field, so nothing is cleared on a guess.
    """
    return {name: value for name, (key, value) in fields.items() if key in raw}


def _state_money(
    prefix: str, raw: Mapping[str, Any], key: str, currency_key: str, exponents: Mapping[str, int]
) -> dict[str, Any]:
    if key not in raw:
        return {}
    out = money(prefix, _int(raw, key), _str(raw, currency_key), exponents)
    if not out and raw.get(key) is None:
        return dict.fromkeys(money(prefix, 0, "XXX", {}))  # Dodo cleared the amount: remove all four
    return out


def split_name(name: str | None) -> tuple[str | None, str | None, str | None]:
    """(name, first_name, last_name): the first word, then the rest; a one-word name has no last name.

    A guess that suits most Latin-script names; `name` stays beside it for the cases it does not.
    """
    text = " ".join(name.split()) if name else ""
    if not text:
        return None, None, None
    first, _, rest = text.partition(" ")
    return text, first, rest or None


def customer_profile(customer: Customer, *, metadata: str = "prefixed") -> dict[str, Any]:
    """The person's own fields, as current state (None: Dodo cleared it).

    Dodo's customer object has no more than id, email, name, phone and metadata; billing
    country and business name belong to a subscription (`subscription_profile`).
    """
    email = customer.email.strip() if customer.email and customer.email.strip() else None
    name, first_name, last_name = split_name(customer.name)
    out: dict[str, Any] = {"dodo_customer_id": customer.customer_id}
    if email:  # an email is never removed: an empty one is a gap in the payload, not a change
        out["email"] = email
    if "name" in customer.sent:  # a key Dodo did not send says nothing: nothing is cleared on a guess
        out["name"] = name
        out["first_name"] = first_name
        out["last_name"] = last_name
    if "phone_number" in customer.sent:
        out["phone"] = customer.phone_number or None
    if metadata == "prefixed":
        for key, value in (_safe_metadata(customer.metadata) or {}).items():
            out[f"metadata_{key}"] = value
    return out


def _trial_ends_at(raw: Mapping[str, Any]) -> dict[str, Any]:
    """created_at + trial_period_days: Dodo has no trial end date, and "trial ends in 3 days" is
    the campaign a trial exists for. No trial (0 days, or null) clears it; an unknown start
    leaves it as it is."""
    if "trial_period_days" not in raw:
        return {}
    days = _int(raw, "trial_period_days")
    if days is None or days <= 0:
        return {"trial_ends_at": None}
    start = _time(raw, "created_at")
    return {} if start is None else {"trial_ends_at": start + days * 86_400}


def subscription_profile(sub: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    """The subscription's current state, unprefixed (the mapping puts it on the person or an object).

    Besides the plan and its dates: what a retention or upsell segment asks (discount left,
    add-ons, metered usage, credit balances, whether a card is on file, a pending plan change,
    the churn reason). Lists are summarised to fit the 1000-byte profile value limit.
    """
    raw = sub.raw
    interval, count = _interval(raw, "payment_frequency_interval", "payment_frequency_count")
    discounts = _discounts(raw)
    first: dict[str, Any] = discounts[0] if discounts else {}
    cycles_key = "discounts" if "discounts" in raw else "discount_cycles_remaining"
    cycles = first.get("cycles_remaining") if "discounts" in raw else _int(raw, "discount_cycles_remaining")
    addons = _lines(raw, "addons", "addon_id")
    meter_names = (m["name"] for m in _objects(raw, "meters", _METER_FIELDS) if "name" in m)
    credits = _objects(raw, "credit_entitlement_cart", _CREDIT_FIELDS)
    change = _dict(raw, "scheduled_change")
    return {
        "status": sub.status,
        "product_id": sub.product_id,
        **_state_money("recurring_amount", raw, "recurring_pre_tax_amount", "currency", exponents),
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
                "cancellation_feedback": ("cancellation_feedback", _str(raw, "cancellation_feedback")),
                "expires_at": ("expires_at", _time(raw, "expires_at")),
                "paused_at": ("paused_at", _time(raw, "paused_at")),
                "past_due_ends_at": ("past_due_ends_at", _time(raw, "past_due_ends_at")),
                "trial_period_days": ("trial_period_days", _int(raw, "trial_period_days")),
                "started_at": ("created_at", _time(raw, "created_at")),
                "has_payment_method": ("has_payment_method", _bool(raw, "has_payment_method")),
                "billing_country": ("billing", _billing_country(raw)),
                "customer_business_name": ("customer_business_name", _str(raw, "customer_business_name")),
                "discount_code": ("discounts", first.get("code")),
                "discount_name": ("discounts", first.get("name")),
                "discount_cycles_remaining": (cycles_key, cycles),
                "addon_ids": ("addons", _capped((a["addon_id"] for a in addons), PROFILE_VALUE_BYTES)),
                "addon_count": ("addons", _quantity(addons)),
                "meter_names": ("meters", _capped(meter_names, PROFILE_VALUE_BYTES)),
                "credit_balances": ("credit_entitlement_cart", _capped(credits, PROFILE_VALUE_BYTES)),
                "credits_remaining": ("credit_entitlement_cart", _single_balance(credits)),
                "scheduled_product_id": ("scheduled_change", _str(change, "product_id")),
                "scheduled_product_name": ("scheduled_change", _str(change, "product_name")),
                "scheduled_change_at": ("scheduled_change", _time(change, "effective_at")),
            },
        ),
        **_trial_ends_at(raw),
    }


def _single_balance(credits: list[dict[str, Any]]) -> int | float | None:
    """The remaining balance when the subscription has exactly one credit entitlement, the usual
    case, so a segment can compare one number; with several, balances in different units cannot
    be added up (read `credit_balances`)."""
    if len(credits) != 1:
        return None
    value = credits[0].get("remaining_balance")
    return value if isinstance(value, int | float) else None


# ---------------------------------------------------------------------------------------------
# event attributes


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


def payment_attributes(p: Payment, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`total_amount` is what the customer was charged, tax included; `tax_amount` the tax in it."""
    raw = p.raw
    cart = _lines(raw, "product_cart", "product_id")
    discounts = _discounts(raw)
    ids = raw.get("subscription_ids")
    subscription_ids = [s for s in ids if isinstance(s, str)] if isinstance(ids, list) else []
    return _compact(
        {
            "payment_id": p.payment_id,
            "status": _str(raw, "status"),
            **money("total_amount", p.total_amount, p.currency, exponents),
            **money("tax_amount", _int(raw, "tax"), p.currency, exponents),
            **money("settlement_amount", _int(raw, "settlement_amount"), _str(raw, "settlement_currency"), exponents),
            "payment_method": _str(raw, "payment_method"),
            "payment_method_type": _lower(raw, "payment_method_type"),
            "card_last_four": _last_four(_str(raw, "card_last_four")),
            "card_network": _lower(raw, "card_network"),
            "card_type": _lower(raw, "card_type"),
            "card_issuing_country": _str(raw, "card_issuing_country"),
            **_card_expiry(raw),
            "product_ids": _capped((i["product_id"] for i in cart), EVENT_LIST_BYTES),
            "product_cart": _capped(cart, EVENT_LIST_BYTES),
            "product_quantity": _quantity(cart) if cart else None,
            "subscription_id": _str(raw, "subscription_id"),
            "subscription_ids": _capped(subscription_ids, EVENT_LIST_BYTES),
            "is_multi_subscription": _bool(raw, "is_multi_subscription"),
            "charge_type": _str(raw, "charge_type"),
            "retry_attempt": _int(raw, "retry_attempt"),
            "is_update_payment_method": _bool(raw, "is_update_payment_method"),
            "refund_status": _str(raw, "refund_status"),
            "discount_code": discounts[0].get("code") if discounts else None,
            "discounts": _capped(discounts, EVENT_LIST_BYTES),
            "custom_fields": _custom_fields(raw),
            "error_code": _str(raw, "error_code"),
            "error_message": _str(raw, "error_message"),
            "invoice_id": _str(raw, "invoice_id"),
            "invoice_url": _str(raw, "invoice_url"),
            "payment_link": _str(raw, "payment_link"),
            "billing_country": _billing_country(raw),
            "digital_products_delivered": _bool(raw, "digital_products_delivered"),
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(_dict(raw, "metadata")),
        }
    )


def subscription_attributes(s: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    """The subscription's state under the profile's names (so a template and a segment read the same
    `recurring_amount`, `trial_ends_at`, `discount_code`), plus what only this event needs: who
    cancelled, the renewal payment, the full lists, custom fields, the trial price.

    `recurring_amount` is the price per billing period before tax (see `tax_inclusive`).
    """
    raw = s.raw
    state = _compact(subscription_profile(s, exponents))
    for renamed in ("current_period_start", "started_at"):  # sent as Dodo names them, below
        state.pop(renamed, None)
    change = _dict(raw, "scheduled_change")
    return _compact(
        {
            "subscription_id": s.subscription_id,
            **state,
            **money("trial_amount", _int(raw, "trial_amount"), _str(raw, "currency"), exponents),
            "previous_billing_date": _time(raw, "previous_billing_date"),
            "cancelled_by": _str(_dict(raw, "cancelled_by"), "actor_type"),
            "cancellation_comment": _str(raw, "cancellation_comment"),
            "on_demand": _bool(raw, "on_demand"),
            "payment_id": _str(raw, "payment_id"),
            "discounts": _capped(_discounts(raw), EVENT_LIST_BYTES),
            "addons": _capped(_lines(raw, "addons", "addon_id"), EVENT_LIST_BYTES),
            "meters": _capped(_objects(raw, "meters", _METER_FIELDS), EVENT_LIST_BYTES),
            "credit_balances": _capped(_objects(raw, "credit_entitlement_cart", _CREDIT_FIELDS), EVENT_LIST_BYTES),
            "custom_fields": _custom_fields(raw),
            "scheduled_quantity": _int(change, "quantity"),
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(_dict(raw, "metadata")),
        }
    )


def refund_attributes(r: Refund, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`refund_amount` is what goes back to the customer; the network reference lets them trace it."""
    raw = r.raw
    return _compact(
        {
            "refund_id": r.refund_id,
            "payment_id": r.payment_id,
            "status": _str(raw, "status"),
            **money("refund_amount", r.amount, r.currency, exponents),
            "is_partial": _bool(raw, "is_partial"),
            "reason": _str(raw, "reason"),
            "network_reference": _str(raw, "network_reference"),
            "network_reference_type": _str(raw, "network_reference_type"),
            "created_at": _time(raw, "created_at"),
            "metadata": _safe_metadata(_dict(raw, "metadata")),
        }
    )


def dispute_attributes(d: Dispute, exponents: Mapping[str, int]) -> dict[str, Any]:
    """`dispute_amount` is the amount the customer disputes (Dodo sends it as a string of minor units)."""
    raw = d.raw
    return _compact(
        {
            "dispute_id": d.dispute_id,
            "payment_id": d.payment_id,
            **money("dispute_amount", d.amount, d.currency, exponents),
            "dispute_stage": _str(raw, "dispute_stage"),
            "dispute_status": _str(raw, "dispute_status"),
            "reason": _str(raw, "reason"),
            "remarks": _str(raw, "remarks"),
            "is_resolved_by_rdr": _bool(raw, "is_resolved_by_rdr"),
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


# Credit ledger and low-balance fields Dodo sends as decimal strings; `amount` there counts credits,
# not money, so it goes out as `credit_amount`.
_CREDIT_NUMBERS = frozenset(
    "amount balance_before balance_after overage_before overage_after available_balance "  # noqa: SIM905
    "subscription_credits_amount threshold_amount".split()
)

_DATE_SUFFIXES = ("_at", "_date")

# Nested objects of an entitlement grant: the fields worth a template, and the prefix they go out
# with (`license_key_status`). Never the license key's `key`, nor the short-lived presigned file URLs.
_NESTED: Mapping[str, tuple[str, tuple[str, ...]]] = {
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
                if _scalar(nested) and nested != "":
                    out[prefix + field] = to_unix_seconds(nested) if field.endswith(_DATE_SUFFIXES) else nested
            if isinstance(value.get("files"), list):
                out["delivery_file_count"] = len(value["files"])
        elif is_secret_key(key):
            continue
        elif family == "credit" and key in _CREDIT_NUMBERS:
            out["credit_amount" if key == "amount" else key] = _number(value)
        elif isinstance(value, str) and key.endswith(_DATE_SUFFIXES):
            seconds = to_unix_seconds(value)
            out[key] = seconds if seconds is not None else value
        elif _scalar(value):
            out[key] = value
        elif key == "metadata" and isinstance(value, dict):
            safe = _safe_metadata(value)
            if safe:
                out["metadata"] = safe
    return _compact(out)
