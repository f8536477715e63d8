"""The parked-message format: one SQS message per webhook whose ops were not all delivered.

It holds everything needed to finish the delivery later without Dodo: the ops themselves
(already mapped and fitted), the webhook id, the Dodo event time and type, when the bridge first
saw it, how many delivery attempts were made, and the last error with whether it is permanent.
The format is versioned and documented in the README ("Parked message format").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from dodo_cio.platform.sqs import SqsSender, json_object

FORMAT_VERSION: Final = 1
ERROR_KINDS: Final = frozenset({"transient", "permanent", "config"})


class ParkedFormatError(ValueError):
    """An SQS body that is not a parked delivery this version understands."""


@dataclass(frozen=True, slots=True)
class LastError:
    kind: str  # transient | permanent | config
    reason: str
    status: int | None = None  # HTTP status from Customer.io, None when no answer arrived
    at: int = 0  # Unix seconds
    retry_after: float | None = None

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"


@dataclass(frozen=True, slots=True)
class ParkedDelivery:
    webhook_id: str
    event_type: str
    event_time: int  # Unix seconds, Dodo's event time
    first_seen: int  # Unix seconds, when the bridge first received the webhook
    attempts: int  # delivery attempts made so far
    ops: list[dict[str, Any]]
    last_error: LastError
    customer_id: str | None = None  # for operators listing the queue; never an email
    version: int = field(default=FORMAT_VERSION)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["last_error"]["permanent"] = self.last_error.permanent
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ParkedDelivery:
        return cls.from_dict(json_object(text, ParkedFormatError))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ParkedDelivery:
        version = doc.get("version")
        if version != FORMAT_VERSION:
            raise ParkedFormatError(f"unsupported version {version!r}")
        err = doc.get("last_error")
        ops = doc.get("ops")
        if not isinstance(err, dict) or err.get("kind") not in ERROR_KINDS:
            raise ParkedFormatError("last_error.kind must be one of transient, permanent, config")
        if not isinstance(ops, list) or not ops or not all(isinstance(op, dict) for op in ops):
            raise ParkedFormatError("ops must be a non-empty list of objects")
        for key, kind in (("webhook_id", str), ("event_type", str), ("event_time", int), ("first_seen", int)):
            if not isinstance(doc.get(key), kind):
                raise ParkedFormatError(f"{key} is missing or of the wrong type")
        attempts = doc.get("attempts", 0)
        status = err.get("status")
        retry_after = err.get("retry_after")
        at = err.get("at")
        return cls(
            webhook_id=doc["webhook_id"],
            event_type=doc["event_type"],
            event_time=doc["event_time"],
            first_seen=doc["first_seen"],
            attempts=attempts if isinstance(attempts, int) else 0,
            ops=ops,
            last_error=LastError(
                kind=err["kind"],
                reason=str(err.get("reason", "")),
                status=status if isinstance(status, int) else None,
                at=at if isinstance(at, int) else 0,
                retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
            ),
            customer_id=doc.get("customer_id") if isinstance(doc.get("customer_id"), str) else None,
        )


def park(sqs: SqsSender, queue_url: str, parked: ParkedDelivery, *, delay_seconds: int = 0) -> str:
    """Queue the delivery durably; raises whatever SQS raises so the caller can answer 5xx."""
    response = sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=parked.to_json(),
        DelaySeconds=max(0, min(int(delay_seconds), 900)),
        MessageAttributes={
            "event_type": {"DataType": "String", "StringValue": parked.event_type},
            "error_kind": {"DataType": "String", "StringValue": parked.last_error.kind},
        },
    )
    return str(response.get("MessageId", ""))
