"""Customer.io's Data Pipelines API as the emulator reads it: limits, paths, and the published spec.

Why a module of its own: the validator (``pipelines_validator.py``), the sandbox's Pipelines
endpoints (``sandbox_pipelines.py``) and the contract tests must agree on the numbers and on how
the spec is read, and issue 12 names two places where it cannot be read literally:

* the "Known User" / "Anonymous User" ``oneOf``: the anonymous branch does not forbid ``userId``
  (and the group branches require nothing), so a call with a ``userId`` can match both and fail a
  strict ``oneOf``. :func:`read_spec` turns exactly those ``oneOf`` into ``anyOf``; every other
  ``oneOf`` is kept as published.
* a direct call's ``type``: the endpoint sets it, yet the schemas list it (the track ones require
  it). :func:`with_type` adds it from the path before a direct call is validated.

The spec is the verbatim copy in ``tests/contract/customerio-pipelines-openapi.json`` (its source is
in ``tests/contract/README.md``); nothing outside the repository is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from dodo_cio_local.track_v2 import OpError, in_checkout, op_size

# The spec's info section: "A request is limited to 32KB. A batch request is limited to 500KB
# total and 32KB per call in the request." KB read as 1,000 bytes, the stricter reading, so a
# client that passes here fits either; measured on the body as sent (a batch item: compact JSON).
CALL_MAX_BYTES: Final = 32_000
BATCH_MAX_BYTES: Final = 500_000

PREFIX: Final = "/v1"
BATCH: Final = "batch"
STRICT_HEADER: Final = "X-Strict-Mode"
USER_BRANCHES: Final = frozenset({"Known User", "Anonymous User"})
_SPEC_RELATIVE: Final = Path("tests/contract/customerio-pipelines-openapi.json")


class PipelinesValidationError(ValueError):
    """Raised by ``PipelinesValidator.validate_*``; lists every reason the call would be refused."""

    def __init__(self, endpoint: str, errors: list[OpError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"Pipelines {endpoint} would refuse this in strict mode ({len(errors)} error(s)):\n{lines}")


def default_spec_path() -> Path:
    """Locate the spec copy from this file's location (the sandbox runs from an editable install)."""
    return in_checkout(_SPEC_RELATIVE, "pipelines_spec_path=")


def relax_user_one_of(node: Any) -> Any:
    """``node`` with every ``oneOf`` that offers a "Known User" and an "Anonymous User" branch as ``anyOf``.

    Only those: issue 12 names them, and a ``oneOf`` that is not ambiguous keeps its meaning.
    """
    if isinstance(node, list):
        return [relax_user_one_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: relax_user_one_of(value) for key, value in node.items()}
    branches = out.get("oneOf")
    titles = {b.get("title") for b in branches if isinstance(b, dict)} if isinstance(branches, list) else set()
    if USER_BRANCHES.issubset(titles):
        out["anyOf"] = out.pop("oneOf")
    return out


def read_spec(path: Path | None = None) -> dict[str, Any]:
    """The spec copy with the ``oneOf`` quirk read as issue 12 asks (:func:`relax_user_one_of`)."""
    spec: dict[str, Any] = json.loads((path or default_spec_path()).read_text(encoding="utf-8"))
    return dict(relax_user_one_of(spec))


def request_schemas(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"identify": schema, ..., "batch": schema}``: each POST path's JSON request body, by its name."""
    out: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        body = item.get("post", {}).get("requestBody", {}).get("content", {}).get("application/json", {})
        if "schema" in body:
            out[path.strip("/")] = body["schema"]
    if BATCH not in out:
        raise ValueError("the spec has no POST /batch request body")
    return out


def is_pipelines_path(path: str) -> bool:
    """Whether a request path is one of the Pipelines endpoints' (under ``/v1/``)."""
    return path.startswith(PREFIX + "/")


def call_kind(path: str) -> str:
    """The call a ``/v1/...`` path names (``/v1/track`` -> ``track``)."""
    return path.removeprefix(PREFIX + "/").rstrip("/")


def with_type(kind: str, call: Any) -> Any:
    """A direct call as the endpoint sees it: its ``type`` is the path's unless the body names one."""
    return {"type": kind, **call} if isinstance(call, dict) else call


def call_size(call: Any) -> int:
    """Bytes of ``call`` as compact UTF-8 JSON: how a batch item is measured against the per-call limit."""
    return op_size(call)


def strict(headers: Mapping[str, str]) -> bool:
    """Whether the request asked for strict mode (``X-Strict-Mode: 1``; header names are case-blind)."""
    return any(k.lower() == STRICT_HEADER.lower() and v.strip() == "1" for k, v in headers.items())
