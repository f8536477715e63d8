"""The Data Pipelines request validator shared by the sandbox and the contract tests.

Why one validator for both: the sandbox refuses (strict mode) or drops (otherwise) what this
finds, and the contract tests raise it, so a request the tests pass is one the sandbox accepts.
It reads the published spec itself (``pipelines_v1.read_spec``, with the ``oneOf`` quirk read as
``anyOf``) rather than a reduction of it: every call type the spec has (``/identify``, ``/track``,
``/page``, ``/screen``, ``/group``, ``/alias``) is checked against the request body the spec
gives its path, a direct call with its ``type`` added from that path.

A ``/batch`` item is held to the spec's ``/batch`` item shape for its ``type`` *and* to the direct
call of that type: the client sends a lone call to its own endpoint, so every call must pass
there anyway, and the ``/batch`` shapes alone skip the common fields (``timestamp`` formats).

What goes beyond the spec (the real API's behaviour is not documented; being strict catches
bridge bugs early):

* ``date-time`` formats are asserted (RFC 3339, ``T`` separator, an offset or ``Z``);
* a batch item names its ``type`` (nothing else can say what it is), and ``alias`` is not one
  (the spec's ``/batch`` does not list it);
* a call names its person by a non-empty ``userId`` or ``anonymousId`` (an ``identify`` may use
  ``traits.email`` with an empty ``userId``, as the spec describes); ``alias`` ids are non-empty;
* a ``group`` call names a non-empty ``groupId`` (the ``/batch`` shape requires it, the direct
  call's schema does not);
* the ``/batch`` body must have its ``batch`` array (the spec does not require it, so ``{}``
  would pass).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from dodo_cio_local.pipelines_v1 import (
    BATCH,
    BATCH_MAX_BYTES,
    CALL_MAX_BYTES,
    PipelinesValidationError,
    call_size,
    read_spec,
    request_schemas,
    with_type,
)
from dodo_cio_local.track_v2 import OpError, json_type
from dodo_cio_local.track_validator import schema_error

_DATE_TIME: Final = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)
_PERSON_CALLS: Final = frozenset({"identify", "track", "page", "screen", "group"})


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the schema's `type` speaks for other values
    match = _DATE_TIME.match(value)
    if match is None:
        return False
    offset = "+00:00" if match.group(3).upper() == "Z" else match.group(3)
    try:
        datetime.fromisoformat(match.group(1) + offset)
    except ValueError:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    return checker


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _describe(err: ValidationError) -> list[OpError]:
    """What to report for one error: inside an ``anyOf``/``oneOf``, the errors of the closest branch.

    "No branch matched" would not say what to fix. The closest branch is the one with the fewest
    errors, the first on a tie (the spec lists "Known User" first).
    """
    if err.validator in {"anyOf", "oneOf"} and err.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        closest = min(branches.values(), key=len)
        return [found for sub in closest for found in _describe(sub)]
    if err.validator == "oneOf":
        field = ".".join(str(p) for p in err.absolute_path)
        return [OpError("ambiguous", field, "matches more than one of the spec's oneOf branches")]
    return [schema_error(err)]


class PipelinesValidator:
    """Validates Pipelines request bodies the way the sandbox (and the contract tests) do.

    Errors are :class:`~dodo_cio_local.track_v2.OpError` (a batch item's carry its
    ``batch_index``), so both sandboxes report and record refusals alike.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self._components = spec["components"]
        self._checker = _format_checker()
        schemas = request_schemas(spec)
        self.call_types = tuple(kind for kind in schemas if kind != BATCH)
        self._calls = {kind: self._validator(schemas[kind]) for kind in self.call_types}
        batch = self._resolve(schemas[BATCH])
        items = batch["properties"][BATCH]["items"]["anyOf"]
        envelope = {**batch, "required": [BATCH], "properties": {**batch["properties"], BATCH: {"type": "array"}}}
        self._envelope = self._validator(envelope)
        self._items: dict[str, Draft202012Validator] = {}
        for branch in items:
            for kind in self._type_enum(branch) or ():
                self._items[kind] = self._validator({"allOf": [branch, schemas[kind]]})
        self.batch_types = tuple(self._items)

    @classmethod
    def from_path(cls, path: Path | None = None) -> PipelinesValidator:
        """Load the spec copy (default: ``tests/contract/customerio-pipelines-openapi.json``)."""
        return cls(read_spec(path))

    # -- schema plumbing
    def _validator(self, schema: Mapping[str, Any]) -> Draft202012Validator:
        return Draft202012Validator({"components": self._components, **schema}, format_checker=self._checker)

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self._components["schemas"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def _type_enum(self, node: Any, depth: int = 0) -> set[str] | None:
        """The ``type`` values a branch admits (None: any): ``allOf`` narrows, ``anyOf``/``oneOf`` widen.

        Narrowing matters: every call's common fields list all six types, the call's own part one.
        """
        node = self._resolve(node)
        if not isinstance(node, dict) or depth > 8:
            return None
        enum = node.get("properties", {}).get("type", {}).get("enum")
        admitted: set[str] | None = set(enum) if enum else None
        for part in node.get("allOf", []):
            found = self._type_enum(part, depth + 1)
            if found is not None:
                admitted = found if admitted is None else admitted & found
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [self._type_enum(part, depth + 1) for part in node[key]]
                widened = None if None in options else set().union(*(o for o in options if o is not None))
                if widened is not None:
                    admitted = widened if admitted is None else admitted & widened
        return admitted

    # -- public checks
    def call_errors(self, kind: str, call: Any) -> list[OpError]:
        """Every reason strict mode would refuse ``call`` as a ``POST /<kind>`` body (its size aside)."""
        if kind not in self._calls:
            return [OpError("not_found", "", f"the spec has no /{kind} call; it has {list(self.call_types)}")]
        if not isinstance(call, dict):
            return [OpError("invalid_type", "", f"a call must be a JSON object, got {json_type(call)}")]
        return self._content_errors(self._calls[kind], kind, with_type(kind, call))

    def batch_errors(self, body: Any, *, content: bool = True) -> list[OpError]:
        """Envelope errors (``batch_index`` None), else each item's errors tagged with its index.

        An item over :data:`CALL_MAX_BYTES` yields a single ``payload_too_large``. With
        ``content=False`` only the envelope, the items' ``type`` and their sizes are checked.
        """
        if not isinstance(body, dict):
            return [OpError("invalid_type", "", f"the body must be a JSON object, got {json_type(body)}")]
        structural = [e for err in self._envelope.iter_errors(body) for e in _describe(err)]
        if structural:
            return structural
        errors: list[OpError] = []
        for index, item in enumerate(body[BATCH]):
            for err in self._item_errors(item, content=content):
                err.batch_index = index
                errors.append(err)
        return errors

    def request_errors(self, kind: str, body: Any, *, size: int | None = None, content: bool = True) -> list[OpError]:
        """Every reason strict mode would refuse ``body`` posted to ``/<kind>``, its size limit first.

        ``size`` is the body's bytes as sent (default: its compact JSON).
        """
        size = call_size(body) if size is None else size
        limit = BATCH_MAX_BYTES if kind == BATCH else CALL_MAX_BYTES
        if size > limit:
            return [OpError("payload_too_large", "", f"the body is {size} bytes; /{kind} takes at most {limit}")]
        if kind == BATCH:
            return self.batch_errors(body, content=content)
        return self.call_errors(kind, body) if content else []

    def validate_request(self, url: str, body: Any, *, size: int | None = None) -> None:
        """Raise :class:`PipelinesValidationError` unless strict mode would accept ``body`` at ``url``.

        ``url`` may be a full URL or a path; its last segment names the endpoint. ``body`` is parsed
        JSON; ``size`` its bytes as sent, when known.
        """
        kind = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        errors = self.request_errors(kind, body, size=size)
        if errors:
            raise PipelinesValidationError(f"/{kind}", errors)

    # -- internals
    def _item_errors(self, item: Any, *, content: bool) -> list[OpError]:
        if not isinstance(item, dict):
            return [OpError("invalid_type", "", f"a batch item must be a JSON object, got {json_type(item)}")]
        kind = item.get("type")
        if kind not in self._items:
            allowed = list(self.batch_types)
            if "type" not in item:
                return [OpError("required", "type", f"a batch item must say its 'type', one of {allowed}")]
            return [OpError("invalid_value", "type", f"a batch carries {allowed}, not {kind!r}")]
        size = call_size(item)
        if size > CALL_MAX_BYTES:
            return [OpError("payload_too_large", "", f"the call is {size} bytes; each takes at most {CALL_MAX_BYTES}")]
        return self._content_errors(self._items[kind], kind, item) if content else []

    def _content_errors(self, validator: Draft202012Validator, kind: str, call: dict[str, Any]) -> list[OpError]:
        # A batch item meets two shapes that often say the same thing: report each problem once.
        errors: list[OpError] = []
        seen: set[tuple[str, str]] = set()
        for err in sorted(validator.iter_errors(call), key=lambda e: [str(p) for p in e.absolute_path]):
            for found in _describe(err):
                if (found.field, found.reason) not in seen:
                    seen.add((found.field, found.reason))
                    errors.append(found)
        taken = {e.field for e in errors}
        errors.extend(e for e in _sandbox_errors(kind, call) if e.field not in taken)
        return errors


def _sandbox_errors(kind: str, call: Mapping[str, Any]) -> list[OpError]:
    """The checks beyond the spec listed in the module docstring (formats aside)."""
    errors: list[OpError] = []
    if kind == "alias":
        errors.extend(
            OpError("required", key, "must not be empty")
            for key in ("userId", "previousId")
            if isinstance(call.get(key), str) and not _text(call[key])
        )
    if kind in _PERSON_CALLS:
        traits = call.get("traits")
        email = traits.get("email") if kind == "identify" and isinstance(traits, dict) else None
        if not (_text(call.get("userId")) or _text(call.get("anonymousId")) or _text(email)):
            also = " (or, for identify, traits.email)" if kind == "identify" else ""
            errors.append(OpError("required", "userId", f"a call names its person by a non-empty userId{also}"))
    if kind == "group" and not _text(call.get("groupId")):
        errors.append(OpError("required", "groupId", "a group call names its group by a non-empty groupId"))
    return errors
