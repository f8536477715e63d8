"""Parked deliveries and the SQS records that carry them, for the retry path's unit tests."""

from __future__ import annotations

from typing import Any

from dodo_cio.delivery.parking import LastError, ParkedDelivery
from dodo_cio.retry.verdicts import SqsRecord
from support.track_ops import event_op

NOW = 1_800_000_000  # the wall clock the retry tests run at


def parked(
    tag: str, n_ops: int = 1, *, attempts: int = 1, first_seen: float = NOW - 600, kind: str = "transient"
) -> ParkedDelivery:
    """Message `tag`: `n_ops` payment.succeeded events with ids op_<tag><i>, parked after a 503."""
    seen = int(first_seen)
    return ParkedDelivery(
        webhook_id=f"msg_{tag}",
        event_type="payment.succeeded",
        event_time=seen - 5,
        first_seen=seen,
        attempts=attempts,
        ops=[event_op(f"cus_{tag}{i}", event_id=f"op_{tag}{i}", attributes={"plan": "pro"}) for i in range(n_ops)],
        last_error=LastError(kind=kind, reason="HTTP 503", status=503, at=seen + 1),
        customer_id=f"cus_{tag}",
    )


def record(tag: str, body: ParkedDelivery | str, receive_count: int = 1) -> SqsRecord:
    """The record of message id-<tag>, receipt handle rh-<tag>."""
    text = body if isinstance(body, str) else body.to_json()
    return SqsRecord(message_id=f"id-{tag}", receipt_handle=f"rh-{tag}", body=text, receive_count=receive_count)


def lambda_record(tag: str, body: ParkedDelivery | str, receive_count: int = 1) -> dict[str, Any]:
    """The same record as Lambda's SQS event delivers it (the fields the retry handler reads)."""
    sqs = record(tag, body, receive_count)
    return {
        "messageId": sqs.message_id,
        "receiptHandle": sqs.receipt_handle,
        "body": sqs.body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
    }
