"""Track API v2 person ops, as the bridge sends them, for tests of the sandbox, the schema and the client."""

from __future__ import annotations

from typing import Any

ULID = "01HGW2N7YQ8ZK3M4P5R6S7T8V9"
TIMESTAMP = 1700000000


def event_op(
    customer_id: str = "cus_1",
    *,
    event_id: str = ULID,
    timestamp: int = TIMESTAMP,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `payment.succeeded` event addressed by customer id."""
    return {
        "type": "person",
        "identifiers": {"id": customer_id},
        "action": "event",
        "name": "payment.succeeded",
        "id": event_id,
        "timestamp": timestamp,
        "attributes": {"amount": 12.5} if attributes is None else attributes,
    }


def identify_op(identifiers: dict[str, str], attributes: dict[str, Any], *, timestamp: int) -> dict[str, Any]:
    return {
        "type": "person",
        "identifiers": identifiers,
        "action": "identify",
        "timestamp": timestamp,
        "attributes": attributes,
    }


EVENT = event_op()
