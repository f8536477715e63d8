"""Customer.io Track limits, applied before sending so that an oversize value never fails a request.

What does not fit is truncated (strings, event names) or dropped (names too long, values that are
not strings, attributes past the 300th), each with a warning the caller logs. An op that cannot be
made valid at all (identifier too long) is reported as unfixable; the caller parks it as a
permanent failure rather than dropping it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

MAX_OP_BYTES: Final = 32 * 1024  # per /entity request and per /batch item
MAX_BATCH_BYTES: Final = 500 * 1000  # the spec says "500 KB"; stay on the safe side of both readings
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1000
MAX_NAME_BYTES: Final = 150
MAX_EVENT_NAME_BYTES: Final = 100
MAX_ATTRIBUTES: Final = 300
MAX_IDENTIFIER_BYTES: Final = 150

_ELLIPSIS = "…"


@dataclass(slots=True)
class FitResult:
    op: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    unfixable: str | None = None


def encoded_size(value: Any) -> int:
    """Bytes as the client will send them (compact separators, UTF-8)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int, marker: str = "") -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(marker.encode("utf-8"))
    return raw[: max(budget, 0)].decode("utf-8", errors="ignore") + marker


def _fit_value(name: str, value: Any, warnings: list[str]) -> tuple[bool, Any]:
    if encoded_size(value) <= MAX_ATTRIBUTE_VALUE_BYTES:
        return True, value
    if isinstance(value, str):
        # Leave room for the JSON quotes and escapes: shrink until the encoded form fits.
        budget = MAX_ATTRIBUTE_VALUE_BYTES - 2
        cut = truncate_utf8(value, budget, _ELLIPSIS)
        while encoded_size(cut) > MAX_ATTRIBUTE_VALUE_BYTES and budget > 0:
            budget -= max(1, (encoded_size(cut) - MAX_ATTRIBUTE_VALUE_BYTES) // 6)  # \u0001 is 6 bytes
            cut = truncate_utf8(value, budget, _ELLIPSIS)
        warnings.append(f"attribute {name!r} truncated to {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        return True, cut
    warnings.append(f"attribute {name!r} dropped: value over {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return False, None


def fit_op(op: dict[str, Any]) -> FitResult:
    """Return a copy of `op` that fits every per-op limit, with what was changed."""
    out = dict(op)
    warnings: list[str] = []

    identifiers = out.get("identifiers")
    if isinstance(identifiers, dict):
        for key, value in identifiers.items():
            if isinstance(value, str) and len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
                return FitResult(out, warnings, f"identifier {key!r} is over {MAX_IDENTIFIER_BYTES} bytes")

    name = out.get("name")
    if isinstance(name, str) and len(name.encode("utf-8")) > MAX_EVENT_NAME_BYTES:
        out["name"] = truncate_utf8(name, MAX_EVENT_NAME_BYTES)
        warnings.append(f"event name truncated to {MAX_EVENT_NAME_BYTES} bytes")

    attrs = out.get("attributes")
    if isinstance(attrs, dict):
        kept: dict[str, Any] = {}
        for key, value in attrs.items():
            if len(str(key).encode("utf-8")) > MAX_NAME_BYTES:
                warnings.append(f"attribute name over {MAX_NAME_BYTES} bytes dropped")
                continue
            if len(kept) >= MAX_ATTRIBUTES:
                warnings.append(f"attributes past the {MAX_ATTRIBUTES}th dropped")
                break
            ok, fitted = _fit_value(str(key), value, warnings)
            if ok:
                kept[str(key)] = fitted
        out["attributes"] = kept
        # Still too big as a whole: drop the largest attributes first, they carry the least signal.
        # `>=`: an /entity body must be *under* 32 KiB, so exactly 32768 bytes is already too big.
        while encoded_size(out) >= MAX_OP_BYTES and kept:
            largest = max(kept, key=lambda k: encoded_size(kept[k]))
            del kept[largest]
            warnings.append(f"attribute {largest!r} dropped to keep the op under {MAX_OP_BYTES} bytes")

    if encoded_size(out) >= MAX_OP_BYTES:
        return FitResult(out, warnings, f"op is over {MAX_OP_BYTES} bytes even without attributes")
    return FitResult(out, warnings)
