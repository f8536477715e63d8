"""An in-memory SQS for the retry path's unit tests: what was sent where, and which calls fail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
