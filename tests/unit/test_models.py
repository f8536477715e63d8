"""Lenient Dodo payload models: what is required fails loudly and names the field, the rest passes."""

from __future__ import annotations

import copy
import json
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.receiving import events
from dodo_cio.receiving.models import (
    CustomerRef,
    Dispute,
    Envelope,
    LicenseKey,
    Payload,
    PayloadError,
    Payment,
    Payout,
    Refund,
    Subscription,
    parse_envelope,
    parse_json,
    parse_payload,
)
from support.mapped_events import customer_ref, unix
from support.samples import SAMPLES, load_sample

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))

EXPECTED_CLASS = {
    events.PAYMENT: Payment,
    events.SUBSCRIPTION: Subscription,
    events.REFUND: Refund,
    events.DISPUTE: Dispute,
    events.LICENSE_KEY: LicenseKey,
    events.CUSTOMER_REF: CustomerRef,
    events.PAYOUT: Payout,
}


def parse(doc: dict[str, Any]) -> Payload | None:
    return parse_payload(parse_envelope(parse_json(json.dumps(doc).encode())))


def json_error(raw: bytes) -> PayloadError:
    """The PayloadError parse_json raises for `raw`, checked to name the body as the bad field."""
    with pytest.raises(PayloadError) as info:
        parse_json(raw)
    assert info.value.field == "body"
    return info.value


def payload_error(doc: dict[str, Any]) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse(doc)
    return info.value


# -------------------------------------------------------------------------------------------------
# every sample parses


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_parses_into_its_family(path: Path) -> None:
    raw = path.read_bytes()
    doc = json.loads(raw)
    envelope = parse_envelope(parse_json(raw))
    assert isinstance(envelope, Envelope)
    # its type and times: test_mapping's per-sample test (the event name, op timestamp, event id time)
    assert envelope.business_id == doc["business_id"]
    assert envelope.data == doc["data"]
    payload = parse_payload(envelope)
    family = events.family(doc["type"])
    assert family is not None
    assert type(payload) is EXPECTED_CLASS[family]


# -------------------------------------------------------------------------------------------------
# the body and the envelope


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n\t"])
def test_empty_body(raw: bytes) -> None:
    assert "empty" in str(json_error(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"{'type': 'x'}",
        b"\xff\xfe{}",
        b'{"a": 1',
        b"nul",
        b"[" * 100_000 + b"]" * 100_000,  # too deep
        b'{"n": ' + b"9" * 5000 + b"}",  # Python refuses > 4300 digits (a ValueError, not a JSONDecodeError)
        *[
            b'{"type": "credit.added", "data": {"x": ' + constant + b"}}"
            for constant in (b"NaN", b"Infinity", b"-Infinity")
        ],
    ],
    ids=lambda raw: raw[-16:].decode("latin-1"),
)
def test_not_json(raw: bytes) -> None:
    assert "JSON" in json_error(raw).problem


@pytest.mark.parametrize("raw", [b"[]", b'[{"type": "payment.succeeded"}]', b'"payment.succeeded"', b"42", b"null"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    assert "object" in json_error(raw).problem


MISSING: Any = object()  # the key is taken out


def _with(doc: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    """A copy of `doc` with the key at `path` set to `value` (taken out when `value` is MISSING)."""
    out = copy.deepcopy(doc)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("type", MISSING, "required"),
        *[("type", value, None) for value in (42, ["payment.succeeded"], {"t": 1}, True)],
        *[("type", value, "empty") for value in ("", "   ")],
        ("data", MISSING, "required"),
        *[("data", value, "object") for value in ("{}", [], 1, True)],
        ("timestamp", MISSING, "required"),
        *[
            ("timestamp", value, "ISO-8601")
            for value in ("yesterday", "2026-13-01T00:00:00Z", "2026-10-14T25:00:00Z", "x" * 200)
        ],
        ("timestamp", {"at": 1}, None),
    ],
)
def test_a_bad_envelope_key_is_named(key: str, value: Any, problem: str | None) -> None:
    doc = load_sample("payment.succeeded.json")
    err = payload_error(_with(doc, value, key))
    assert err.field == f"body.{key}"
    if problem is not None:
        assert problem in err.problem


def test_timestamp_with_offset_is_converted_to_utc() -> None:
    doc = _with(load_sample("payment.succeeded.json"), "2026-10-14T11:21:47+02:00", "timestamp")
    envelope = parse_envelope(doc)
    assert envelope.timestamp == unix("2026-10-14T09:21:47Z")


def test_type_is_stripped_and_business_id_optional() -> None:
    doc = _with(load_sample("payment.succeeded.json"), " payment.succeeded ", "type")
    doc = _with(doc, 123, "business_id")  # wrong type for an optional field: treated as absent
    envelope = parse_envelope(doc)
    assert envelope.type == "payment.succeeded"
    assert envelope.business_id is None
    assert isinstance(parse_payload(envelope), Payment)


def test_error_message_names_the_field() -> None:
    err = payload_error(_with(load_sample("payment.succeeded.json"), MISSING, "data", "customer", "customer_id"))
    assert str(err).startswith("data.customer.customer_id: ")
    assert isinstance(err, ValueError)


# -------------------------------------------------------------------------------------------------
# required fields per family


PAYMENT = "payment.succeeded.json"
SUBSCRIPTION = "subscription.active.json"
REFUND = "refund.succeeded.json"
DISPUTE = "dispute.opened.json"
LICENSE = "license_key.created.json"


# The fields each family cannot do without, as dotted paths under "data".
REQUIRED_FIELDS = {
    PAYMENT: ("payment_id", "total_amount", "currency", "customer", "customer.customer_id"),
    SUBSCRIPTION: ("subscription_id", "status", "product_id", "customer", "customer.customer_id"),
    REFUND: ("refund_id", "payment_id", "customer", "customer.customer_id"),
    DISPUTE: ("dispute_id", "payment_id"),
    LICENSE: ("id", "customer_id"),
}


@pytest.mark.parametrize(("sample", "key"), [(sample, key) for sample, keys in REQUIRED_FIELDS.items() for key in keys])
@pytest.mark.parametrize("how", ["missing", "null"])
def test_required_field_missing(sample: str, key: str, how: str) -> None:
    doc, path = load_sample(sample), key.split(".")
    doc = _with(doc, MISSING if how == "missing" else None, "data", *path)
    err = payload_error(doc)
    assert err.field == f"data.{key}"
    assert "required" in err.problem


@pytest.mark.parametrize(
    ("sample", "path", "value", "field"),
    [
        (PAYMENT, ("payment_id",), 123, "data.payment_id"),
        (PAYMENT, ("payment_id",), "", "data.payment_id"),
        (PAYMENT, ("total_amount",), "4900", "data.total_amount"),
        (PAYMENT, ("total_amount",), True, "data.total_amount"),
        (PAYMENT, ("total_amount",), False, "data.total_amount"),
        (PAYMENT, ("total_amount",), 49.0, "data.total_amount"),
        (PAYMENT, ("currency",), 840, "data.currency"),
        (PAYMENT, ("currency",), " ", "data.currency"),
        (PAYMENT, ("customer",), "cus_2RfYk8HcWq5NzT1mLb9Xe", "data.customer"),
        (PAYMENT, ("customer", "customer_id"), 7, "data.customer.customer_id"),
        (SUBSCRIPTION, ("subscription_id",), ["sub"], "data.subscription_id"),
        (SUBSCRIPTION, ("status",), 1, "data.status"),
        (SUBSCRIPTION, ("product_id",), {"id": "pdt"}, "data.product_id"),
        (SUBSCRIPTION, ("customer",), 1, "data.customer"),
        (REFUND, ("refund_id",), 1, "data.refund_id"),
        (REFUND, ("payment_id",), False, "data.payment_id"),
        (REFUND, ("customer",), "x", "data.customer"),
        (DISPUTE, ("dispute_id",), 5, "data.dispute_id"),
        (DISPUTE, ("payment_id",), [], "data.payment_id"),
        (DISPUTE, ("customer",), "cus_x", "data.customer"),
        (DISPUTE, ("customer", "customer_id"), None, "data.customer.customer_id"),
        (LICENSE, ("id",), 9, "data.id"),
        (LICENSE, ("customer_id",), {"customer_id": "cus"}, "data.customer_id"),
    ],
)
def test_required_field_of_wrong_type(sample: str, path: tuple[str, ...], value: Any, field: str) -> None:
    err = payload_error(_with(load_sample(sample), value, "data", *path))
    assert err.field == field


# -------------------------------------------------------------------------------------------------
# CustomerRef: credit / dunning / abandoned checkout / entitlements


def test_customer_ref_top_level_wins_over_nested() -> None:
    ref = parse(customer_ref({"customer_id": "cus_TOP", "customer": {"customer_id": "cus_NESTED"}}))
    assert isinstance(ref, CustomerRef)
    assert ref.customer_id == "cus_TOP"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "data.customer_id"),
        ({"customer_id": None}, "data.customer_id"),
        ({"customer_id": 5}, "data.customer_id"),
        ({"customer_id": ""}, "data.customer_id"),
        ({"customer": {}}, "data.customer.customer_id"),
        ({"customer": {"customer_id": 5}}, "data.customer.customer_id"),
        ({"customer": "cus_A"}, "data.customer_id"),  # not an object: the top-level id is required
    ],
)
def test_customer_ref_errors(data: dict[str, Any], field: str) -> None:
    err = payload_error(customer_ref(data))
    assert err.field == field


# -------------------------------------------------------------------------------------------------
# leniency


def test_unknown_fields_pass() -> None:
    doc = load_sample(PAYMENT)
    doc["brand_new_envelope_field"] = {"x": 1}
    doc["data"]["brand_new_field"] = [1, 2, 3]
    doc["data"]["customer"]["loyalty_tier"] = "gold"
    payment = parse(doc)
    assert isinstance(payment, Payment)
    assert payment.raw["brand_new_field"] == [1, 2, 3]


def test_unknown_enum_values_pass() -> None:
    doc = load_sample(SUBSCRIPTION)
    doc["data"]["status"] = "hibernating"
    doc["data"]["payment_frequency_interval"] = "Fortnight"
    doc["data"]["currency"] = "XYZ"
    sub = parse(doc)
    assert isinstance(sub, Subscription)
    assert sub.status == "hibernating"
    pay = load_sample(PAYMENT)
    pay["data"]["status"] = "requires_interpretive_dance"
    pay["data"]["currency"] = "ZZZ"
    payment = parse(pay)
    assert isinstance(payment, Payment)
    assert payment.currency == "ZZZ"


@pytest.mark.parametrize("event_type", ["payment.teleported", "invoice.created", "Payment.Succeeded", "x"])
def test_unknown_type_gives_none_without_validating_data(event_type: str) -> None:
    envelope = parse_envelope({"type": event_type, "timestamp": "2026-10-14T09:21:47Z", "data": {}})
    assert envelope.type == event_type
    assert parse_payload(envelope) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4900", 4900),
        (" 4900 ", 4900),
        ("0", 0),
        ("-4900", -4900),
        (4900, 4900),
        ("abc", None),
        ("49.00", None),
        ("4,900", None),
        ("", None),
        ("-", None),
        ("--5", None),
        ("²", None),
        ("1e3", None),
        ("9" * 5000, None),  # too long for an amount, and for int() itself
        (None, None),
        (True, None),
        (49.5, None),
        ({"value": 4900}, None),
    ],
)
def test_dispute_amount(value: Any, expected: int | None) -> None:
    doc = _with(load_sample(DISPUTE), value, "data", "amount")
    dispute = parse(doc)
    assert isinstance(dispute, Dispute)
    assert dispute.amount == expected
    assert dispute.amount is None or type(dispute.amount) is int


@pytest.mark.parametrize(
    ("sample", "path", "value", "field", "expected"),
    [
        (DISPUTE, ("customer",), None, "customer", None),
        (DISPUTE, ("customer",), MISSING, "customer", None),
        *[(REFUND, ("amount",), value, "amount", None) for value in (None, "2450", 24.5, True)],
        (REFUND, ("currency",), None, "currency", None),
        (REFUND, ("currency",), ["USD"], "currency", None),
        (DISPUTE, ("currency",), 840, "currency", None),
        (PAYMENT, ("customer", "email"), 42, "customer.email", None),
        (PAYMENT, ("customer", "name"), ["Maya"], "customer.name", None),
        (PAYMENT, ("customer", "phone_number"), {"n": 1}, "customer.phone_number", None),
        (PAYMENT, ("customer", "metadata"), "not-an-object", "customer.metadata", {}),
    ],
)
def test_an_optional_field_absent_or_of_the_wrong_type_is_empty(
    sample: str, path: tuple[str, ...], value: Any, field: str, expected: Any
) -> None:
    doc = load_sample(sample)
    payload = parse(_with(doc, value, "data", *path))
    assert type(payload) is type(parse(doc))  # still parsed
    assert attrgetter(field)(payload) == expected


def test_customer_metadata_is_copied() -> None:
    doc = _with(load_sample(PAYMENT), {"plan": "pro"}, "data", "customer", "metadata")
    envelope = parse_envelope(doc)
    payment = parse_payload(envelope)
    assert isinstance(payment, Payment)
    assert payment.customer.metadata == {"plan": "pro"}
    payment.customer.metadata["plan"] = "changed"
    assert envelope.data["customer"]["metadata"] == {"plan": "pro"}


def test_lone_surrogates_are_replaced_so_the_text_can_be_sent() -> None:
    doc = parse_json(b'{"type": "payment.succeeded", "data": {"name": "ab\\ud83dcd", "ok": "\\ud83d\\ude80"}}')
    assert doc["data"]["name"] == "ab?cd"
    assert doc["data"]["ok"] == "\U0001f680"
    doc["data"]["name"].encode("utf-8")
