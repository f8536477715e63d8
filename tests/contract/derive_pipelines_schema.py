"""Derive the Data Pipelines request schema the Pipelines tests validate against.

Usage::

    python tests/contract/derive_pipelines_schema.py path/to/customer-io-pipelines-api-openapi.json [output.json]

The same reduction as ``derive_schema.py`` (structural keywords only, ``$ref`` rewritten to
``$defs``), for the calls the bridge makes on ``CUSTOMERIO_API=pipelines``: ``POST /identify``,
``/track``, ``/group`` and ``/batch``. Two readings of the published spec, as issue 12 describes:

* every ``oneOf`` becomes ``anyOf``: the "Known User" and "Anonymous User" branches do not
  exclude each other (the anonymous one does not forbid ``userId``), so a call with a ``userId``
  would match both and fail a strict ``oneOf``;
* a direct call's ``type`` is set by its endpoint, yet the schemas require it: validators add it
  from the path before validating (the tests do; this script does not change the schemas).

Not part of the test run: run it by hand when Customer.io publishes a new spec, then review the
diff of the generated file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from derive_schema import DRAFT, Deriver, request_schema
from jsonschema import Draft202012Validator

COMMENT = (
    "Derived from Customer.io's published Data Pipelines API OpenAPI, as mirrored in "
    "api-evangelist/customer-io openapi/_original/customer-io-pipelines-api-openapi.json @ 3662772b "
    "(blob b994a17f); oneOf read as anyOf; regenerate with tests/contract/derive_pipelines_schema.py"
)
ENTRY_POINTS = {"/identify": "identify_call", "/track": "track_call", "/group": "group_call", "/batch": "batch_request"}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "pipelines_v1.schema.json"


def any_of(node: Any) -> Any:
    """Every `oneOf` of the derived schema as `anyOf` (see the module docstring)."""
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): any_of(value) for key, value in node.items()}
    if isinstance(node, list):
        return [any_of(value) for value in node]
    return node


def derive(spec: dict[str, Any]) -> dict[str, Any]:
    deriver = Deriver(spec["components"]["schemas"])
    entries = {name: deriver.clean(request_schema(spec, path)) for path, name in ENTRY_POINTS.items()}
    entries["batch_request"]["required"] = ["batch"]  # as for Track: `{}` is a client bug, not a batch
    defs = deriver.drain()
    if set(defs) & set(entries):
        raise SystemExit(f"component names clash with entry points: {sorted(set(defs) & set(entries))}")
    return any_of(
        {"$schema": DRAFT, "$comment": COMMENT, "$defs": {**entries, **dict(sorted(defs.items()))}},
    )


def main(argv: list[str]) -> int:
    if len(argv) not in {2, 3}:
        print(__doc__, file=sys.stderr)
        return 2
    schema = derive(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    Draft202012Validator.check_schema(schema)
    output = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUTPUT
    output.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {output} ({len(schema['$defs'])} $defs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
