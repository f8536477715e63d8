"""Dodo bodies as the mapping sees them, and the checks every mapped event passes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dodo_cio.mapping.mapper import MappingConfig, Op, map_event
from dodo_cio.receiving.models import Customer, DodoEvent, parse_envelope, parse_json, parse_payload

WEBHOOK_ID = "msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC0"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def unix(text: str, unit: timedelta = timedelta(seconds=1)) -> int:
    """Independent of dodo_cio.platform.times: the ISO instant in whole `unit`s since the epoch (floored)."""
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // unit


def event_of(doc: dict[str, Any], webhook_id: str = WEBHOOK_ID) -> DodoEvent:
    """The body `doc` as received: serialized, parsed and typed."""
    envelope = parse_envelope(parse_json(json.dumps(doc).encode("utf-8")))
    payload = parse_payload(envelope)
    assert payload is not None
    return DodoEvent(webhook_id, envelope, payload)


def ops_of(doc: dict[str, Any], config: MappingConfig | None = None, webhook_id: str = WEBHOOK_ID) -> list[Op]:
    return map_event(event_of(doc, webhook_id), config or MappingConfig())


def customer(**fields: Any) -> Customer:
    """Dodo's customer object `cus_maya` with `fields`, parsed."""
    return Customer.parse({"customer_id": "cus_maya", **fields}, "data.customer")


def customer_ref(data: dict[str, Any], event_type: str = "credit.added") -> dict[str, Any]:
    """A body of the families that carry only a customer id (credit, dunning, entitlements...)."""
    return {"business_id": "bus_1", "type": event_type, "timestamp": "2026-10-14T09:21:47.250Z", "data": data}


def json_len(value: Any) -> int:
    """Bytes as sent on the wire: compact JSON, UTF-8, non-ASCII not escaped."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def no_bare_amount(out: dict[str, Any]) -> None:
    assert "amount" not in out, "a bare `amount` means something different in every event"


def money_is_complete(out: dict[str, Any]) -> None:
    """Every amount comes as four attributes, and no number prints with a pointless `.0`."""
    for key in [k for k in out if k.endswith("_minor")]:
        prefix = key.removesuffix("_minor")
        assert {prefix, f"{prefix}_currency", f"{prefix}_display"} <= set(out), prefix
        major = out[prefix]
        assert isinstance(major, int | float) and not isinstance(major, bool)
        assert not (isinstance(major, float) and major.is_integer()), f"{prefix} prints as {major!r}"
