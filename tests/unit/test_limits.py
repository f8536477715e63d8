"""Customer.io Track limits: what does not fit is truncated, trimmed or dropped, with a warning each time.

The limits are restated here on purpose (from Customer.io's Track v2 documentation) rather than
imported, so a wrong constant in limits.py fails these tests. Profile data (identify, for a person
or an object) has per-attribute limits; event data has only the op's 32 KB.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dodo_cio.mapping.limits import (
    FitResult,
    encoded_size,
    fit_op,
    is_identity_value,
    surely_fits,
    truncate_utf8,
    wire_size,
)
from support.mapped_events import json_len

EVENT_NAME_BYTES = 100
ATTRIBUTE_NAME_BYTES = 150
ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
IDENTIFIER_BYTES = 150
OP_BYTES = 32 * 1024
ELLIPSIS = "…"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def make_op(attributes: dict[str, Any] | None = None, name: str = "payment.succeeded", **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "type": "person",
        "identifiers": {"id": "cus_2RfYk8HcWq5NzT1mLb9Xe"},
        "action": "event",
        "name": name,
        "id": "01JB8Z6Q2W3E4R5T6Y7V8X9M0P",
        "timestamp": 1792055307,
        "attributes": {} if attributes is None else attributes,
    }
    op.update(extra)
    return op


def make_identify(attributes: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The event op above as an identify: no name, no id."""
    op = make_op(attributes, action="identify", **extra)
    del op["name"], op["id"]
    return op


def wire(op: dict[str, Any]) -> dict[str, Any]:
    """The op as sent: the bridge's own `_` keys are stripped before sending."""
    return {k: v for k, v in op.items() if not k.startswith("_")}


def make_object(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "identifiers": {"object_type_id": "1", "object_id": "sub_6HkWz3RqLb9XmT2vNc5Yd"},
        "action": "identify",
        "attributes": attributes,
        "cio_relationships": [{"identifiers": {"id": "cus_4PwLx9QmTz2NbK6cYr8Vd"}}],
        "_state": "subscription:sub_6HkWz3RqLb9XmT2vNc5Yd",
        "_customer_id": "cus_4PwLx9QmTz2NbK6cYr8Vd",
    }


def fit(op: dict[str, Any]) -> FitResult:
    before = copy.deepcopy(op)
    result = fit_op(op)
    assert op == before, "fit_op mutated its input"
    return result


def assert_within_limits(op: dict[str, Any]) -> None:
    name = op.get("name")
    if isinstance(name, str):
        assert utf8_len(name) <= EVENT_NAME_BYTES
    for value in op.get("identifiers", {}).values():
        assert utf8_len(str(value)) <= IDENTIFIER_BYTES
    attrs = op.get("attributes", {})
    if op.get("action") == "identify":
        assert len(attrs) <= MAX_ATTRIBUTES
        for key, value in attrs.items():
            assert utf8_len(key) <= ATTRIBUTE_NAME_BYTES
            assert json_len(value) <= ATTRIBUTE_VALUE_BYTES, (key, json_len(value))
    assert json_len(wire(op)) < OP_BYTES


# -------------------------------------------------------------------------------------------------
# helpers


def test_encoded_size_is_utf8_compact_json() -> None:
    value = {"a": ["é", 1], "b": '"'}
    assert encoded_size(value) == len('{"a":["é",1],"b":"\\""}'.encode())
    assert encoded_size("😀") == 6  # 2 quotes + 4 bytes, not the 14 of \ud83d\ude00


@pytest.mark.parametrize(
    ("text", "limit", "marker", "expected"),
    [
        ("hello", 10, "", "hello"),
        ("hello", 5, "", "hello"),
        ("hello", 4, "", "hell"),
        ("éé", 3, "", "é"),  # never half a character
        ("💳💳", 7, "", "💳"),
        ("💳", 3, "", ""),
        ("abcdefghij", 6, ELLIPSIS, "abc" + ELLIPSIS),  # 6 bytes with the marker
        ("abc", 6, ELLIPSIS, "abc"),
    ],
)
def test_truncate_utf8(text: str, limit: int, marker: str, expected: str) -> None:
    assert truncate_utf8(text, limit, marker) == expected


# -------------------------------------------------------------------------------------------------
# an op within every limit is left alone; event data (event, page, screen) has only the op's 32 KB


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(
            make_op({"amount": 49.0, "tags": ["a", "b"], "note": "x" * 998, "ok": True, "n": None}), id="valid"
        ),
        pytest.param(make_op(name="é" * 50), id="event-name-of-exactly-100-bytes"),
        pytest.param(make_identify({"note": "x" * 998}), id="value-of-exactly-1000-bytes-as-json"),  # quotes included
        pytest.param(make_op({"a": 1}, identifiers={"id": "c" * 150}), id="identifier-of-exactly-150-bytes"),
        pytest.param(make_identify({"email": "a@example.com"}), id="identify-without-name"),
        pytest.param(make_object({"status": "active", "recurring_amount": 15, "addon_ids": ["adn_1"]}), id="object"),
        pytest.param(make_op({"metadata": {f"key_{i}": "v" * 90 for i in range(20)}}), id="event-metadata-of-2kb"),
        pytest.param(make_op({"note": "x" * 3000}, action="page"), id="page"),
        pytest.param(make_op({"note": "x" * 3000}, action="screen"), id="screen"),
        pytest.param(
            make_op(
                {
                    "n" * 200: 1,  # a name over 150 bytes
                    "note": "x" * 5000,
                    "email_text": "a" * 1200 + "@example.com",
                    "cart": list(range(400)),
                    **{f"a{i:03d}": i for i in range(350)},  # more than 300 attributes
                }
            ),
            id="event-without-per-attribute-limits",
        ),
    ],
)
def test_an_op_within_every_limit_is_left_alone(op: dict[str, Any]) -> None:
    assert json_len(op) < OP_BYTES
    result = fit(op)
    assert result.op == op
    assert result.warnings == []
    assert result.unfixable is None


def test_result_is_a_copy() -> None:
    op = make_op({"a": 1})
    result = fit(op)
    result.op["attributes"]["b"] = 2
    result.op["name"] = "changed"
    assert op["attributes"] == {"a": 1}
    assert op["name"] == "payment.succeeded"


# -------------------------------------------------------------------------------------------------
# event name


@pytest.mark.parametrize(
    "name",
    [
        "a" * 101,
        "é" * 51,  # 102 bytes, 2-byte characters
        "a" + "💳" * 30,  # 1 + 120 bytes: the cut falls inside an emoji
        "支払い" * 12,  # 108 bytes, 3-byte characters; 100 is not a multiple of 3
    ],
)
def test_long_event_name_truncated_on_a_character_boundary(name: str) -> None:
    result = fit(make_op({"note": "x" * 3000}, name=name))
    assert result.op["attributes"] == {"note": "x" * 3000}  # an event's data has no per-attribute limits
    out = result.op["name"]
    assert utf8_len(out) <= EVENT_NAME_BYTES
    assert name.startswith(out)
    # as long as possible: one more character would not fit
    assert utf8_len(name[: len(out) + 1]) > EVENT_NAME_BYTES
    assert len(result.warnings) == 1
    assert "name" in result.warnings[0]
    assert result.unfixable is None


# -------------------------------------------------------------------------------------------------
# attribute names and values


def test_long_attribute_name_dropped() -> None:
    too_long = "ключ" * 19  # 152 bytes in 76 characters
    exact = "k" * 150
    result = fit(make_identify({too_long: 1, exact: 2, "short": 3}))
    assert result.op["attributes"] == {exact: 2, "short": 3}
    assert len(result.warnings) == 1
    assert "150" in result.warnings[0]


@pytest.mark.parametrize(
    "value",
    [
        "x" * 5000,
        "x" * 999,  # 1001 bytes once quoted
        '"' * 2000,  # every quote doubles when escaped
        "\n" * 2000,
        'say "hi"\n' * 300,
        "\\" * 700,  # 700 raw bytes, 1402 escaped
        "😀" * 400,
        "a😀" * 300,
        "\x01" * 500,  # escaped as \u0001: 6 bytes each
        "é" * 600,
        "\u2028" * 400,
        "Write to help@example.com for a refund. " * 40,  # text that only mentions an email
    ],
)
def test_long_string_value_truncated_to_fit_as_json(value: str) -> None:
    assert json_len(value) > ATTRIBUTE_VALUE_BYTES  # the case is really over the limit
    result = fit(make_identify({"note": value, "other": "kept"}))
    out = result.op["attributes"]["note"]
    assert isinstance(out, str)
    assert json_len(out) <= ATTRIBUTE_VALUE_BYTES
    assert out.endswith(ELLIPSIS)
    assert value.startswith(out[: -len(ELLIPSIS)])
    assert json_len(out) >= 0.8 * ATTRIBUTE_VALUE_BYTES, "truncated far more than needed"
    assert result.op["attributes"]["other"] == "kept"
    assert len(result.warnings) == 1
    assert "note" in result.warnings[0]


def test_more_than_300_attributes() -> None:
    attrs = {f"attr_{i:03d}": i for i in range(350)}
    result = fit(make_identify(attrs))
    kept = result.op["attributes"]
    assert len(kept) == MAX_ATTRIBUTES
    assert kept == {f"attr_{i:03d}": i for i in range(300)}  # the first 300, in order
    assert any("300" in w for w in result.warnings)


def test_dropped_attributes_do_not_count_towards_300() -> None:
    attrs = {"k" * 200: 0, "big": list(range(500)), **{f"a{i}": i for i in range(300)}}
    result = fit(make_identify(attrs))
    assert result.op["attributes"] == {f"a{i}": i for i in range(300)}
    assert len(result.warnings) == 2


def test_op_over_32kb_drops_largest_attributes_first() -> None:
    # 60 strings of 300..890 bytes: ~35 KB in all, each one valid on its own
    attrs = {f"a{i:02d}": "v" * (300 + 10 * i) for i in range(60)}
    op = make_op(attrs)
    assert json_len(op) > OP_BYTES
    result = fit(op)
    out = result.op
    assert json_len(out) <= OP_BYTES
    kept = out["attributes"]
    dropped = [k for k in attrs if k not in kept]
    assert dropped, "something had to go"
    assert all(kept[k] == attrs[k] for k in kept)  # the rest untouched
    assert min(len(attrs[k]) for k in dropped) >= max(len(v) for v in kept.values())
    # no more than needed: putting back the smallest dropped one breaks the limit again
    smallest = min(dropped, key=lambda k: len(attrs[k]))
    assert json_len({**out, "attributes": {**kept, smallest: attrs[smallest]}}) > OP_BYTES
    assert len(result.warnings) == len(dropped)
    assert all("32768" in w for w in result.warnings)
    assert result.unfixable is None


def test_op_over_32kb_after_value_truncation() -> None:
    # 40 values truncated to ~1000 bytes each is still ~40 KB
    attrs = {f"a{i:02d}": "é" * 900 for i in range(40)}
    result = fit(make_identify(attrs))
    assert_within_limits(result.op)
    assert len(result.op["attributes"]) < 40
    assert result.unfixable is None


# -------------------------------------------------------------------------------------------------
# identify: lists, objects and identity values are dropped, never truncated


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("big", ["x" * 100] * 10),  # a list or an object is dropped whole...
        ("big", list(range(400))),
        ("big", {"k": "v" * 1000}),  # ...an object when none of its keys fits
        ("big", {"nested": [{"a": "b" * 60}] * 20}),
        ("email", "a" * 1000 + "@example.com"),  # an identity value is dropped, never truncated
        ("billing_email", "b" * 1000 + "@example.com"),
        ("contact", "c" * 995 + "@example.com"),  # any value that is an email address
        ("id", "x" * 1200),
        ("dodo_customer_id", "cus_" + "x" * 1000),
        ("phone", "+1" + "5" * 1000),
    ],
)
def test_value_over_the_limit_that_cannot_be_cut_is_dropped(name: str, value: Any) -> None:
    assert json_len(value) > ATTRIBUTE_VALUE_BYTES
    result = fit(make_identify({name: value, "small": ["a", "b"]}))
    assert result.op["attributes"] == {"small": ["a", "b"]}
    assert len(result.warnings) == 1
    assert repr(name) in result.warnings[0]
    assert "dropped" in result.warnings[0]
    assert result.unfixable is None


@pytest.mark.parametrize(
    ("name", "value", "identity"),
    [
        ("email", "maya@example.com", True),
        ("secondary_email", "x", True),
        ("subscription_id", "sub_1", True),
        ("id", "42", True),
        ("cio_id", "a1", True),
        ("note", " maya@example.com ", True),
        ("note", "usr_42", True),  # equal to one of the op's identifiers
        ("note", "maya at example.com", False),
        ("note", "mail maya@example.com", False),
        ("note", "a@b@c", False),
        ("valid", "true", False),
        ("note", "cus_1", False),
    ],
)
def test_is_identity_value(name: str, value: str, identity: bool) -> None:
    assert is_identity_value(name, value, frozenset({"usr_42"})) is identity


# -------------------------------------------------------------------------------------------------
# identify: an object value is trimmed key by key


def test_metadata_over_the_limit_loses_its_largest_keys_only() -> None:
    metadata = {"plan": "pro", "a": "x" * 520, "b": "y" * 510, "c": "z" * 500, "tier": 2}
    assert json_len(metadata) > ATTRIBUTE_VALUE_BYTES
    result = fit(make_identify({"metadata": metadata, "name": "Maya"}))
    kept = result.op["attributes"]["metadata"]
    assert kept == {"plan": "pro", "c": "z" * 500, "tier": 2}  # a and b went, largest first
    assert json_len(kept) <= ATTRIBUTE_VALUE_BYTES
    assert result.op["attributes"]["name"] == "Maya"
    assert len(result.warnings) == 1
    assert "metadata" in result.warnings[0]
    assert "'a'" in result.warnings[0] and "'b'" in result.warnings[0]


def test_metadata_trimming_stops_as_soon_as_it_fits() -> None:
    metadata = {f"k{i}": "v" * (100 + i) for i in range(9)}  # 1009 bytes: one key too many
    assert json_len(metadata) > ATTRIBUTE_VALUE_BYTES
    assert json_len({k: v for k, v in metadata.items() if k != "k0"}) <= ATTRIBUTE_VALUE_BYTES
    kept = fit(make_identify({"metadata": metadata})).op["attributes"]["metadata"]
    assert kept == {k: v for k, v in metadata.items() if k != "k8"}  # the largest, and only it


# -------------------------------------------------------------------------------------------------
# the bridge's own notes, and object ops


def test_underscore_keys_pass_through_and_do_not_count() -> None:
    notes = {"_customer_id": "cus_2RfYk8HcWq5NzT1mLb9Xe", "_state": "customer", "_note": "n" * 3000}
    op = make_op({"note": "x" * 100}, **notes)
    filler = OP_BYTES - 1 - json_len(wire(op)) + json_len("x" * 100)
    op["attributes"]["note"] = "x" * (filler - 2)
    assert json_len(wire(op)) == OP_BYTES - 1  # just fits as sent...
    assert json_len(op) > OP_BYTES  # ...though not with the notes
    result = fit(op)
    assert result.op == op
    assert result.warnings == []
    assert wire_size(op) == OP_BYTES - 1


def test_object_attributes_get_the_identify_limits_and_nothing_else_changes() -> None:
    op = make_object({"note": "x" * 2000, "list": list(range(500)), "status": "active"})
    result = fit(op)
    assert result.op["attributes"]["status"] == "active"
    assert result.op["attributes"]["note"].endswith(ELLIPSIS)
    assert "list" not in result.op["attributes"]
    assert {k: v for k, v in result.op.items() if k != "attributes"} == {
        k: v for k, v in op.items() if k != "attributes"
    }


# -------------------------------------------------------------------------------------------------
# what cannot be fixed


@pytest.mark.parametrize(
    "identifiers",
    [{"id": "c" * 151}, {"email": "ü" * 70 + "@example.com"}, {"id": "💳" * 38}],
)
def test_identifier_over_150_bytes_is_unfixable(identifiers: dict[str, str]) -> None:
    result = fit(make_op({"a": 1}, identifiers=identifiers))
    assert result.unfixable is not None
    assert "identifier" in result.unfixable
    assert next(iter(identifiers)) in result.unfixable


def test_op_too_big_outside_attributes_is_unfixable() -> None:
    op = make_op({"a": "b"}, cio_relationships=[{"identifiers": {"object_id": "x" * 100}}] * 400)
    result = fit(op)
    assert result.unfixable is not None
    assert "32768" in result.unfixable


# -------------------------------------------------------------------------------------------------
# property: whatever goes in, what comes out respects every limit

scalars = st.one_of(
    st.text(max_size=1200),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(st.one_of(st.text(max_size=60), st.integers()), max_size=40),
    st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=300), st.integers()), max_size=12),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(
    attributes=st.dictionaries(st.text(max_size=80), values, max_size=60),
    name=st.text(max_size=60),
    identifier=st.text(min_size=1, max_size=60),
    identify=st.booleans(),
)
def test_fitted_op_always_within_limits(attributes: dict[str, Any], name: str, identifier: str, identify: bool) -> None:
    if identify:
        op = make_identify(attributes, identifiers={"id": identifier})
    else:
        op = make_op(attributes, name=name, identifiers={"id": identifier})
    result = fit(op)
    if result.unfixable is not None:
        assert utf8_len(identifier) > IDENTIFIER_BYTES
        return
    assert utf8_len(identifier) <= IDENTIFIER_BYTES
    out = result.op
    assert_within_limits(out)
    # nothing invented: each kept attribute is the original or a truncated prefix of it
    for key, value in out["attributes"].items():
        original = attributes[key]
        if value != original:
            assert identify
            if isinstance(original, dict):  # trimmed: some of its keys, unchanged
                assert value.items() <= original.items()
                continue
            assert isinstance(original, str)
            assert value.endswith(ELLIPSIS)
            assert original.startswith(value[: -len(ELLIPSIS)])
    if not identify:
        assert name.startswith(out["name"])
    # a change always comes with a warning, and an op that already fits is left as it is
    if out != op:
        assert result.warnings
    if result.warnings == []:
        assert out == op
    again = fit_op(out)
    assert again.op == out
    assert again.warnings == []


# -- the shortcut that spares encoding most values ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        *[(value, True) for value in ("\x01" * 166, "\U0010ffff" * 166, '"' * 166, True, None)],
        *[(value, True) for value in (10**100 - 1, -(10**100) + 1, -1.7976931348623157e308)],
        *[(value, False) for value in ("\x01" * 167, 10**100, {"a": 1}, ["x"])],  # measured instead
    ],
)
def test_what_is_said_to_fit_surely_fits_and_anything_else_is_measured(value: Any, fits: bool) -> None:
    assert surely_fits(value) is fits
    if fits:
        assert encoded_size(value) <= ATTRIBUTE_VALUE_BYTES
