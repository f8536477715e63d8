"""Customer.io Track limits, applied before sending so that an oversize value never fails a request.

Customer.io documents different limits for profile data and for event data, so they are applied
apart:

* identify (a person's or an object's attributes): names up to 150 bytes, at most 300 attributes,
  each value up to 1000 bytes. A long text is truncated; a long identity value (an email, an id:
  truncated it would name someone else, or be an invalid address) and any other long value are
  dropped; an object value (metadata) is trimmed key by key, largest first, until it fits.
* event (and page/screen) data: no per-attribute limit in Track v2, only the op's.
* every op: under 32 KB as sent; the largest attributes go first when it is not.

Each change comes with a warning the caller logs. An op that cannot be made valid at all (a person
identifier too long, an op too big without its attributes) is reported as unfixable; the caller
parks it as a permanent failure rather than dropping it. Keys starting with `_` are the bridge's own
notes on an op (stripped before sending): they pass through as they are and do not count towards
the size. An object op's identifiers and relationships pass through as they are too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAX_OP_BYTES: Final = 32 * 1024  # per /entity request and per /batch item
MAX_BATCH_BYTES: Final = 500 * 1000  # the spec says "500 KB"; stay on the safe side of both readings
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1000  # identify only
MAX_NAME_BYTES: Final = 150  # identify only
MAX_EVENT_NAME_BYTES: Final = 100
MAX_ATTRIBUTES: Final = 300  # identify only
MAX_IDENTIFIER_BYTES: Final = 150

EVENT_ACTIONS: Final = frozenset({"event", "page", "screen"})
_IDENTITY_NAMES: Final = frozenset({"id", "email", "phone", "cio_id"})
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+")
_ELLIPSIS = "…"


@dataclass(slots=True)
class FitResult:
    op: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    unfixable: str | None = None


def encoded_size(value: Any) -> int:
    """Bytes as the client will send them (compact separators, UTF-8)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def wire_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """The op as Customer.io receives it: without the bridge's own notes (keys starting with "_").

    `None` attribute values stay: they are JSON null, which removes the attribute (documented for
    objects and relationships; shown for people by a v1 integration that reads the profile back).
    """
    try:  # keys are text; slicing spares a call per key, on a path every op takes twice
        return {k: v for k, v in op.items() if k[:1] != "_"}
    except TypeError:  # a key that is not text (a merchant's transform): as str() spells it
        return {k: v for k, v in op.items() if not str(k).startswith("_")}


def wire_json(op: Mapping[str, Any]) -> str:
    """The op as sent, as JSON text (compact, UTF-8 as is): what `encoded_size` measures."""
    return json.dumps(wire_op(op), separators=(",", ":"), ensure_ascii=False)


def wire_size(op: dict[str, Any]) -> int:
    """Bytes of the op as sent: without the bridge's own `_` keys."""
    return _utf8_size(wire_json(op))


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int, marker: str = "") -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(marker.encode("utf-8"))
    return raw[: max(budget, 0)].decode("utf-8", errors="ignore") + marker


def is_identity_value(name: str, value: str, identifiers: frozenset[str] = frozenset()) -> bool:
    """An attribute whose text names someone: an email, an id, a phone, or one of the op's identifiers.

    Truncating such a value would not shorten it but change it into another, invalid one.
    """
    return (
        name in _IDENTITY_NAMES
        or name.endswith(("_email", "_id"))
        or value in identifiers
        or _EMAIL.fullmatch(value.strip()) is not None
    )


def _truncate(value: str) -> str:
    # Leave room for the JSON quotes and escapes: shrink until the encoded form fits.
    budget = MAX_ATTRIBUTE_VALUE_BYTES - 2
    cut = truncate_utf8(value, budget, _ELLIPSIS)
    while encoded_size(cut) > MAX_ATTRIBUTE_VALUE_BYTES and budget > 0:
        budget -= max(1, (encoded_size(cut) - MAX_ATTRIBUTE_VALUE_BYTES) // 6)  # \u0001 is 6 bytes
        cut = truncate_utf8(value, budget, _ELLIPSIS)
    return cut


def _trim_object(name: str, value: dict[str, Any], warnings: list[str]) -> tuple[bool, Any]:
    """Drop the largest keys until the object fits: the rest of the metadata is still worth having."""
    kept = dict(value)
    dropped: list[str] = []
    while kept and encoded_size(kept) > MAX_ATTRIBUTE_VALUE_BYTES:
        largest = max(kept, key=lambda k: encoded_size({k: kept[k]}))
        del kept[largest]
        dropped.append(str(largest))
    if not kept:
        warnings.append(f"attribute {name!r} dropped: no key of it fits {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        return False, None
    warnings.append(f"attribute {name!r} trimmed to {MAX_ATTRIBUTE_VALUE_BYTES} bytes: keys {dropped} dropped")
    return True, kept


# A text of at most this many characters fits the value limit whatever it holds: JSON spends at most
# 6 bytes on a character (`\u0001`; 4 for one outside the BMP) and 2 on the quotes.
_SURELY_FITTING_CHARS: Final = (MAX_ATTRIBUTE_VALUE_BYTES - 2) // 6
_SURELY_FITTING_INT: Final = 10**100
_SURELY_SHORT_NAME: Final = MAX_NAME_BYTES // 4  # UTF-8 spends at most 4 bytes on a character


def surely_fits(value: Any) -> bool:
    """True when `value` is certain to encode within the value limit, told without encoding it.

    Almost every attribute is a short text, a number or a flag; encoding each one to measure it
    was the largest part of fitting an op (bench/RESULTS.md). Anything else is measured.
    """
    if isinstance(value, str):
        return len(value) <= _SURELY_FITTING_CHARS
    if isinstance(value, int):  # bool included
        return -_SURELY_FITTING_INT < value < _SURELY_FITTING_INT
    return value is None or isinstance(value, float)


def _fit_value(name: str, value: Any, identifiers: frozenset[str], warnings: list[str]) -> tuple[bool, Any]:
    if encoded_size(value) <= MAX_ATTRIBUTE_VALUE_BYTES:
        return True, value
    if isinstance(value, str) and is_identity_value(name, value, identifiers):
        warnings.append(f"attribute {name!r} dropped: an identity value over {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        return False, None
    if isinstance(value, str):
        warnings.append(f"attribute {name!r} truncated to {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        return True, _truncate(value)
    if isinstance(value, dict):
        return _trim_object(name, value, warnings)
    warnings.append(f"attribute {name!r} dropped: value over {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return False, None


def _fit_profile(attrs: dict[str, Any], identifiers: frozenset[str], warnings: list[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in attrs.items():
        name = key if isinstance(key, str) else str(key)
        if len(name) > _SURELY_SHORT_NAME and len(name.encode("utf-8")) > MAX_NAME_BYTES:
            warnings.append(f"attribute name over {MAX_NAME_BYTES} bytes dropped")
            continue
        if len(kept) >= MAX_ATTRIBUTES:
            warnings.append(f"attributes past the {MAX_ATTRIBUTES}th dropped")
            break
        if (value.__class__ is str and len(value) <= _SURELY_FITTING_CHARS) or surely_fits(value):
            kept[name] = value  # most attributes: short texts, numbers, flags
            continue
        ok, fitted = _fit_value(name, value, identifiers, warnings)
        if ok:
            kept[name] = fitted
    return kept


def fit_op(op: dict[str, Any]) -> FitResult:
    """Return a copy of `op` that fits every limit that applies to it, with what was changed."""
    out = dict(op)
    warnings: list[str] = []
    person = out.get("type") != "object"

    identifiers = out.get("identifiers")
    values: frozenset[str] = frozenset()
    if isinstance(identifiers, dict):
        values = frozenset(v for v in identifiers.values() if isinstance(v, str))
        for key, value in identifiers.items():
            if person and isinstance(value, str) and len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
                return FitResult(out, warnings, f"identifier {key!r} is over {MAX_IDENTIFIER_BYTES} bytes")

    name = out.get("name")
    if person and isinstance(name, str) and len(name.encode("utf-8")) > MAX_EVENT_NAME_BYTES:
        out["name"] = truncate_utf8(name, MAX_EVENT_NAME_BYTES)
        warnings.append(f"event name truncated to {MAX_EVENT_NAME_BYTES} bytes")

    attrs = out.get("attributes")
    kept: dict[str, Any] = {}
    if isinstance(attrs, dict):
        event = person and out.get("action") in EVENT_ACTIONS
        kept = dict(attrs) if event else _fit_profile(attrs, values, warnings)
        out["attributes"] = kept
    # Still too big as a whole: drop the largest attributes first, they carry the least signal.
    # `>=`: an /entity body must be *under* 32 KiB, so exactly 32768 bytes is already too big.
    text = wire_json(out)  # encoded once for an op that fits, the common case
    while _utf8_size(text) >= MAX_OP_BYTES and kept:
        largest = max(kept, key=lambda k: encoded_size(kept[k]))
        del kept[largest]
        warnings.append(f"attribute {largest!r} dropped to keep the op under {MAX_OP_BYTES} bytes")
        text = wire_json(out)

    if _utf8_size(text) >= MAX_OP_BYTES:
        return FitResult(out, warnings, f"op is over {MAX_OP_BYTES} bytes even without attributes")
    return FitResult(out, warnings)
