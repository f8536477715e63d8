"""Derive the Track API v2 request schema used by the contract tests and the local sandbox.

Usage::

    python tests/contract/derive_schema.py path/to/customer-io-track-api-openapi.json [output.json]

The OpenAPI document is large (~0.5 MB) and full of prose, examples and vendor extensions that a
validator does not need. Keeping only the structural keywords of the two request bodies we send
(``POST /api/v2/entity`` and ``POST /api/v2/batch``) gives a small, reviewable file that tests can
load without ever touching the original document. This script is not run by the test suite; run
it by hand when Customer.io publishes a new spec, then review the diff of the generated file.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DRAFT = "https://json-schema.org/draft/2020-12/schema"

COMMENT = (
    "Derived from Customer.io's published Track API OpenAPI (docs.customer.io/files/journeys-track.json, "
    "as mirrored in api-evangelist/customer-io openapi/_original/customer-io-track-api-openapi.json "
    "@ 3662772b); regenerate with tests/contract/derive_schema.py"
)

# Keywords that carry structure or validation meaning; everything else (prose, examples,
# vendor extensions, OpenAPI-only keywords such as ``discriminator``) is dropped.
KEEP = frozenset(
    {
        "type",
        "properties",
        "required",
        "oneOf",
        "anyOf",
        "allOf",
        "enum",
        "const",
        "items",
        "additionalProperties",
        "format",
        "$ref",
    }
)
SCHEMA_LISTS = frozenset({"oneOf", "anyOf", "allOf"})
COMPONENT_PREFIX = "#/components/schemas/"

# OpenAPI path -> name of the entry point in ``$defs``.
ENTRY_POINTS = {
    "/api/v2/entity": "entity_request",
    "/api/v2/batch": "batch_request",
}

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "track_v2.schema.json"


def _require_the_one_property(branch: Any) -> Any:
    """Spec quirk: `v2_cio_relationships` offers id / email / cio_id branches that require nothing.

    Any object then matches all three, so the `oneOf` can never hold and every relationship sent
    from the object side would be rejected. The evident intent (as in `person_common.identifiers`,
    whose branches do require their one key) is "exactly one of these identifiers": a branch that
    is an object with a single property and no `required` is read as requiring that property.
    """
    if (
        isinstance(branch, dict)
        and branch.get("type") == "object"
        and "required" not in branch
        and len(branch.get("properties", {})) == 1
    ):
        return {**branch, "required": list(branch["properties"])}
    return branch


class Deriver:
    """Walks schema nodes, keeping structural keywords and collecting referenced components."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components
        self.dropped: Counter[str] = Counter()
        self.pending: list[str] = []
        self.seen: set[str] = set()

    def ref(self, target: str) -> str:
        if not target.startswith(COMPONENT_PREFIX):
            raise SystemExit(f"unsupported $ref {target!r}: only {COMPONENT_PREFIX}* can be rewritten")
        name = target[len(COMPONENT_PREFIX) :]
        if name not in self.components:
            raise SystemExit(f"$ref {target!r} points at a missing component")
        if name not in self.seen:
            self.seen.add(name)
            self.pending.append(name)
        return f"#/$defs/{name}"

    def clean(self, node: Any) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise SystemExit(f"unexpected schema node: {node!r}")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key not in KEEP:
                self.dropped[key] += 1
                continue
            if key == "$ref":
                out[key] = self.ref(value)
            elif key == "properties":
                out[key] = {name: self.clean(sub) for name, sub in value.items()}
            elif key in SCHEMA_LISTS:
                out[key] = [self.clean(sub) for sub in value]
                if key == "oneOf":
                    out[key] = [_require_the_one_property(branch) for branch in out[key]]
            elif key in {"items", "additionalProperties"}:
                out[key] = self.clean(value)
            else:  # type, required, enum, const, format: plain values
                out[key] = value
        return out

    def drain(self) -> dict[str, Any]:
        defs: dict[str, Any] = {}
        while self.pending:
            name = self.pending.pop()
            defs[name] = self.clean(self.components[name])
        return defs


def request_schema(spec: dict[str, Any], path: str) -> Any:
    try:
        return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    except KeyError as exc:
        raise SystemExit(f"{path}: no POST application/json request body in the spec ({exc})") from exc


def derive(spec: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    deriver = Deriver(spec["components"]["schemas"])
    entries = {name: deriver.clean(request_schema(spec, path)) for path, name in ENTRY_POINTS.items()}
    # The spec lists no required keys for the batch body, so `{}` would pass; the API is only
    # meaningful with a `batch` array, and a request without one is a client bug we want caught.
    batch = entries["batch_request"]
    batch["required"] = sorted(set(batch.get("required", [])) | {"batch"})
    defs = deriver.drain()
    clash = set(defs) & set(entries)
    if clash:
        raise SystemExit(f"component names clash with entry points: {sorted(clash)}")
    all_defs = {**entries, **dict(sorted(defs.items()))}
    schema = {
        "$schema": DRAFT,
        "$comment": COMMENT,
        # The root accepts either request body; callers normally validate against one entry point.
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in ENTRY_POINTS.values()],
        "$defs": all_defs,
    }
    return schema, deriver.dropped


def main(argv: list[str]) -> int:
    if len(argv) not in {2, 3}:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    output = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUTPUT
    schema, dropped = derive(spec)
    Draft202012Validator.check_schema(schema)
    output.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {output} ({len(schema['$defs'])} $defs)", file=sys.stderr)
    print("dropped keywords: " + ", ".join(f"{k} x{n}" for k, n in sorted(dropped.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
