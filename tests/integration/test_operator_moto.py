"""Operator functions against moto queues, and `replay` over real loopback HTTP.

The dead letters are put on the DLQ by the retry function's own code (`RetryProcessor`), so the
listing is checked against the format it really writes, not against a copy of it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest

from dodo_cio.delivery.parking import LastError, ParkedDelivery
from dodo_cio.delivery.track import DeliveryResult, OpResult
from dodo_cio.receiving.signature import parse_secrets, verify
from dodo_cio.retry.service import RetryProcessor
from dodo_cio.retry.verdicts import SqsRecord
from dodo_cio_cli import operator
from support.aws import create_queues
from support.receiver import Receiver, loopback_receiver

EMAIL = "maya.fernandes@example.com"
SECRET = "whsec_" + base64.b64encode(b"integration-secret-for-operator-01").decode()
CUSTOMER = "cus_2RfYk8HcWq5NzT1mLb9Xe"
WEBHOOK_ID = "msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC0"


class RejectingSender:
    """Customer.io answering 400 for every op, quoting the address as an API might."""

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        return DeliveryResult(
            results=tuple(OpResult("permanent", f"HTTP 400: invalid email {EMAIL}") for _ in ops), status=400
        )


def _parked(first_seen: int) -> ParkedDelivery:
    return ParkedDelivery(
        webhook_id=WEBHOOK_ID,
        event_type="payment.succeeded",
        event_time=first_seen - 5,
        first_seen=first_seen,
        attempts=2,
        ops=[
            {
                "type": "person",
                "identifiers": {"id": CUSTOMER},
                "action": "identify",
                "timestamp": first_seen,
                "attributes": {"email": EMAIL, "name": "Maya"},
            },
            {
                "type": "person",
                "identifiers": {"id": CUSTOMER},
                "action": "event",
                "name": "payment.succeeded",
                "timestamp": first_seen,
                "attributes": {"amount": 49.0, "customer_email": EMAIL},
            },
        ],
        last_error=LastError(kind="permanent", reason="HTTP 400: bad request", status=400, at=first_seen),
        customer_id=CUSTOMER,
    )


def _visible(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def queues(aws_env: None) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs")
    retry_url, dlq_url = create_queues(sqs)
    return sqs, retry_url, dlq_url


def _dead_letter_two(sqs: Any, retry_url: str, dlq_url: str, now: float) -> None:
    processor = RetryProcessor(sqs, retry_url, dlq_url, clock=lambda: now)
    outcomes = processor.process(
        [
            SqsRecord("r1", "rh1", _parked(int(now) - 3 * 3600 - 12 * 60).to_json(), 1),
            SqsRecord("r2", "rh2", f"{{not json, mentions {EMAIL}", 1),
        ],
        RejectingSender(),
    )
    assert [o.verdict for o in outcomes] == ["dead_letter", "dead_letter"]


def test_listing_shows_dead_letters_without_emails_and_leaves_them_queued(
    queues: tuple[Any, str, str],
) -> None:
    sqs, retry_url, dlq_url = queues
    now = time.time()
    _dead_letter_two(sqs, retry_url, dlq_url, now)
    assert _visible(sqs, dlq_url) == (2, 0)

    items = operator.list_dead_letters(sqs, dlq_url, now=now + 60)

    by_kind = {item.kind: item for item in items}
    assert set(by_kind) == {"permanent", "unreadable"}
    parked = by_kind["permanent"]
    assert (parked.event_type, parked.customer_id, parked.webhook_id) == (
        "payment.succeeded",
        CUSTOMER,
        WEBHOOK_ID,
    )
    assert parked.reason == "HTTP 400: invalid email <email>"
    assert (parked.status, parked.attempts) == (400, 3)  # 2 parked + this receive
    assert parked.first_seen == int(now) - 3 * 3600 - 12 * 60
    assert parked.dead_lettered_at == int(now)
    assert parked.age_seconds == 3 * 3600 + 12 * 60 + 60
    unreadable = by_kind["unreadable"]
    assert (unreadable.event_type, unreadable.customer_id, unreadable.webhook_id) == ("?", None, None)
    assert unreadable.reason.startswith("unreadable parked message: not JSON")
    assert unreadable.dead_lettered_at == int(now)
    assert unreadable.age_seconds is not None and 55 <= unreadable.age_seconds <= 65

    table = operator.format_dead_letters(items)
    as_json = operator.dead_letters_json(items)
    for shown in (table, as_json):
        assert EMAIL not in shown
        assert "maya.fernandes" not in shown
        assert "example.com" not in shown
    assert "3h13m" in table and CUSTOMER in table
    assert table.splitlines()[-1].startswith("2 dead letters - by kind: ")
    assert {d["kind"] for d in json.loads(as_json)} == {"permanent", "unreadable"}

    # Still there, visible, for the next listing or a redrive.
    assert _visible(sqs, dlq_url) == (2, 0)
    again = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert len(again.get("Messages", [])) == 2


# -- replay over loopback ----------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as box:
        box.status = 202
        yield box


BODY = (
    b'{"business_id":"bus_1","type":"payment.succeeded","timestamp":"2026-10-14T09:21:47.123Z",\n'
    b'  "data": {"payload_type":"Payment",\t"customer":{"customer_id":"cus_1",'
    b'"name":"Zo\xc3\xab \xe2\x98\x95"}}}  \n'
)


@pytest.mark.network
def test_replay_posts_the_same_bytes_and_returns_error_answers_instead_of_raising(receiver: Receiver) -> None:
    receiver.status = 401
    status, _ = operator.replay(BODY, url=receiver.url, secret=SECRET)
    assert status == 401
    [(headers, body)] = receiver.received
    assert body == BODY and verify(headers, body, parse_secrets(SECRET)).webhook_id == headers["webhook-id"]
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-id"] != WEBHOOK_ID
