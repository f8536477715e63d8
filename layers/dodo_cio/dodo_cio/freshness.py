"""Profiles never go back to an older state: a per-person "last applied" event time.

Before an identify is sent (on the ingest path or, later, the retry path), the person's record in
the state table is moved forward to the identify's Dodo event time with a conditional update. If
a newer identify has already been admitted for that person, the condition fails and the older
identify is skipped; the event op itself is always delivered, with its original timestamp.
Customer.io also receives the identify `timestamp`, but its documentation does not promise to
discard older updates, so the guarantee rests on this check.

Ties (two events in the same second) are both admitted. Records expire after 30 days, longer
than any delivery can be delayed (Dodo 27.5 h, retry horizon 7 days, DLQ retention 14 days).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

RECORD_TTL_SECONDS: Final = 30 * 24 * 3600
KEY_PREFIX: Final = "fresh#"


class FreshnessGuard:
    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.time,
        ttl_seconds: int = RECORD_TTL_SECONDS,
    ) -> None:
        self._table = table_name
        self._factory = client_factory
        self._client: Any = None
        self._clock = clock
        self._ttl = ttl_seconds

    def admit(self, identifiers: Mapping[str, Any], timestamp: int) -> bool:
        """True when no newer identify was admitted for this person; raises if the table is unreachable."""
        if self._client is None:
            self._client = self._factory()
        key = KEY_PREFIX + json.dumps(dict(identifiers), sort_keys=True, separators=(",", ":"))
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET last_event_time = :t, expiration = :e",
                ConditionExpression="attribute_not_exists(last_event_time) OR last_event_time <= :t",
                ExpressionAttributeValues={
                    ":t": {"N": str(int(timestamp))},
                    ":e": {"N": str(int(self._clock()) + self._ttl)},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True


def identify_timestamp(op: Mapping[str, Any]) -> int | None:
    """The Dodo event time an identify op carries, or None for ops the guard does not apply to."""
    if op.get("action") != "identify" or not isinstance(op.get("identifiers"), dict):
        return None
    ts = op.get("timestamp")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None
