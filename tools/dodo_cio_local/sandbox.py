"""A local stand-in for Customer.io's Track API (v2 entity/batch plus the region probe).

Why it exists: the bridge must be exercised end to end (``make run``, integration and load
tests) without real credentials or network access, and the failure modes that matter most for
a webhook relay -- validation errors, partial batch failures (207), oversize bodies, 5xx bursts,
dropped connections and slow answers -- are exactly the ones a real workspace will not produce
on demand. The sandbox answers like the real API where the public spec and limits say what the
real API does, and lets a test script the rest.

What it enforces (numbers from Customer.io's published Track API reference; see
``tests/contract/README.md``):

* HTTP Basic auth ``site_id:api_key`` on every API endpoint (401 otherwise).
* ``POST /api/v2/entity``: body < 32 KiB (413), JSON (400), the derived OpenAPI schema plus the
  limits the schema cannot express (400 with ``{"errors": [...]}``), else 200 ``{}``.
* ``POST /api/v2/batch``: body < 500 kB (413), each op <= 32 KiB (413 naming the op), a
  ``{"batch": [...]}`` shape (400), then per-op validation: 207 listing only the bad ops
  (the others count as accepted), else 200 ``{}``.
* ``GET /api/v1/accounts/region``: 200 ``{"url", "region", "environment_id"}``.

Sandbox-only strictness (the real API's behaviour is undocumented here, and being strict catches
bridge bugs early): event ``id`` must be a ULID, ``timestamp`` must be an ``int`` (not ``1.0``)
and must look like seconds rather than milliseconds, identifier values must be non-empty.

Test hooks: :meth:`TrackSandbox.script` queues canned answers (including dropped connections and
stalls), ``fail_rate`` answers a seeded random fraction of requests with 503, and the
unauthenticated ``/__sandbox/*`` endpoints expose the same controls over HTTP for a sandbox
running in another process (``make run``).

Rate limit (off by default): ``rate_limit`` requests per second over all API requests, as a token
bucket holding ``rate_limit_burst`` tokens (default: one second's worth); a request that finds
the bucket empty is answered 429 with a ``Retry-After`` (whole seconds until the next token,
at least 1) and is recorded with ``scripted == "rate_limit"``. Customer.io asks Track API
clients to stay near 100 requests per second; the benchmarks use this to check the retry path
keeps to it. ``validate=False`` skips the schema and limit checks of each op (auth, JSON, body
sizes and the batch shape are still checked) for load tests where validation would cost more
than the client under test.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hmac
import json
import logging
import math
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

__all__ = [
    "ATTRIBUTE_NAME_MAX_BYTES",
    "ATTRIBUTE_VALUE_MAX_BYTES",
    "BATCH_MAX_BYTES",
    "ENTITY_MAX_BYTES",
    "EVENT_NAME_MAX_BYTES",
    "IDENTIFIER_MAX_BYTES",
    "MAX_ATTRIBUTES",
    "OP_MAX_BYTES",
    "OpError",
    "ReceivedRequest",
    "ScriptedResponse",
    "TrackSandbox",
    "TrackV2ValidationError",
    "TrackV2Validator",
    "default_schema_path",
    "mask_email",
    "op_size",
    "summarise",
]

log = logging.getLogger(__name__)

# --- Limits -------------------------------------------------------------------------------------
# "< 32 KB" for a whole /entity request and "<= 32 KB" per batch item; KB read as KiB, as
# RudderStack's implementation does (32 * 1024).
ENTITY_MAX_BYTES = 32 * 1024
OP_MAX_BYTES = 32 * 1024
# "< 500 KB" for a whole /batch request; read as 500,000 bytes (RudderStack's '500000B'), the
# stricter of the two readings, so a bridge that passes here also fits the real limit.
BATCH_MAX_BYTES = 500_000
IDENTIFIER_MAX_BYTES = 150
EVENT_NAME_MAX_BYTES = 100
ATTRIBUTE_NAME_MAX_BYTES = 150
ATTRIBUTE_VALUE_MAX_BYTES = 1000
MAX_ATTRIBUTES = 300
# Unix seconds stay below this until the year 5138; a larger value is almost surely milliseconds.
TIMESTAMP_SECONDS_CEILING = 10**11
# Bodies larger than this are not even read: the answer is 413 and the connection is closed.
_MAX_READ_BYTES = 8 * 1024 * 1024

ENTITY_PATH = "/api/v2/entity"
BATCH_PATH = "/api/v2/batch"
REGION_PATH = "/api/v1/accounts/region"
_CONTROL_PREFIX = "/__sandbox/"
_SCHEMA_RELATIVE = Path("tests/contract/track_v2.schema.json")

# Crockford base32 without I, L, O, U; a ULID is 128 bits, so the first character is at most 7.
_ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", re.IGNORECASE)
_EVENT_ACTIONS = frozenset({"event", "page", "screen"})
_UNAUTHORIZED = {"meta": {"error": "Unauthorized request"}}

Action = Literal["respond", "close", "reset", "stall"]
_ACTIONS: tuple[str, ...] = get_args(Action)


# --- Data types ---------------------------------------------------------------------------------
@dataclass
class ReceivedRequest:
    """One request as the sandbox saw it, kept so tests can assert on exactly what was sent.

    ``status``/``response`` are filled in just before the answer is written, so they are final
    by the time the client sees the response. ``status`` is 0 for a scripted ``close``.
    ``scripted`` names the scripted action that answered it (``None`` when processed normally,
    ``"fail_rate"`` for a random 503, ``"rate_limit"`` for a 429 from the rate limit).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    status: int
    response: Any
    received_at: float
    scripted: str | None = None


@dataclass
class ScriptedResponse:
    """A canned answer for the next request, used to force error paths deterministically.

    ``action``: ``respond`` answers ``status``/``body`` after ``delay`` seconds; ``close`` drops
    the connection without a byte of answer; ``reset`` sends the headers and half the body,
    then closes (a truncated response); ``stall`` waits ``delay`` seconds (to outlast the
    client's read timeout) and then answers like ``respond``.
    """

    status: int
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: Action = "respond"

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValueError(f"action must be one of {_ACTIONS}, got {self.action!r}")
        if self.action in {"respond", "stall", "reset"} and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    def body_bytes(self) -> bytes:
        """The body to send; a JSON placeholder when none was given, so clients can parse it."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode()
        if 200 <= self.status < 300:
            return b"{}"
        return json.dumps({"meta": {"error": f"sandbox scripted {self.status}"}}).encode()

    @classmethod
    def from_json(cls, item: Any) -> ScriptedResponse:
        """Build from the ``/__sandbox/script`` wire form: an int or an object of the fields."""
        if isinstance(item, int) and not isinstance(item, bool):
            return cls(status=item)
        if not isinstance(item, dict):
            raise ValueError(f"a scripted response must be an int or an object, got {item!r}")
        unknown = set(item) - {"status", "body", "headers", "delay", "action"}
        if unknown:
            raise ValueError(f"unknown scripted response fields: {sorted(unknown)}")
        body = item.get("body")
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, dict):
            raise ValueError("body must be an object, a string or null")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must be an object of strings")
        status = item.get("status", 0 if item.get("action") == "close" else None)
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("status is required and must be an int")
        delay = item.get("delay", 0.0)
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise ValueError("delay must be a number")
        return cls(
            status=status,
            body=body,
            headers=dict(headers),
            delay=float(delay),
            action=cast(Action, item.get("action", "respond")),
        )


@dataclass
class OpError:
    """One validation failure, in the shape of an entry of the Track API's ``errors`` array."""

    reason: str
    field: str
    message: str
    batch_index: int | None = None

    def as_json(self) -> dict[str, Any]:
        """Wire form: ``batch_index`` first (as in 207 bodies) and only when it applies."""
        out: dict[str, Any] = {} if self.batch_index is None else {"batch_index": self.batch_index}
        out.update(reason=self.reason, field=self.field, message=self.message)
        return out

    def __str__(self) -> str:
        where = f"[batch {self.batch_index}] " if self.batch_index is not None else ""
        return f"{where}{self.field or '(body)'}: {self.reason}: {self.message}"


class TrackV2ValidationError(ValueError):
    """Raised by :meth:`TrackV2Validator.validate_entity`/``validate_batch``; lists every error."""

    def __init__(self, errors: list[OpError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"Track API v2 would reject this request ({len(errors)} error(s)):\n{lines}")


# --- Validation ---------------------------------------------------------------------------------
def default_schema_path() -> Path:
    """Locate ``tests/contract/track_v2.schema.json`` from this file's location.

    The schema is test data kept in the repository (see ``tests/contract/README.md``); the
    sandbox runs from an editable install, so walking up from this module finds the checkout.
    A copy next to this module is accepted too, for a packaged install.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / _SCHEMA_RELATIVE
        if candidate.is_file():
            return candidate
    packaged = here.with_name("track_v2.schema.json")
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(
        f"cannot find {_SCHEMA_RELATIVE} in any parent of {here.parent}; run from a checkout of the "
        "repository or pass schema_path= (regenerate it with tests/contract/derive_schema.py)"
    )


def op_size(op: Any) -> int:
    """Bytes of ``op`` as compact UTF-8 JSON: the smallest form a client could send it in."""
    return len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode())


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: enough to recognise, not to harvest."""
    local, sep, domain = value.partition("@")
    if not sep:
        return value
    return f"{local[:1]}***@{domain}"


def _mask_identifier(key: str, value: Any) -> str:
    text = str(value)
    if "@" in text:
        return mask_email(text)
    if key == "phone":
        return "*" * max(len(text) - 2, 0) + text[-2:]
    return text


def _utf8_len(text: str) -> int:
    return len(text.encode())


def _field(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


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
            return [OpError("invalid_type", "", f"an operation must be a JSON object, got {_json_type(op)}")]
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
            return [OpError("invalid_type", "", f"the body must be a JSON object, got {_json_type(body)}")]
        return [self._from_schema_error(err) for err in self._envelope.iter_errors(body)]

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
        errors = self.entity_errors(op)
        if errors:
            raise TrackV2ValidationError(errors)
        size = op_size(op)
        if size >= ENTITY_MAX_BYTES:
            message = f"body is {size} bytes; /entity bodies must be under {ENTITY_MAX_BYTES}"
            raise TrackV2ValidationError([OpError("payload_too_large", "", message)])

    def validate_batch(self, body: Any) -> None:
        """Raise :class:`TrackV2ValidationError` unless every op in the ``/batch`` body is valid."""
        errors = self.batch_errors(body)
        if errors:
            raise TrackV2ValidationError(errors)
        size = op_size(body)
        if size >= BATCH_MAX_BYTES:
            message = f"body is {size} bytes; /batch bodies must be under {BATCH_MAX_BYTES}"
            raise TrackV2ValidationError([OpError("payload_too_large", "", message)])

    # -- internals
    def _schema_errors(self, def_name: str, instance: Any) -> list[OpError]:
        raw = sorted(
            self.validator_for(def_name).iter_errors(instance),
            key=lambda e: (len(e.absolute_path), _field(e.absolute_path)),
        )
        return [self._from_schema_error(err) for err in raw]

    @staticmethod
    def _from_schema_error(err: ValidationError) -> OpError:
        path = list(err.absolute_path)
        keyword = err.validator
        value: Any = err.validator_value
        if keyword == "required":
            instance = err.instance if isinstance(err.instance, dict) else {}
            missing = [key for key in value if key not in instance] or ["?"]
            return OpError("required", _field([*path, missing[0]]), f"'{missing[0]}' is required")
        if keyword == "type":
            return OpError("invalid_type", _field(path), f"expected {value}, got {_json_type(err.instance)}")
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


# --- Summaries (for logs and /__sandbox/requests) -----------------------------------------------
def _op_summary(op: Any) -> dict[str, Any]:
    if not isinstance(op, dict):
        return {"invalid": _json_type(op)}
    out: dict[str, Any] = {"type": op.get("type"), "action": op.get("action")}
    if isinstance(op.get("name"), str):
        out["name"] = op["name"]
    ids = op.get("identifiers")
    if isinstance(ids, dict) and ids:
        out["identifier"] = ", ".join(f"{k}={_mask_identifier(k, v)}" for k, v in ids.items())
    return out


def _request_ops(rec: ReceivedRequest) -> list[Any] | None:
    if rec.path == ENTITY_PATH and rec.json is not None:
        return [rec.json]
    if rec.path == BATCH_PATH and isinstance(rec.json, dict) and isinstance(rec.json.get("batch"), list):
        return list(rec.json["batch"])
    return None


def _rejected_indexes(rec: ReceivedRequest) -> set[int]:
    if not isinstance(rec.response, dict) or not isinstance(rec.response.get("errors"), list):
        return set()
    return {
        e["batch_index"]
        for e in rec.response["errors"]
        if isinstance(e, dict) and isinstance(e.get("batch_index"), int)
    }


def summarise(rec: ReceivedRequest) -> dict[str, Any]:
    """A PII-light view of a request: no bodies, no headers, emails masked."""
    ops = _request_ops(rec)
    out: dict[str, Any] = {
        "method": rec.method,
        "path": rec.path,
        "status": rec.status,
        "received_at": rec.received_at,
        "op_count": len(ops) if ops is not None else 0,
        "ops": [_op_summary(op) for op in ops or []],
    }
    if rec.scripted:
        out["scripted"] = rec.scripted
    if isinstance(rec.response, dict) and isinstance(rec.response.get("errors"), list):
        out["errors"] = [
            {k: e.get(k) for k in ("batch_index", "reason", "field") if k in e}
            for e in rec.response["errors"]
            if isinstance(e, dict)
        ]
    return out


def _log_line(rec: ReceivedRequest, elapsed_ms: float) -> str:
    summary = summarise(rec)
    parts = [f"{rec.method} {rec.path} -> {rec.status or 'closed'}"]
    if rec.scripted:
        parts.append(f"[{rec.scripted}]")
    if summary["op_count"]:
        ops = "; ".join(
            " ".join(
                str(x)
                for x in (
                    f"{o.get('type')}/{o.get('action')}",
                    o.get("name", ""),
                    o.get("identifier", ""),
                )
                if x
            )
            for o in summary["ops"][:5]
        )
        more = f"; +{summary['op_count'] - 5} more" if summary["op_count"] > 5 else ""
        parts.append(f"ops={summary['op_count']} [{ops}{more}]")
    if summary.get("errors"):
        errs = ", ".join(
            (f"#{e['batch_index']} " if "batch_index" in e else "") + f"{e.get('field') or '-'}:{e.get('reason')}"
            for e in summary["errors"][:5]
        )
        parts.append(f"errors=[{errs}]")
    parts.append(f"{elapsed_ms:.0f}ms")
    return " ".join(parts)


# --- HTTP server --------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # load tests open many connections at once
    sandbox: TrackSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; clients pool connections
    server: _Server
    timeout = 60  # idle keep-alive connections give their thread back eventually
    disable_nagle_algorithm = True
    _started = 0.0  # headers and body go out in separate writes; avoid 40 ms stalls
    server_version = "dodo-cio-track-sandbox/1"

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track_connection(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.sandbox._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's access log; the sandbox logs its own one-line summaries."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- request handling
    def _dispatch(self) -> None:
        self._started = time.monotonic()
        sandbox = self.server.sandbox
        try:
            path = urlsplit(self.path).path
            body = self._read_body()
            if path.startswith(_CONTROL_PREFIX):
                self._control(path, body or b"")
                return
            rec = ReceivedRequest(
                method=self.command,
                path=path,
                headers=dict(self.headers.items()),
                body=body or b"",
                json=_try_json(body or b""),
                status=0,
                response=None,
                received_at=time.time(),
            )
            sandbox._record(rec)
            if body is None:  # too large to read: answered without reading, connection dropped
                self.close_connection = True
                self._finish(rec, 413, _too_large_body(int(self.headers["Content-Length"] or 0), path))
            else:
                self._answer(rec)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def _answer(self, rec: ReceivedRequest) -> None:
        sandbox = self.server.sandbox
        scripted = sandbox._next_scripted()
        if scripted is not None:
            self._play(rec, scripted)
            return
        wait = sandbox._rate_limited()
        if wait is not None:
            rec.scripted = "rate_limit"
            retry_after = str(max(1, math.ceil(wait)))
            body = {"meta": {"error": "Too Many Requests (sandbox rate_limit)"}}
            self._finish(rec, 429, body, {"Retry-After": retry_after})
            return
        if sandbox._roll_failure():
            rec.scripted = "fail_rate"
            self._finish(rec, 503, {"meta": {"error": "Service Unavailable (sandbox fail_rate)"}})
            return
        status, payload = sandbox._process(rec)
        self._finish(rec, status, payload)

    def _play(self, rec: ReceivedRequest, scripted: ScriptedResponse) -> None:
        sandbox = self.server.sandbox
        rec.scripted = scripted.action
        if scripted.action == "close":
            rec.status = 0
            self._log(rec)
            self._drop()
            return
        if scripted.delay and sandbox._stopping.wait(scripted.delay):
            self._drop()  # shutting down: don't keep the caller waiting
            return
        body = scripted.body_bytes()
        rec.status = scripted.status
        rec.response = _try_json(body)
        self._log(rec)
        if scripted.action == "reset":
            body = body if len(body) >= 2 else b'{"meta":{"error":"sandbox reset"}}'
            self._send(scripted.status, body[: len(body) // 2], scripted.headers, content_length=len(body))
            self._drop()
            return
        self._send(scripted.status, body, scripted.headers)

    def _finish(
        self, rec: ReceivedRequest, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        rec.status = status
        rec.response = payload
        self._log(rec)
        self._send(status, json.dumps(payload).encode(), headers)

    def _log(self, rec: ReceivedRequest) -> None:
        # Logged before the answer is written, so the line exists by the time the client has it.
        self.server.sandbox._log(rec, (time.monotonic() - self._started) * 1000)

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
    ) -> None:
        extra = dict(headers or {})
        self.send_response(status)
        if not any(k.lower() == "content-type" for k in extra):
            self.send_header("Content-Type", "application/json")
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` when it is too large to be worth reading."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > _MAX_READ_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_READ_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    # -- control endpoints (no auth, not recorded)
    def _control(self, path: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        route = (self.command, path.removeprefix(_CONTROL_PREFIX).rstrip("/"))
        status: int = 200
        payload: Any = {}
        try:
            if route == ("GET", "requests"):
                payload = [summarise(rec) for rec in sandbox._snapshot()]
            elif route == ("POST", "reset"):
                sandbox.reset()
            elif route == ("POST", "script"):
                doc = json.loads(body or b"{}")
                items = doc.get("responses") if isinstance(doc, dict) else None
                if not isinstance(items, list):
                    raise ValueError('expected {"responses": [...]}')
                sandbox.script(*(ScriptedResponse.from_json(item) for item in items))
                payload = {"queued": sandbox._script_depth()}
            elif route == ("POST", "config"):
                doc = json.loads(body or b"{}")
                if not isinstance(doc, dict):
                    raise ValueError("expected a JSON object")
                payload = sandbox._configure(doc)
            else:
                status, payload = 404, {"meta": {"error": f"unknown sandbox control {self.command} {path}"}}
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"meta": {"error": str(exc)}}
        self._send(status, json.dumps(payload).encode())


def _try_json(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _too_large_body(size: int, path: str) -> dict[str, Any]:
    limit = ENTITY_MAX_BYTES if path == ENTITY_PATH else BATCH_MAX_BYTES
    message = f"request body is {size} bytes; it must be under {limit}"
    return {"errors": [{"reason": "payload_too_large", "field": "", "message": message}]}


def _bad_request(reason: str, field_name: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"errors": [{"reason": reason, "field": field_name, "message": message}]}


# --- The sandbox --------------------------------------------------------------------------------
class _TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; each request takes one or is refused."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> float | None:
        """``None`` when a token was taken, else the seconds until the next one. Caller holds the lock."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rate


class TrackSandbox:
    """A Customer.io Track API look-alike on loopback, run in a background thread.

    Use as a context manager (``with TrackSandbox() as sb: ...``) or call :meth:`start` and
    :meth:`stop`. Point the bridge's Track base URL at :attr:`base_url` and use
    :attr:`site_id`/:attr:`api_key` as its credentials.
    """

    def __init__(
        self,
        *,
        site_id: str = "sandbox-site",
        api_key: str = "sandbox-key",
        schema_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us",
        fail_rate: float = 0.0,
        seed: int | None = None,
        rate_limit: float | None = None,
        rate_limit_burst: int | None = None,
        validate: bool = True,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if rate_limit is not None and not 0 < rate_limit < float("inf"):
            raise ValueError("rate_limit must be a positive number of requests per second, or None")
        if rate_limit_burst is not None and (rate_limit is None or rate_limit_burst < 1):
            raise ValueError("rate_limit_burst needs a rate_limit and must be at least 1")
        if region not in {"us", "eu"}:
            raise ValueError("region must be 'us' or 'eu'")
        self.site_id = site_id
        self.api_key = api_key
        self.host = host
        self.port = port
        self.region = region
        self.fail_rate = fail_rate
        self.seed = seed
        self.rate_limit = rate_limit
        self.rate_limit_burst = rate_limit_burst if rate_limit_burst is not None else max(1, round(rate_limit or 1))
        self.validate = validate
        self._bucket = _TokenBucket(rate_limit, self.rate_limit_burst) if rate_limit is not None else None
        self.schema_path = schema_path if schema_path is not None else default_schema_path()
        self.validator = TrackV2Validator.from_path(self.schema_path)
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._script: deque[ScriptedResponse] = deque()
        self._rng = random.Random(seed)  # noqa: S311 - simulated outages, not security
        self._expected_auth = "Basic " + base64.b64encode(f"{site_id}:{api_key}".encode()).decode()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._base_url: str | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running sandbox (no trailing slash)."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._base_url

    def start(self) -> str:
        """Bind, serve in a daemon thread and return the base URL."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        _ensure_log_output()
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.port = server.server_address[1]
        self._base_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="track-sandbox", daemon=True
        )
        self._thread.start()
        log.info("Customer.io Track sandbox listening on %s (site_id=%s)", self._base_url, self.site_id)
        return self._base_url

    def stop(self) -> None:
        """Stop serving, drop open connections (stalled handlers return at once). Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._base_url = None

    def __enter__(self) -> TrackSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls
    def script(self, *responses: int | ScriptedResponse) -> None:
        """Queue answers for the next requests, in order, ahead of auth and validation."""
        items = [r if isinstance(r, ScriptedResponse) else ScriptedResponse(status=r) for r in responses]
        with self._lock:
            self._script.extend(items)

    def accepted_ops(self) -> list[dict[str, Any]]:
        """Every op Customer.io would now hold: from 2xx answers, minus ops named in a 207.

        A stalled 2xx counts (the server processed it even if the client gave up), which is how
        retries create duplicates in real life; dropped (``close``/``reset``) requests don't.
        """
        accepted: list[dict[str, Any]] = []
        for rec in self._snapshot():
            if rec.method != "POST" or not 200 <= rec.status < 300 or rec.scripted in {"close", "reset"}:
                continue
            ops = _request_ops(rec)
            if ops is None:
                continue
            rejected = _rejected_indexes(rec)
            accepted.extend(op for i, op in enumerate(ops) if i not in rejected and isinstance(op, dict))
        return accepted

    def reset(self) -> None:
        """Forget recorded requests and queued scripts; re-seed so fail_rate repeats its sequence;
        refill the rate limit's bucket."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._rng.seed(self.seed)
            if self.rate_limit is not None:
                self._bucket = _TokenBucket(self.rate_limit, self.rate_limit_burst)

    def summaries(self) -> list[dict[str, Any]]:
        """The ``/__sandbox/requests`` view: no bodies or headers, emails masked."""
        return [summarise(rec) for rec in self._snapshot()]

    # -- internals used by the handler
    def _snapshot(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    def _record(self, rec: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_scripted(self) -> ScriptedResponse | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _script_depth(self) -> int:
        with self._lock:
            return len(self._script)

    def _rate_limited(self) -> float | None:
        """``None`` when the request may proceed, else the seconds until the rate limit allows one."""
        if self._bucket is None:
            return None
        with self._lock:
            return self._bucket.take()

    def _roll_failure(self) -> bool:
        with self._lock:
            return self.fail_rate > 0 and self._rng.random() < self.fail_rate

    def _configure(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(doc) - {"fail_rate", "seed"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        with self._lock:
            if "fail_rate" in doc:
                rate = doc["fail_rate"]
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise ValueError("fail_rate must be a number between 0 and 1")
                self.fail_rate = float(rate)
            if "seed" in doc:
                seed = doc["seed"]
                if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                    raise ValueError("seed must be an integer or null")
                self.seed = seed
                self._rng.seed(seed)
            return {"fail_rate": self.fail_rate, "seed": self.seed}

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.site_id}:{self.api_key}".encode()
        return hmac.compare_digest(decoded, expected)

    def _process(self, rec: ReceivedRequest) -> tuple[int, Any]:
        if not self._authorized(rec.headers):
            return 401, _UNAUTHORIZED
        routes = {ENTITY_PATH: "POST", BATCH_PATH: "POST", REGION_PATH: "GET"}
        if rec.path not in routes:
            return 404, {"meta": {"error": "Not Found"}}
        if rec.method != routes[rec.path]:
            return 405, {"meta": {"error": "Method Not Allowed"}}
        if rec.path == REGION_PATH:
            return 200, {"url": self.base_url, "region": self.region, "environment_id": 1}
        if rec.path == ENTITY_PATH:
            return self._entity(rec)
        return self._batch(rec)

    def _entity(self, rec: ReceivedRequest) -> tuple[int, Any]:
        if len(rec.body) >= ENTITY_MAX_BYTES:
            return 413, _too_large_body(len(rec.body), ENTITY_PATH)
        if rec.json is None:
            return _bad_request("invalid_json", "", "the body must be a JSON object")
        if not self.validate:
            return 200, {}
        errors = self.validator.entity_errors(rec.json)
        if errors:
            return 400, {"errors": [e.as_json() for e in errors]}
        return 200, {}

    def _batch(self, rec: ReceivedRequest) -> tuple[int, Any]:
        if len(rec.body) >= BATCH_MAX_BYTES:
            return 413, _too_large_body(len(rec.body), BATCH_PATH)
        if rec.json is None:
            return _bad_request("invalid_json", "", 'the body must be a JSON object {"batch": [...]}')
        if not self.validate:
            if not isinstance(rec.json, dict) or not isinstance(rec.json.get("batch"), list):
                return _bad_request("invalid_type", "batch", 'the body must be a JSON object {"batch": [...]}')
            return 200, {}
        errors = self.validator.batch_errors(rec.json)
        if any(e.batch_index is None for e in errors):
            return 400, {"errors": [e.as_json() for e in errors]}
        too_large = [e for e in errors if e.reason == "payload_too_large"]
        if too_large:
            return 413, {"errors": [e.as_json() for e in too_large]}
        if errors:
            return 207, {"errors": [e.as_json() for e in errors]}
        return 200, {}

    def _log(self, rec: ReceivedRequest, elapsed_ms: float) -> None:
        level = logging.INFO if rec.status < 500 or rec.scripted else logging.WARNING
        log.log(level, "%s", _log_line(rec, elapsed_ms))


def _ensure_log_output() -> None:
    """Make the one-line request summaries visible on stderr when nobody configured logging."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s track-sandbox %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
