"""The derived Track v2 schema accepts what Customer.io documents and rejects what it forbids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contract.derive_schema import KEEP, SCHEMA_LISTS
from support.track_ops import EVENT, TIMESTAMP, identify_op

SCHEMA_PATH = Path(__file__).with_name("track_v2.schema.json")
IDENTIFY = identify_op(
    {"email": "alice@example.com"},
    {"first_name": "Alice", "plan": "pro", "lifetime_value": 99.5, "_update": False},
    timestamp=TIMESTAMP,
)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def raw_validator(schema: dict[str, Any], entry: str) -> Draft202012Validator:
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{entry}"})


def without(op: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != key}


# --- the file itself -------------------------------------------------------------------------


def test_schema_file_is_self_contained_draft_2020_12(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "3662772b" in schema["$comment"]
    assert "derive_schema.py" in schema["$comment"]
    assert {"entity_request", "batch_request"} <= set(schema["$defs"])

    refs: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            extra = set(node) - KEEP
            assert not extra, f"{where}: unexpected keywords {sorted(extra)}"
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                elif key == "properties":
                    for name, sub in value.items():
                        walk(sub, f"{where}.properties.{name}")
                elif key in SCHEMA_LISTS:
                    for i, sub in enumerate(value):
                        walk(sub, f"{where}.{key}[{i}]")
                elif key in {"items", "additionalProperties"}:
                    walk(value, f"{where}.{key}")

    for name, node in schema["$defs"].items():
        walk(node, name)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_root_accepts_either_body(schema: dict[str, Any]) -> None:
    root = Draft202012Validator(schema)
    assert root.is_valid(EVENT)
    assert root.is_valid({"batch": [EVENT, IDENTIFY]})
    assert not root.is_valid({"type": "person"})


# --- structural checks straight from the schema ------------------------------------------------


@pytest.mark.parametrize("op", [EVENT, IDENTIFY], ids=["event", "identify"])
def test_valid_ops_pass_entity_and_batch(schema: dict[str, Any], op: dict[str, Any]) -> None:
    assert list(raw_validator(schema, "entity_request").iter_errors(op)) == []
    assert list(raw_validator(schema, "batch_request").iter_errors({"batch": [op]})) == []


@pytest.mark.parametrize(
    "op",
    [
        {**EVENT, "action": "payment_completed"},
        {**EVENT, "identifiers": {"id": "cus_1", "email": "alice@example.com"}},
        without(EVENT, "name"),
        without(EVENT, "identifiers"),
        {**EVENT, "type": "customer"},
        {**EVENT, "timestamp": "2023-11-14T22:13:20Z"},
        {**IDENTIFY, "attributes": "not-an-object"},
    ],
    ids=[
        "unknown-action",
        "two-identifiers",
        "event-without-name",
        "no-identifiers",
        "bad-type",
        "iso-ts",
        "attrs",
    ],
)
def test_invalid_ops_fail_entity_and_batch(schema: dict[str, Any], op: dict[str, Any]) -> None:
    assert not raw_validator(schema, "entity_request").is_valid(op)
    assert not raw_validator(schema, "batch_request").is_valid({"batch": [EVENT, op]})


def test_batch_envelope_is_required(schema: dict[str, Any]) -> None:
    batch = raw_validator(schema, "batch_request")
    assert not batch.is_valid({})
    assert not batch.is_valid({"batch": EVENT})
    assert batch.is_valid({"batch": []})


# --- the fixture: schema plus the limits it cannot express ------------------------------------


def test_fixture_accepts_documented_examples(track_v2_validator: Any) -> None:
    track_v2_validator.validate_entity(EVENT)
    track_v2_validator.validate_entity(IDENTIFY)
    track_v2_validator.validate_entity(json.dumps(EVENT).encode())
    track_v2_validator.validate_batch({"batch": [EVENT, IDENTIFY]})
    track_v2_validator.validate_request("https://track.customer.io/api/v2/batch", {"batch": [EVENT]})


@pytest.mark.parametrize(
    ("op", "field", "reason"),
    [
        ({**EVENT, "action": "payment_completed"}, "action", "invalid_value"),
        (
            {**EVENT, "identifiers": {"id": "cus_1", "email": "a@example.com"}},
            "identifiers",
            "invalid_identifiers",
        ),
        (
            {**EVENT, "identifiers": {"id": "cus_1", "anonymous_id": "x"}},
            "identifiers",
            "invalid_identifiers",
        ),
        (without(EVENT, "name"), "name", "required"),
        ({**EVENT, "name": "n" * 101}, "name", "too_long"),
        ({**EVENT, "identifiers": {"id": "i" * 151}}, "identifiers.id", "too_long"),
        ({**EVENT, "id": "evt_not_a_ulid"}, "id", "invalid_ulid"),
        ({**EVENT, "timestamp": 1700000000000}, "timestamp", "invalid_timestamp"),
        ({**EVENT, "timestamp": 1700000000.0}, "timestamp", "invalid_timestamp"),
        ({**IDENTIFY, "attributes": {"note": "x" * 1001}}, "attributes.note", "too_long"),
        ({**IDENTIFY, "attributes": {f"a{i}": i for i in range(301)}}, "attributes", "too_many_attributes"),
    ],
    ids=[
        "action",
        "two-identifiers",
        "undocumented-second-identifier",
        "missing-name",
        "long-name",
        "long-identifier",
        "ulid",
        "ms-timestamp",
        "float-timestamp",
        "long-attribute",
        "too-many-attributes",
    ],
)
def test_fixture_rejects_and_names_the_field(
    track_v2_validator: Any, op: dict[str, Any], field: str, reason: str
) -> None:
    errors = track_v2_validator.entity_errors(op)
    assert (field, reason) in {(e.field, e.reason) for e in errors}, errors
    with pytest.raises(AssertionError, match=field.split(".", maxsplit=1)[0]):
        track_v2_validator.validate_entity(op)


def test_event_attributes_are_not_held_to_person_attribute_limits(track_v2_validator: Any) -> None:
    track_v2_validator.validate_entity({**EVENT, "attributes": {"items": ["x" * 100] * 20}})


def test_fixture_reports_batch_index(track_v2_validator: Any) -> None:
    body = {"batch": [EVENT, without(EVENT, "name"), IDENTIFY, {**EVENT, "action": "track"}]}
    errors = track_v2_validator.batch_errors(body)
    assert {e.batch_index for e in errors} == {1, 3}
    with pytest.raises(AssertionError, match=r"\[batch 1\] name"):
        track_v2_validator.validate_batch(body)


def test_fixture_enforces_byte_limits(track_v2_validator: Any) -> None:
    big_event = {**EVENT, "attributes": {"blob": "x" * (32 * 1024)}}
    with pytest.raises(AssertionError, match="payload_too_large"):
        track_v2_validator.validate_entity(big_event)
    errors = track_v2_validator.batch_errors({"batch": [EVENT, big_event]})
    assert [(e.batch_index, e.reason) for e in errors] == [(1, "payload_too_large")]
    many = {"batch": [{**EVENT, "attributes": {"blob": "x" * 20_000}}] * 26}
    with pytest.raises(AssertionError, match="payload_too_large"):
        track_v2_validator.validate_batch(many)
