"""The Track API v2 request validator shared by the sandbox and the contract tests.

Why code on top of the schema: ``tests/contract/track_v2.schema.json`` (derived from Customer.io's
OpenAPI document) gives the structure, but the published limits a schema cannot express -- byte
lengths, exactly one identifier, integer seconds, ULID event ids -- are what a relay most easily
gets wrong. The sandbox answers 400/207/413 from these errors, and the contract tests raise them,
so a request the tests pass is one the sandbox accepts.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from dodo_cio_local.track_v2 import (
    ATTRIBUTE_NAME_MAX_BYTES,
    ATTRIBUTE_VALUE_MAX_BYTES,
    BATCH_MAX_BYTES,
    ENTITY_MAX_BYTES,
    EVENT_NAME_MAX_BYTES,
    IDENTIFIER_MAX_BYTES,
    MAX_ATTRIBUTES,
    OP_MAX_BYTES,
    TIMESTAMP_SECONDS_CEILING,
    OpError,
    TrackV2ValidationError,
    default_schema_path,
    json_type,
    op_size,
)

# Crockford base32 without I, L, O, U; a ULID is 128 bits, so the first character is at most 7.
_ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", re.IGNORECASE)
_EVENT_ACTIONS = frozenset({"event", "page", "screen"})


def _utf8_len(text: str) -> int:
    return len(text.encode())


def _field(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=["email"])

    def _is_ulid(instance: object) -> bool:
        return not isinstance(instance, str) or bool(_ULID_RE.match(instance))

    checker.checks("ULID")(_is_ulid)
    return checker


class TrackV2Validator:
    """Validates Track v2 request bodies the way the sandbox (and the contract tests) do.

    The derived JSON Schema gives the structure; the published limits that a schema cannot
    express (byte lengths, one identifier, integer seconds, ULID ids) are checked in code.
    Errors name the offending field so a failing test or a 400 body points at the fix.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._defs: dict[str, Any] = dict(schema["$defs"])
        for entry in ("entity_request", "batch_request"):
            if entry not in self._defs:
                raise ValueError(f"schema has no $defs/{entry}; regenerate it with derive_schema.py")
        self._checker = _format_checker()
        self._validators: dict[str, Draft202012Validator] = {}
        # batch_request minus its item schema: items are checked one by one (with their index),
        # and validating them twice through the big anyOf would cost ~10x the time.
        envelope = copy.deepcopy(self._defs["batch_request"])
        envelope.get("properties", {}).get("batch", {}).pop("items", None)
        self._envelope = Draft202012Validator({"$defs": self._defs, **envelope}, format_checker=self._checker)
        # (type, action) -> the $defs entry describing that operation, so errors can be reported
        # against the one shape the caller meant instead of an opaque "no oneOf branch matched".
        self.operations: dict[tuple[str, str], str] = {}
        for group in ("person_operations", "object_operations"):
            for branch in self._defs.get(group, {}).get("oneOf", []):
                name = branch["$ref"].rsplit("/", 1)[-1]
                self._register(name)
        if "delivery_operations" in self._defs:
            self._register("delivery_operations")
        self.actions_by_type: dict[str, list[str]] = {}
        for op_type, action in self.operations:
            self.actions_by_type.setdefault(op_type, []).append(action)

    @classmethod
    def from_path(cls, path: Path | None = None) -> TrackV2Validator:
        """Load the derived schema (default: :func:`default_schema_path`)."""
        schema_file = path if path is not None else default_schema_path()
        return cls(json.loads(Path(schema_file).read_text(encoding="utf-8")))

    # -- schema plumbing
    def _register(self, name: str) -> None:
        types = self._enum(self._defs[name], "type")
        actions = self._enum(self._defs[name], "action")
        for op_type in types:
            for action in actions:
                self.operations.setdefault((op_type, action), name)

    def _enum(self, node: Any, prop: str, depth: int = 0) -> list[str]:
        if not isinstance(node, dict) or depth > 10:
            return []
        if "$ref" in node:
            found = self._enum(self._defs[node["$ref"].rsplit("/", 1)[-1]], prop, depth + 1)
            if found:
                return found
        enum = node.get("properties", {}).get(prop, {}).get("enum")
        if enum:
            return list(enum)
        for sub in node.get("allOf", []):
            found = self._enum(sub, prop, depth + 1)
            if found:
                return found
        return []

    def validator_for(self, def_name: str) -> Draft202012Validator:
        """A cached validator whose root is ``#/$defs/<def_name>``."""
        validator = self._validators.get(def_name)
        if validator is None:
            root = {"$schema": self.schema.get("$schema"), "$defs": self._defs, "$ref": f"#/$defs/{def_name}"}
            validator = Draft202012Validator(root, format_checker=self._checker)
            self._validators[def_name] = validator
        return validator

    # -- public checks
    def entity_errors(self, op: Any) -> list[OpError]:
        """Every reason the Track API would refuse ``op`` as a ``/api/v2/entity`` body."""
        if not isinstance(op, dict):
            return [OpError("invalid_type", "", f"an operation must be a JSON object, got {json_type(op)}")]
        op_type, action = op.get("type"), op.get("action")
        errors: list[OpError] = []
        if not isinstance(op_type, str) or op_type not in self.actions_by_type:
            allowed = sorted(self.actions_by_type)
            if "type" not in op:
                errors.append(OpError("required", "type", f"'type' is required, one of {allowed}"))
            else:
                errors.append(OpError("invalid_value", "type", f"must be one of {allowed}"))
        elif not isinstance(action, str) or (op_type, action) not in self.operations:
            allowed = self.actions_by_type[op_type]
            if "action" not in op:
                errors.append(OpError("required", "action", f"'action' is required, one of {allowed}"))
            else:
                errors.append(OpError("invalid_value", "action", f"{op_type} operations take one of {allowed}"))
        else:
            # Branches differ by their type/action enums, so validating against the one branch
            # is equivalent to the entry point's oneOf, ~10x faster, and gives precise errors.
            errors.extend(self._schema_errors(self.operations[(op_type, action)], op))
        taken = {e.field for e in errors}
        errors.extend(e for e in self._limit_errors(op) if e.field not in taken)
        return errors

    def batch_structure_errors(self, body: Any) -> list[OpError]:
        """Problems with the ``{"batch": [...]}`` envelope itself (not with the ops inside it)."""
        if not isinstance(body, dict):
            return [OpError("invalid_type", "", f"the body must be a JSON object, got {json_type(body)}")]
        return [schema_error(err) for err in self._envelope.iter_errors(body)]

    def batch_errors(self, body: Any) -> list[OpError]:
        """Envelope errors (``batch_index`` None), else every op's errors tagged with its index.

        An op over :data:`OP_MAX_BYTES` yields a single ``payload_too_large`` error.
        """
        structural = self.batch_structure_errors(body)
        if structural:
            return structural
        errors: list[OpError] = []
        for index, op in enumerate(body["batch"]):
            size = op_size(op)
            if size > OP_MAX_BYTES:
                message = f"operation is {size} bytes; each batch item must be at most {OP_MAX_BYTES}"
                errors.append(OpError("payload_too_large", "", message, batch_index=index))
                continue
            for err in self.entity_errors(op):
                err.batch_index = index
                errors.append(err)
        return errors

    def validate_entity(self, op: Any) -> None:
        """Raise :class:`TrackV2ValidationError` unless ``op`` is a valid ``/entity`` body."""
        _raise_if_refused(self.entity_errors(op), op, "/entity", ENTITY_MAX_BYTES)

    def validate_batch(self, body: Any) -> None:
        """Raise :class:`TrackV2ValidationError` unless every op in the ``/batch`` body is valid."""
        _raise_if_refused(self.batch_errors(body), body, "/batch", BATCH_MAX_BYTES)

    # -- internals
    def _schema_errors(self, def_name: str, instance: Any) -> list[OpError]:
        raw = sorted(
            self.validator_for(def_name).iter_errors(instance),
            key=lambda e: (len(e.absolute_path), _field(e.absolute_path)),
        )
        return [schema_error(err) for err in raw]

    def _limit_errors(self, op: dict[str, Any]) -> list[OpError]:
        errors: list[OpError] = []
        op_type = op.get("type") if isinstance(op.get("type"), str) else None
        action = op.get("action") if isinstance(op.get("action"), str) else None
        if op_type == "person":
            if action == "merge":
                for key in ("primary", "secondary"):
                    errors.extend(_identifier_errors(op.get(key), key))
            else:
                errors.extend(_identifier_errors(op.get("identifiers"), "identifiers"))
        elif op_type == "object":
            ids = op.get("identifiers")
            if isinstance(ids, dict):
                errors.extend(_identifier_value_errors(ids, "identifiers"))
        if "timestamp" in op:
            ts = op["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, int):
                errors.append(OpError("invalid_timestamp", "timestamp", "must be an integer number of Unix seconds"))
            elif ts >= TIMESTAMP_SECONDS_CEILING:
                errors.append(OpError("invalid_timestamp", "timestamp", "looks like milliseconds; use Unix seconds"))
        if action in _EVENT_ACTIONS and op_type == "person":
            name = op.get("name")
            if isinstance(name, str):
                if not name.strip():
                    errors.append(OpError("required", "name", "must not be empty"))
                elif _utf8_len(name) > EVENT_NAME_MAX_BYTES:
                    message = f"is {_utf8_len(name)} bytes; the limit is {EVENT_NAME_MAX_BYTES}"
                    errors.append(OpError("too_long", "name", message))
            event_id = op.get("id")
            if isinstance(event_id, str) and not _ULID_RE.match(event_id):
                errors.append(OpError("invalid_ulid", "id", "must be a 26-character Crockford base32 ULID"))
        if action == "identify" and op_type == "person":
            errors.extend(_attribute_errors(op.get("attributes")))
        return errors


def schema_error(err: ValidationError) -> OpError:
    """One jsonschema error as the API's error entry: a reason, the dotted field, a short message.

    Shared with the Pipelines validator, so both sandboxes word a refusal the same way.
    """
    path = list(err.absolute_path)
    keyword = err.validator
    value: Any = err.validator_value
    if keyword == "required":
        instance = err.instance if isinstance(err.instance, dict) else {}
        missing = [key for key in value if key not in instance] or ["?"]
        return OpError("required", _field([*path, missing[0]]), f"'{missing[0]}' is required")
    if keyword == "type":
        return OpError("invalid_type", _field(path), f"expected {value}, got {json_type(err.instance)}")
    if keyword in {"enum", "const"}:
        allowed = value if keyword == "enum" else [value]
        return OpError("invalid_value", _field(path), f"must be one of {allowed}")
    if keyword == "format":
        reason = "invalid_" + str(value).lower().replace(" ", "_")
        if value == "ULID":
            return OpError(reason, _field(path), "must be a 26-character Crockford base32 ULID")
        return OpError(reason, _field(path), f"is not a valid {value}")
    if keyword in {"oneOf", "anyOf"}:
        shapes = ["+".join(branch.get("required", [])) for branch in value if isinstance(branch, dict)]
        if path and path[-1] in {"identifiers", "primary", "secondary"} and all(shapes):
            return OpError(
                "invalid_identifiers",
                _field(path),
                f"must hold exactly one identifier: one of {' | '.join(shapes)}",
            )
        return OpError("invalid_value", _field(path), "does not match any allowed shape")
    return OpError("invalid", _field(path), _short(err.message, 200))


def _raise_if_refused(errors: list[OpError], body: Any, endpoint: str, limit: int) -> None:
    """The content's errors first; only a valid body is then held to its endpoint's size limit."""
    if errors:
        raise TrackV2ValidationError(errors)
    size = op_size(body)
    if size >= limit:
        message = f"body is {size} bytes; {endpoint} bodies must be under {limit}"
        raise TrackV2ValidationError([OpError("payload_too_large", "", message)])


def _identifier_errors(ids: Any, where: str) -> list[OpError]:
    if not isinstance(ids, dict):
        return []
    if len(ids) != 1:
        message = f"exactly one identifier is allowed, got {len(ids)} ({', '.join(sorted(map(str, ids)))})"
        return [OpError("invalid_identifiers", where, message)]
    return _identifier_value_errors(ids, where)


def _identifier_value_errors(ids: dict[str, Any], where: str) -> list[OpError]:
    errors: list[OpError] = []
    for key, value in ids.items():
        if not isinstance(value, str):
            continue
        if not value:
            errors.append(OpError("required", f"{where}.{key}", "must not be empty"))
        elif _utf8_len(value) > IDENTIFIER_MAX_BYTES:
            message = f"is {_utf8_len(value)} bytes; the limit is {IDENTIFIER_MAX_BYTES}"
            errors.append(OpError("too_long", f"{where}.{key}", message))
    return errors


def _attribute_errors(attributes: Any) -> list[OpError]:
    # Person attribute limits. Event attributes are event data (a much larger, separate limit),
    # so they are deliberately not held to the per-attribute 1000-byte rule.
    if not isinstance(attributes, dict):
        return []
    errors: list[OpError] = []
    if len(attributes) > MAX_ATTRIBUTES:
        message = f"{len(attributes)} attributes; the limit is {MAX_ATTRIBUTES} per call"
        errors.append(OpError("too_many_attributes", "attributes", message))
    for name, value in attributes.items():
        where = f"attributes.{_short(str(name))}"
        if _utf8_len(str(name)) > ATTRIBUTE_NAME_MAX_BYTES:
            message = f"name is {_utf8_len(str(name))} bytes; the limit is {ATTRIBUTE_NAME_MAX_BYTES}"
            errors.append(OpError("too_long", where, message))
        size = _utf8_len(value) if isinstance(value, str) else op_size(value)
        if size > ATTRIBUTE_VALUE_MAX_BYTES:
            message = f"value is {size} bytes; the limit is {ATTRIBUTE_VALUE_MAX_BYTES}"
            errors.append(OpError("too_long", where, message))
    return errors
