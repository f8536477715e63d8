"""Reading a Dodo payload's fields leniently, for the profile (`dodo_cio.mapping.profile`) and event
(`dodo_cio.mapping.attributes`) attributes: a field of the wrong type reads as absent, never as an error.

Money goes out as four attributes per amount (`money`), named after what the amount is: `<prefix>`
in major units (`49`, `19.99`), `<prefix>_minor`, `<prefix>_currency` and `<prefix>_display`
(`$49.00`). Dates are Unix seconds. Nested lists go out as short lists of small objects, cut to
what fits (`capped`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from dodo_cio.mapping.limits import MAX_ATTRIBUTE_VALUE_BYTES, encoded_size
from dodo_cio.mapping.money import decimal_number, format_amount, json_number, to_major
from dodo_cio.platform.secret_names import is_secret_key
from dodo_cio.platform.times import to_unix_seconds

# A list is cut to what fits: Customer.io's per-value limit on a profile; on an event (no such
# limit) a cap all the same, so one long cart cannot push the rest out of the 32 KB op.
PROFILE_VALUE_BYTES: Final = MAX_ATTRIBUTE_VALUE_BYTES
EVENT_LIST_BYTES: Final = 4096

Reader = Callable[[Mapping[str, Any], str], Any]


def compact(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None: Customer.io would store an empty attribute, which only clutters profiles."""
    return {k: v for k, v in attrs.items() if v is not None}


def is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def safe_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The scalar entries of a metadata object whose names are not secrets; None when none are left."""
    if not metadata:
        return None
    cleaned = {str(k): v for k, v in metadata.items() if not is_secret_key(k) and is_scalar(v)}
    return cleaned or None


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> object:
    """A decimal string (`"1000"`, `"12.5"`) as a number; any other value as it came."""
    parsed = decimal_number(value)
    return value if parsed is None else parsed


def text_at(raw: Mapping[str, Any], key: str) -> str | None:
    return text(raw.get(key))


def lower_at(raw: Mapping[str, Any], key: str) -> str | None:
    value = text_at(raw, key)
    return value.lower() if value else None


def int_at(raw: Mapping[str, Any], key: str) -> int | None:
    return whole(raw.get(key))


def flag_at(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    return value if isinstance(value, bool) else None


def time_at(raw: Mapping[str, Any], key: str) -> int | None:
    return to_unix_seconds(raw.get(key))


def dict_at(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def items_at(raw: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects of a list field; anything else in it is skipped, not fatal."""
    value = raw.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def read(raw: Mapping[str, Any], fields: Mapping[str, Reader]) -> dict[str, Any]:
    """Each field named in `fields` (attribute name = payload key), read by its reader."""
    return {key: reader(raw, key) for key, reader in fields.items()}


def capped(items: Iterable[Any], budget: int) -> list[Any] | None:
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


def interval(raw: Mapping[str, Any], interval_key: str, count_key: str) -> tuple[str | None, int | None]:
    unit = text_at(raw, interval_key)
    return (unit.lower() if unit else None), int_at(raw, count_key)


def discounts(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stacked discounts in stack order, each as what a template shows: code, name, percent off.

    Dodo gives `amount` in basis points; only a percentage discount has a clear meaning for it, so
    a flat discount goes out without an amount rather than with a guessed unit.
    """
    ordered = sorted(items_at(raw, "discounts"), key=lambda d: int_at(d, "position") or 0)
    out: list[dict[str, Any]] = []
    for d in ordered:
        points = int_at(d, "amount")
        percent = json_number(Decimal(points) / 100) if points is not None and d.get("type") == "percentage" else None
        entry = compact(
            {
                "code": text_at(d, "code"),
                "name": text_at(d, "name"),
                "type": text_at(d, "type"),
                "percent_off": percent,
                "cycles_remaining": int_at(d, "cycles_remaining"),
            }
        )
        if entry:
            out.append(entry)
    return out


def lines(raw: Mapping[str, Any], key: str, id_key: str) -> list[dict[str, Any]]:
    """Add-ons and cart lines: `[{"addon_id": "adn_1", "quantity": 2}]`."""
    return [
        {id_key: i[id_key], "quantity": int_at(i, "quantity") or 1}
        for i in items_at(raw, key)
        if isinstance(i.get(id_key), str)
    ]


def quantity(items: list[dict[str, Any]]) -> int:
    return sum(int(item["quantity"]) for item in items)


Converter = Callable[[object], Any]


def objects(
    raw: Mapping[str, Any], key: str, fields: Mapping[str, Converter | tuple[str, Converter]]
) -> list[dict[str, Any]]:
    """Each object of a list field reduced to `fields`: output name -> converter of the key of that
    name, or (source key, converter) when Dodo names it otherwise."""
    pairs = [(name, spec if isinstance(spec, tuple) else (name, spec)) for name, spec in fields.items()]
    return [compact({name: conv(item.get(src)) for name, (src, conv) in pairs}) for item in items_at(raw, key)]


METER_FIELDS: Final[Mapping[str, Converter | tuple[str, Converter]]] = {
    "meter_id": text,
    "name": text,
    "unit": ("measurement_unit", text),
    "free_threshold": whole,
    "price_per_unit": number,
}
# Balances as numbers: Dodo sends them as decimal strings.
CREDIT_FIELDS: Final[Mapping[str, Converter | tuple[str, Converter]]] = {
    "credit_entitlement_id": text,
    "name": ("credit_entitlement_name", text),
    "unit": text,
    "remaining_balance": number,
    "overage_balance": number,
}


def custom_fields(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """Checkout answers as `{key: value}`, so a template reads `event.custom_fields.company_size`
    instead of looping over a list of pairs. A key that names a secret is left out."""
    out = {
        r["key"]: r.get("value")
        for r in items_at(raw, "custom_field_responses")
        if isinstance(r.get("key"), str) and r["key"] and not is_secret_key(r["key"]) and is_scalar(r.get("value"))
    }
    return out or None


def billing_country(raw: Mapping[str, Any]) -> str | None:
    country = text_at(dict_at(raw, "billing"), "country")
    return country.upper() if country else None
