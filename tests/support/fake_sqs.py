"""In-memory SQS for unit tests: what was sent where and which calls fail (the retry path), a queue the
peeking commands release again (`Releasing`), and the body of a dead-lettered delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dodo_cio.delivery.parking import LastError, ParkedDelivery


def parked_body(webhook_id: str, email: str, *, reason: str = "HTTP 400: attributes invalid", attempts: int = 3) -> str:
    """A dead-lettered delivery of a payment.succeeded whose one op holds `email` (which no listing may show)."""
    return ParkedDelivery(
        webhook_id=webhook_id,
        event_type="payment.succeeded",
        event_time=1_700_000_000,
        first_seen=1_700_000_005,
        attempts=attempts,
        ops=[{"type": "person", "identifiers": {"id": "cus_1"}, "action": "identify", "attributes": {"email": email}}],
        last_error=LastError(kind="permanent", reason=reason, status=400, at=1_700_000_100),
        customer_id="cus_1",
    ).to_json()


@dataclass(kw_only=True)
class Releasing:
    """What the peeking commands need of a queue: hidden messages shown again by a 0 visibility timeout."""

    hidden: set[str] = field(default_factory=set)
    released: list[str] = field(default_factory=list)

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            assert entry["VisibilityTimeout"] == 0
            message_id = entry["ReceiptHandle"].removeprefix("rh-")
            self.hidden.discard(message_id)
            self.released.append(message_id)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class FakeSqs:
    def __init__(self, *, failing_queues: Sequence[str] = (), visibility_fails: bool = False) -> None:
        self.failing_queues = set(failing_queues)  # queue URLs whose sends fail
        self.visibility_fails = visibility_fails
        self.sent: list[dict[str, Any]] = []
        self.visibility: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs["QueueUrl"] in self.failing_queues:
            raise RuntimeError("SQS is unavailable")
        self.sent.append(kwargs)
        return {"MessageId": f"new-{len(self.sent)}"}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        if self.visibility_fails:
            raise RuntimeError("receipt handle expired")
        self.visibility.append(kwargs)
        return {}

    def sent_to(self, url: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["QueueUrl"] == url]

    def delay_for(self, receipt_handle: str, queue_url: str) -> int:
        """The visibility timeout set on one message of `queue_url` (its retry delay)."""
        (call,) = [c for c in self.visibility if c["ReceiptHandle"] == receipt_handle]
        assert call["QueueUrl"] == queue_url
        return int(call["VisibilityTimeout"])
