"""Lenient typed models of Dodo webhook bodies.

Only what the mapping needs is required; everything else is optional, unknown fields pass and
enum-like values stay plain strings, because Dodo adds fields and values every few months.
Plain dataclasses instead of Pydantic: they cost nothing at cold start and the rules are few.
A problem raises `PayloadError` naming the field (e.g. `data.customer.customer_id`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dodo_cio.platform.times import to_unix_ms, to_unix_seconds
from dodo_cio.receiving import events


class PayloadError(ValueError):
    """The body is not a usable Dodo webhook; `field` names the offending field."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "an array"}


def _req(data: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
    value = data.get(key)
    where = f"{path}.{key}"
    if value is None:
        raise PayloadError(where, "is required")
    if not _is(value, kind):
        raise PayloadError(where, f"must be {_TYPE_NAMES[kind]}")
    if kind is str and not value.strip():
        raise PayloadError(where, "must not be empty")
    return value


def _opt(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """An optional field of the wrong type is treated as absent: it is not worth a rejected event."""
    value = data.get(key)
    return value if value is not None and _is(value, kind) else None


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _opt_dict(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    email: str | None = None
    name: str | None = None
    phone_number: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sent: frozenset[str] = frozenset()  # the keys Dodo sent: an absent field is unknown, not cleared

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> Customer:
        return cls(
            customer_id=_req(data, "customer_id", str, path),
            email=_opt(data, "email", str),
            name=_opt(data, "name", str),
            phone_number=_opt(data, "phone_number", str),
            metadata=_opt_dict(data, "metadata"),
            sent=frozenset(str(k) for k in data),
        )


def _customer(data: Mapping[str, Any], *, required: bool) -> Customer | None:
    raw = data.get("customer")
    if raw is None:
        if required:
            raise PayloadError("data.customer", "is required")
        return None
    if not isinstance(raw, dict):
        raise PayloadError("data.customer", "must be an object")
    return Customer.parse(raw, "data.customer")


def _owner(data: Mapping[str, Any]) -> Customer:
    """The nested customer a payment, subscription or refund cannot do without."""
    customer = _customer(data, required=True)
    assert customer is not None
    return customer


def _required(data: Mapping[str, Any], *fields: tuple[str, type]) -> list[Any]:
    """The required top-level fields of `data`, in order; PayloadError names the first one missing."""
    return [_req(data, key, kind, "data") for key, kind in fields]


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment.* payload: what every payment event must carry; the rest is read from `raw`."""

    payment_id: str
    total_amount: int
    currency: str
    customer: Customer
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Payment:
        payment_id, total, currency = _required(data, ("payment_id", str), ("total_amount", int), ("currency", str))
        return cls(payment_id, total, currency, _owner(data), data)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription.* payload (see `parse_subscription`). `status` stays Dodo's own word (active,
    on_hold, ...), not an enum: Dodo adds statuses, and an unknown one must still reach Customer.io."""

    subscription_id: str
    status: str
    product_id: str
    customer: Customer
    raw: Mapping[str, Any]


def parse_subscription(data: Mapping[str, Any]) -> Subscription:
    fields = ("subscription_id", str), ("status", str), ("product_id", str)
    subscription_id, status, product_id = _required(data, *fields)
    return Subscription(subscription_id, status, product_id, _owner(data), data)


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    payment_id: str
    customer: Customer
    amount: int | None  # nullable in Dodo's schema
    currency: str | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Refund:
        refund_id, payment_id = _required(data, ("refund_id", str), ("payment_id", str))
        return cls(
            refund_id=refund_id,
            payment_id=payment_id,
            customer=_owner(data),
            amount=_opt(data, "amount", int),
            currency=_opt(data, "currency", str),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Dispute:
    dispute_id: str
    payment_id: str
    customer: Customer | None  # absent from Dodo's schema, present in its examples
    amount: int | None  # Dodo sends a string of minor units
    currency: str | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Dispute:
        raw_amount = data.get("amount")
        amount: int | None = None
        if _is(raw_amount, int):
            amount = raw_amount
        elif isinstance(raw_amount, str) and re.fullmatch(r"-?[0-9]{1,18}", raw_amount.strip()):
            amount = int(raw_amount.strip())
        dispute_id, payment_id = _required(data, ("dispute_id", str), ("payment_id", str))
        customer = _customer(data, required=False)
        return cls(dispute_id, payment_id, customer, amount, _opt(data, "currency", str), data)


@dataclass(frozen=True, slots=True)
class LicenseKey:
    license_key_id: str
    customer_id: str
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> LicenseKey:
        return cls(
            license_key_id=_req(data, "id", str, "data"),
            customer_id=_req(data, "customer_id", str, "data"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """Credit, dunning, abandoned-checkout and entitlement payloads: only a customer id is known."""

    customer_id: str
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CustomerRef:
        nested = data.get("customer")
        if data.get("customer_id") is None and isinstance(nested, dict):
            return cls(customer_id=_req(nested, "customer_id", str, "data.customer"), raw=data)
        return cls(customer_id=_req(data, "customer_id", str, "data"), raw=data)


@dataclass(frozen=True, slots=True)
class Payout:
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Payout:
        return cls(raw=data)


Payload = Payment | Subscription | Refund | Dispute | LicenseKey | CustomerRef | Payout

_PARSERS: dict[str, Any] = {
    events.PAYMENT: Payment.parse,
    events.SUBSCRIPTION: parse_subscription,
    events.REFUND: Refund.parse,
    events.DISPUTE: Dispute.parse,
    events.LICENSE_KEY: LicenseKey.parse,
    events.CUSTOMER_REF: CustomerRef.parse,
    events.PAYOUT: Payout.parse,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """The outer body every Dodo webhook shares; `data` stays a plain mapping until typed."""

    type: str
    timestamp: int  # Unix seconds: when the event happened (not the delivery attempt)
    timestamp_ms: int
    data: Mapping[str, Any]
    business_id: str | None


@dataclass(frozen=True, slots=True)
class DodoEvent:
    """A verified, validated webhook of a known type."""

    webhook_id: str
    envelope: Envelope
    payload: Payload

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def data(self) -> Mapping[str, Any]:
        return self.envelope.data


def parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise PayloadError("body", "is empty")
    try:
        doc = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # ValueError also covers ints over 4300 digits
        raise PayloadError("body", f"is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise PayloadError("body", "must be a JSON object")
    if b"\\u" in body and _has_lone_surrogate(doc):
        cleaned: dict[str, Any] = _replace_lone_surrogates(doc)
        return cleaned
    return doc


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; passing them on would make Customer.io reject the request."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """`1e400` is JSON syntax but reads as inf, which would reach Customer.io as `Infinity`."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):  # scanned in C: a Python loop over the characters cost more than the parse
        return not value.isascii() and _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _replace_lone_surrogates(value: Any) -> Any:
    """An escaped half of a surrogate pair cannot be encoded as UTF-8: keep the text, mark the gap."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    return value


def parse_envelope(doc: Mapping[str, Any]) -> Envelope:
    event_type = _req(doc, "type", str, "body")
    data = _req(doc, "data", dict, "body")
    raw_ts = _req(doc, "timestamp", str, "body")
    ts = to_unix_seconds(raw_ts)
    ts_ms = to_unix_ms(raw_ts)
    # Past 1e11 s (the year 5138) Customer.io reads a timestamp as milliseconds and rejects the op.
    if ts is None or ts_ms is None or ts >= 10**11:
        raise PayloadError("body.timestamp", "must be an ISO-8601 date-time")
    return Envelope(
        type=event_type.strip(),
        timestamp=ts,
        timestamp_ms=ts_ms,
        data=data,
        business_id=_opt(doc, "business_id", str),
    )


def parse_payload(envelope: Envelope) -> Payload | None:
    """Typed payload for a known type, or None when Dodo sent a type this version does not know."""
    fam = events.family(envelope.type)
    if fam is None:
        return None
    payload: Payload = _PARSERS[fam](envelope.data)
    return payload
