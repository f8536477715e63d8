"""The derived Track v2 schema accepts what Customer.io documents and rejects what it forbids."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contract.derive_schema import KEEP, SCHEMA_LISTS
from dodo_cio_local.sandbox import TrackV2ValidationError
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


def with_ids(**more: str) -> dict[str, Any]:
    """The event addressed by its customer id and one more identifier."""
    return {**EVENT, "identifiers": {"id": "cus_1", **more}}


# --- the file itself -------------------------------------------------------------------------


def test_schema_file_is_self_contained_draft_2020_12(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "3662772b" in schema["$comment"]
    assert "derive_schema.py" in schema["$comment"]
    assert {"entity_request", "batch_request"} <= set(schema["$defs"])

    def keywords(node: Any) -> Iterator[str]:
        """A schema node's keywords and its subschemas' (a property's name is not a keyword)."""
        if isinstance(node, dict):
            yield from node
            subschemas = [*node.get("properties", {}).values(), *(s for key in SCHEMA_LISTS for s in node.get(key, []))]
            for sub in [*subschemas, *(node[key] for key in ("items", "additionalProperties") if key in node)]:
                yield from keywords(sub)

    assert {key for node in schema["$defs"].values() for key in keywords(node)} <= KEEP
    refs = re.findall(r'"\$ref": "([^"]*)"', SCHEMA_PATH.read_text(encoding="utf-8"))
    assert refs and {ref.removeprefix("#/$defs/") for ref in refs} <= set(schema["$defs"])


def test_root_accepts_either_body_and_a_batch_needs_its_array(schema: dict[str, Any]) -> None:
    root, batch = Draft202012Validator(schema), raw_validator(schema, "batch_request")
    assert root.is_valid(EVENT)
    assert root.is_valid({"batch": [EVENT, IDENTIFY]})
    assert not root.is_valid({"type": "person"})
    assert not batch.is_valid({})
    assert not batch.is_valid({"batch": EVENT})
    assert batch.is_valid({"batch": []})


# --- what the schema and the validator (schema plus the limits it cannot express) accept -----------


@pytest.mark.parametrize("op", [EVENT, IDENTIFY], ids=["event", "identify"])
def test_valid_ops_pass_entity_and_batch(schema: dict[str, Any], track_v2_validator: Any, op: dict[str, Any]) -> None:
    assert list(raw_validator(schema, "entity_request").iter_errors(op)) == []
    assert list(raw_validator(schema, "batch_request").iter_errors({"batch": [op]})) == []
    track_v2_validator.validate_entity(op)
    track_v2_validator.validate_batch({"batch": [EVENT, op]})


@pytest.mark.parametrize(
    ("op", "field", "reason", "schema_rejects"),
    [
        pytest.param({**EVENT, "action": "payment_completed"}, "action", "invalid_value", True, id="action"),
        pytest.param(with_ids(email="a@example.com"), "identifiers", "invalid_identifiers", True, id="two-identifiers"),
        pytest.param(without(EVENT, "name"), "name", "required", True, id="missing-name"),
        pytest.param(without(EVENT, "identifiers"), "identifiers", "required", True, id="no-identifiers"),
        pytest.param({**EVENT, "type": "customer"}, "type", "invalid_value", True, id="bad-type"),
        pytest.param({**EVENT, "timestamp": "2023-11-14T22:13:20Z"}, "timestamp", "invalid_type", True, id="iso-ts"),
        pytest.param({**IDENTIFY, "attributes": "not-an-object"}, "attributes", "invalid_type", True, id="attrs"),
        # The rest only the validator refuses.
        pytest.param(
            with_ids(anonymous_id="x"), "identifiers", "invalid_identifiers", False, id="undocumented-second-identifier"
        ),
        pytest.param({**EVENT, "name": "n" * 101}, "name", "too_long", False, id="long-name"),
        pytest.param({**EVENT, "identifiers": {"id": "i" * 151}}, "identifiers.id", "too_long", False, id="long-id"),
        pytest.param({**EVENT, "id": "evt_not_a_ulid"}, "id", "invalid_ulid", False, id="ulid"),
        pytest.param({**EVENT, "timestamp": 1700000000000}, "timestamp", "invalid_timestamp", False, id="ms-ts"),
        pytest.param({**EVENT, "timestamp": 1700000000.0}, "timestamp", "invalid_timestamp", False, id="float-ts"),
        pytest.param(
            {**IDENTIFY, "attributes": {"note": "x" * 1001}}, "attributes.note", "too_long", False, id="long-attribute"
        ),
        pytest.param(
            {**IDENTIFY, "attributes": {f"a{i}": i for i in range(301)}},
            "attributes",
            "too_many_attributes",
            False,
            id="too-many-attributes",
        ),
    ],
)
def test_invalid_ops_are_refused_naming_the_field(
    schema: dict[str, Any], track_v2_validator: Any, op: dict[str, Any], field: str, reason: str, schema_rejects: bool
) -> None:
    if schema_rejects:
        assert not raw_validator(schema, "entity_request").is_valid(op)
        assert not raw_validator(schema, "batch_request").is_valid({"batch": [EVENT, op]})
    errors = track_v2_validator.entity_errors(op)
    assert (field, reason) in {(e.field, e.reason) for e in errors}, errors
    with pytest.raises(TrackV2ValidationError, match=field.split(".", maxsplit=1)[0]):
        track_v2_validator.validate_entity(op)
    with pytest.raises(TrackV2ValidationError, match=rf"\[batch 1\] {field.split('.', maxsplit=1)[0]}"):
        track_v2_validator.validate_batch({"batch": [EVENT, op]})  # the item is named by its index


def test_event_attributes_are_not_held_to_person_attribute_limits(track_v2_validator: Any) -> None:
    track_v2_validator.validate_entity({**EVENT, "attributes": {"items": ["x" * 100] * 20}})


def test_byte_limits(track_v2_validator: Any) -> None:
    big_event = {**EVENT, "attributes": {"blob": "x" * (32 * 1024)}}
    with pytest.raises(TrackV2ValidationError, match="payload_too_large"):
        track_v2_validator.validate_entity(big_event)
    errors = track_v2_validator.batch_errors({"batch": [EVENT, big_event]})
    assert [(e.batch_index, e.reason) for e in errors] == [(1, "payload_too_large")]
    many = {"batch": [{**EVENT, "attributes": {"blob": "x" * 20_000}}] * 26}
    with pytest.raises(TrackV2ValidationError, match="payload_too_large"):
        track_v2_validator.validate_batch(many)
