"""Profile state (the identify ops): the current value of each durable fact a marketer segments on.

A subscription field present in the payload as `null` is kept as `None`, which the mapping turns
into a removal in Customer.io; a field Dodo did not send at all is left out, so nothing is cleared
on a guess. The person's contact fields (email, name, phone) are different: a null, empty or
missing one means Dodo does not know it, never that it was cleared, so only a value is sent (a
phone number or a name the merchant's app set must survive Dodo's `phone_number: null`). Every
value fits Customer.io's 1000-byte profile limit. docs/mapping-fields.md lists every attribute.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from dodo_cio.mapping import payload_fields as f
from dodo_cio.receiving.models import Customer, Subscription


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
    out = f.money(prefix, f.int_at(raw, key), f.text_at(raw, currency_key), exponents)
    if not out and raw.get(key) is None:
        return dict.fromkeys(f.money(prefix, 0, "XXX", {}))  # Dodo cleared the amount: remove all four
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


# The person's contact fields, as `customer_profile` groups them: "name" covers name, first_name and
# last_name. `MappingConfig.contact_fields_sent()` says which of them this deployment sends.
CONTACT_FIELDS: Final = frozenset({"email", "name", "phone"})


def _known(text: str | None) -> str | None:
    """The value with its outer whitespace removed; None when Dodo does not know it (null or blank)."""
    return (text.strip() or None) if text else None


def customer_profile(
    customer: Customer, *, metadata: str = "prefixed", contact: Collection[str] = CONTACT_FIELDS
) -> dict[str, Any]:
    """The person's own fields, as current state.

    Contact fields (`contact`: which of email, name and phone to send; the merchant's app may own
    them, see `MappingConfig.contact_fields`) go out only with a value: null, blank or missing in
    Dodo's payload means unknown, and sending `null` would delete what the merchant's app set.
    Dodo's customer object has no more than id, email, name, phone and metadata; billing country
    and business name belong to a subscription (`subscription_profile`).
    """
    out: dict[str, Any] = {"dodo_customer_id": customer.customer_id}
    email = _known(customer.email)
    if email and "email" in contact:
        out["email"] = email
    name, first_name, last_name = split_name(customer.name)
    if name and "name" in contact:
        out["name"] = name
        out["first_name"] = first_name
        if last_name:  # a one-word name says nothing about a last name: it is left as it is
            out["last_name"] = last_name
    phone = _known(customer.phone_number)
    if phone and "phone" in contact:
        out["phone"] = phone
    if metadata == "prefixed":
        for key, value in (f.safe_metadata(customer.metadata) or {}).items():
            out[f"metadata_{key}"] = value
    return out


def _trial_ends_at(raw: Mapping[str, Any]) -> dict[str, Any]:
    """created_at + trial_period_days: Dodo has no trial end date, and "trial ends in 3 days" is
    the campaign a trial exists for. No trial (0 days, or null) clears it; an unknown start
    leaves it as it is."""
    if "trial_period_days" not in raw:
        return {}
    days = f.int_at(raw, "trial_period_days")
    if days is None or days <= 0:
        return {"trial_ends_at": None}
    start = f.time_at(raw, "created_at")
    return {} if start is None else {"trial_ends_at": start + days * 86_400}


def subscription_profile(sub: Subscription, exponents: Mapping[str, int]) -> dict[str, Any]:
    """The subscription's current state, unprefixed (the mapping puts it on the person or an object).

    Besides the plan and its dates: what a retention or upsell segment asks (discount left,
    add-ons, metered usage, credit balances, whether a card is on file, a pending plan change,
    the churn reason). Lists are summarised to fit the 1000-byte profile value limit.
    """
    raw = sub.raw
    interval, count = f.interval(raw, "payment_frequency_interval", "payment_frequency_count")
    discounts = f.discounts(raw)
    first: dict[str, Any] = discounts[0] if discounts else {}
    cycles_key = "discounts" if "discounts" in raw else "discount_cycles_remaining"
    cycles = first.get("cycles_remaining") if "discounts" in raw else f.int_at(raw, "discount_cycles_remaining")
    addons = f.lines(raw, "addons", "addon_id")
    meter_names = (m["name"] for m in f.objects(raw, "meters", f.METER_FIELDS) if "name" in m)
    credits = f.objects(raw, "credit_entitlement_cart", f.CREDIT_FIELDS)
    change = f.dict_at(raw, "scheduled_change")
    return {
        "status": sub.status,
        "product_id": sub.product_id,
        **_state_money("recurring_amount", raw, "recurring_pre_tax_amount", "currency", exponents),
        **_state(
            raw,
            {
                "quantity": ("quantity", f.int_at(raw, "quantity")),
                "tax_inclusive": ("tax_inclusive", f.flag_at(raw, "tax_inclusive")),
                "billing_interval": ("payment_frequency_interval", interval),
                "billing_interval_count": ("payment_frequency_count", count),
                "next_billing_date": ("next_billing_date", f.time_at(raw, "next_billing_date")),
                "current_period_start": ("previous_billing_date", f.time_at(raw, "previous_billing_date")),
                "cancel_at_period_end": ("cancel_at_next_billing_date", f.flag_at(raw, "cancel_at_next_billing_date")),
                "cancelled_at": ("cancelled_at", f.time_at(raw, "cancelled_at")),
                "cancellation_feedback": ("cancellation_feedback", f.text_at(raw, "cancellation_feedback")),
                "expires_at": ("expires_at", f.time_at(raw, "expires_at")),
                "paused_at": ("paused_at", f.time_at(raw, "paused_at")),
                "past_due_ends_at": ("past_due_ends_at", f.time_at(raw, "past_due_ends_at")),
                "trial_period_days": ("trial_period_days", f.int_at(raw, "trial_period_days")),
                "started_at": ("created_at", f.time_at(raw, "created_at")),
                "has_payment_method": ("has_payment_method", f.flag_at(raw, "has_payment_method")),
                "billing_country": ("billing", f.billing_country(raw)),
                "customer_business_name": ("customer_business_name", f.text_at(raw, "customer_business_name")),
                "discount_code": ("discounts", first.get("code")),
                "discount_name": ("discounts", first.get("name")),
                "discount_cycles_remaining": (cycles_key, cycles),
                "addon_ids": ("addons", f.capped((a["addon_id"] for a in addons), f.PROFILE_VALUE_BYTES)),
                "addon_count": ("addons", f.quantity(addons)),
                "meter_names": ("meters", f.capped(meter_names, f.PROFILE_VALUE_BYTES)),
                "credit_balances": ("credit_entitlement_cart", f.capped(credits, f.PROFILE_VALUE_BYTES)),
                "credits_remaining": ("credit_entitlement_cart", _single_balance(credits)),
                "scheduled_product_id": ("scheduled_change", f.text_at(change, "product_id")),
                "scheduled_product_name": ("scheduled_change", f.text_at(change, "product_name")),
                "scheduled_change_at": ("scheduled_change", f.time_at(change, "effective_at")),
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
