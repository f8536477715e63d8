"""The sample webhook bodies as the integration tests send them, and changed copies of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from support.samples import sample_paths

SAMPLES: dict[str, bytes] = {p.name: p.read_bytes() for p in sample_paths()}
PAYMENT = SAMPLES["payment.succeeded.json"]


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def changed(raw: bytes, change: Callable[[dict[str, Any]], Any]) -> bytes:
    """`raw` parsed, changed in place by `change`, and written again."""
    doc = json.loads(raw)
    change(doc)
    return body(doc)


def with_data(sample: str, **data: Any) -> bytes:
    """The sample `sample` with these `data` fields set."""
    return changed(SAMPLES[sample], lambda d: d["data"].update(data))
