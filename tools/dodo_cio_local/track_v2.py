"""The Customer.io Track API v2 as the emulator reads it: published limits, paths, error shapes.

Why a module of its own: the validator (`track_validator.py`), the sandbox's HTTP answers
(`sandbox.py`, `sandbox_http.py`) and the request summaries (`sandbox_records.py`) all speak in
these terms, and the contract tests check the bridge against the same numbers. The numbers come
from Customer.io's published Track API reference; ``tests/contract/README.md`` says where.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

ENTITY_PATH = "/api/v2/entity"
BATCH_PATH = "/api/v2/batch"
REGION_PATH = "/api/v1/accounts/region"
_SCHEMA_RELATIVE = Path("tests/contract/track_v2.schema.json")


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


def default_schema_path() -> Path:
    """Locate ``tests/contract/track_v2.schema.json`` from this file's location.

    The schema is test data kept in the repository (see ``tests/contract/README.md``); the
    sandbox runs from an editable install, so walking up from this module finds the checkout.
    A copy next to this module is accepted too, for a packaged install.
    """
    try:
        return in_checkout(_SCHEMA_RELATIVE, "schema_path= (regenerate it with tests/contract/derive_schema.py)")
    except FileNotFoundError:
        packaged = Path(__file__).resolve().with_name("track_v2.schema.json")
        if packaged.is_file():
            return packaged
        raise


def in_checkout(relative: Path, instead: str) -> Path:
    """``relative`` (a repository path) found by walking up from this module, as an editable install runs.

    The sandbox's schema and spec are test data kept in the repository, not in the package.
    ``instead`` says what to pass when it is not there.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / relative
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"cannot find {relative} in any parent of {here.parent}; "
        f"run from a checkout of the repository or pass {instead}"
    )


def op_size(op: Any) -> int:
    """Bytes of ``op`` as compact UTF-8 JSON: the smallest form a client could send it in."""
    return len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode())


def json_type(value: Any) -> str:
    """The JSON Schema name of a parsed value's type, so an error can say what was sent."""
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


def body_limit(path: str) -> int:
    """The size a whole request body must stay under: ``/entity``'s, else ``/batch``'s."""
    return ENTITY_MAX_BYTES if path == ENTITY_PATH else BATCH_MAX_BYTES


def too_large_body(size: int, path: str) -> dict[str, Any]:
    """The 413 body for a request over its endpoint's limit (``/entity`` or ``/batch``)."""
    message = f"request body is {size} bytes; it must be under {body_limit(path)}"
    return {"errors": [{"reason": "payload_too_large", "field": "", "message": message}]}
