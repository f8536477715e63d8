"""Peeking at an SQS queue without consuming it: `dodo-cio dlq` and `reprocess --dry-run`.

SQS has no peek, and both the dead-letter queue and the quarantine queue hold what nothing else
keeps, so a listing receives, looks and puts every message back at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dodo_cio_cli.aws_calls import PEEK_VISIBILITY_SECONDS, OperatorError, call_aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef


def peek_messages(
    sqs: SQSClient,
    queue_url: str,
    *,
    limit: int = 100,
    what: str = "the queue",
    visibility_timeout: int = PEEK_VISIBILITY_SECONDS,
    wait_seconds: int = 1,
) -> list[Mapping[str, Any]]:
    """Up to `limit` messages of a queue, left on it: SQS has no real peek.

    Each message is received (hidden for `visibility_timeout` so paging does not return it twice)
    and made visible again at once when the listing ends. Listing therefore hides messages for a
    moment and bumps their ApproximateReceiveCount, which is harmless on the DLQ and the quarantine
    queue: nothing consumes them and neither has a redrive policy of its own (a redrive or
    reprocess started during a listing may miss the messages hidden at that moment).
    """
    if limit < 1:
        raise OperatorError(f"--limit must be at least 1, not {limit}")
    seen: dict[str, Mapping[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            got = call_aws(
                f"reading {what}",
                lambda: sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    VisibilityTimeout=visibility_timeout,
                    WaitTimeSeconds=wait_seconds,
                    MessageAttributeNames=["All"],
                    # The successor of the deprecated AttributeNames: SentTimestamp,
                    # ApproximateReceiveCount, DeadLetterQueueSourceArn.
                    MessageSystemAttributeNames=["All"],
                ),
                lambda code, message: _queue_errors(code, message, what),
            )
            messages = got.get("Messages", [])
            fresh = 0
            for message in messages:
                handles.append(message["ReceiptHandle"])
                if message["MessageId"] not in seen:
                    seen[message["MessageId"]] = message
                    fresh += 1
            if fresh == 0:  # empty, or only repeats (the peek outlived its visibility timeout)
                break
    finally:
        release_messages(sqs, queue_url, handles)
    return list(seen.values())[:limit]


def release_messages(sqs: SQSClient, queue_url: str, handles: Sequence[str]) -> None:
    """Make peeked messages visible again; any that fail come back by themselves after the timeout."""
    for start in range(0, len(handles), 10):
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(start + i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + 10])
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except Exception:  # noqa: BLE001, S112 - the visibility timeout releases them anyway
            continue


def _queue_errors(code: str, message: str, what: str = "the dead-letter queue") -> str | None:
    if code in {"QueueDoesNotExist", "NonExistentQueue"}:
        return f"{what} does not exist (check the URL and the region, or pass --stack)"
    return None
