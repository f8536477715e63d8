"""Operator functions against moto queues and SSM, and `replay` over real loopback HTTP.

The dead letters are put on the DLQ by the retry function's own code (`RetryProcessor`), so the
listing is checked against the format it really writes, not against a copy of it.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from dodo_cio.delivery.parking import LastError, ParkedDelivery
from dodo_cio.delivery.track import DeliveryResult, OpResult
from dodo_cio.receiving.quarantine import QuarantinedWebhook, quarantine
from dodo_cio.receiving.signature import parse_secrets, verify
from dodo_cio.retry.service import RetryProcessor
from dodo_cio.retry.verdicts import SqsRecord
from dodo_cio_cli import cli, operator
from dodo_cio_cli.aws_calls import OperatorError
from support.aws import SSM_PATH, create_quarantine_queue, create_queues, put_secrets
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


def test_listing_twice_gives_the_same_answer(queues: tuple[Any, str, str]) -> None:
    sqs, retry_url, dlq_url = queues
    now = time.time()
    _dead_letter_two(sqs, retry_url, dlq_url, now)
    first = operator.list_dead_letters(sqs, dlq_url, now=now, wait_seconds=0)
    second = operator.list_dead_letters(sqs, dlq_url, now=now, wait_seconds=0)
    assert sorted(first, key=lambda d: d.message_id) == sorted(second, key=lambda d: d.message_id)


def test_limit_stops_early_and_releases_what_it_saw(queues: tuple[Any, str, str]) -> None:
    sqs, retry_url, dlq_url = queues
    now = time.time()
    for _ in range(3):
        _dead_letter_two(sqs, retry_url, dlq_url, now)
    items = operator.list_dead_letters(sqs, dlq_url, limit=4, now=now, wait_seconds=0)
    assert len(items) == 4
    assert "there may be more" in operator.format_dead_letters(items, limit=4)
    assert _visible(sqs, dlq_url) == (6, 0)


def test_an_empty_dlq_lists_nothing(queues: tuple[Any, str, str]) -> None:
    sqs, _, dlq_url = queues
    assert operator.list_dead_letters(sqs, dlq_url, wait_seconds=0) == []


def test_a_missing_queue_is_an_operator_error(queues: tuple[Any, str, str]) -> None:
    sqs, _, dlq_url = queues
    with pytest.raises(OperatorError, match="does not exist"):
        operator.list_dead_letters(sqs, dlq_url + "-gone", wait_seconds=0)


def test_export_purge_restore_brings_the_messages_back_for_dlq(
    queues: tuple[Any, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Day 14 simulated: export both queues, let SQS drop everything (purge), restore, list again."""
    sqs, retry_url, dlq_url = queues
    quarantine_url = create_quarantine_queue(sqs)
    now = time.time()
    _dead_letter_two(sqs, retry_url, dlq_url, now)  # a parked delivery and a body the retry function could not read
    kept = QuarantinedWebhook(
        webhook_id="msg_quarantined",
        webhook_timestamp=str(int(now) - 600),
        webhook_signature="v1,c2lnbmF0dXJl",
        received_at=int(now) - 599,
        event_type="payout.succeeded",
        error_field="type",
        error_detail="no mapping for payout.succeeded",
        body=f'{{"type":"payout.succeeded","data":{{"email":"{EMAIL}"}}}}'.encode(),
        kind="unknown_type",
    )
    quarantine(sqs, quarantine_url, kept)
    before = {url: _bodies_and_attributes(sqs, url) for url in (dlq_url, quarantine_url)}
    queues_argv = ["--queue-url", dlq_url, "--quarantine-url", quarantine_url]
    path = tmp_path / "kept.jsonl"

    assert cli.main(["dlq", *queues_argv, "--export", str(path)]) == 0
    assert "exported 2 dead-lettered deliveries and 1 quarantined webhook" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (_visible(sqs, dlq_url), _visible(sqs, quarantine_url)) == ((2, 0), (1, 0))  # still queued

    for url in (dlq_url, quarantine_url):
        sqs.purge_queue(QueueUrl=url)
    assert (_visible(sqs, dlq_url), _visible(sqs, quarantine_url)) == ((0, 0), (0, 0))

    # The unreadable dead letter cannot be restored (it is no parked delivery): exit 1, the rest sent.
    assert cli.main(["restore", str(path), *queues_argv]) == 1
    out = capsys.readouterr().out
    assert "restored 1 to the dead-letter queue and 1 to the quarantine queue" in out
    assert "NOT restored: not a parked delivery" in out and EMAIL not in out
    after = {url: _bodies_and_attributes(sqs, url) for url in (dlq_url, quarantine_url)}
    assert after[quarantine_url] == before[quarantine_url]
    assert after[dlq_url] == [m for m in before[dlq_url] if m[0].startswith('{"webhook_id"')]

    assert cli.main(["dlq", *queues_argv, "--json"]) == 0
    listed = {(item["queue"], item["webhook_id"]) for item in json.loads(capsys.readouterr().out)}
    assert listed == {("dead_letter", WEBHOOK_ID), ("quarantine", "msg_quarantined")}

    # A second restore finds them on their queues and sends nothing twice.
    assert cli.main(["restore", str(path), *queues_argv]) == 1
    assert "2 skipped" in capsys.readouterr().out
    assert (_visible(sqs, dlq_url), _visible(sqs, quarantine_url)) == ((1, 0), (1, 0))


def _bodies_and_attributes(sqs: Any, url: str) -> list[tuple[str, dict[str, Any]]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"])
    return sorted((m["Body"], m.get("MessageAttributes", {})) for m in got.get("Messages", []))


def test_read_secret_from_moto_ssm(aws_env: None) -> None:
    ssm = boto3.client("ssm")
    put_secrets(ssm, webhook_secret=SECRET, site_id=None, api_key=None)
    assert operator.read_secret_from_ssm(ssm, SSM_PATH) == SECRET
    with pytest.raises(OperatorError, match="/elsewhere/webhook-secret not found"):
        operator.read_secret_from_ssm(ssm, "/elsewhere")


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
def test_replay_posts_the_same_bytes_with_a_valid_signature(receiver: Receiver) -> None:
    status, text = operator.replay(BODY, url=receiver.url, secret=SECRET, webhook_id=WEBHOOK_ID)
    assert (status, json.loads(text)) == (202, {"answer": 202})
    [(headers, body)] = receiver.received
    assert body == BODY
    verified = verify(headers, body, parse_secrets(SECRET))
    assert verified.webhook_id == WEBHOOK_ID
    assert abs(verified.timestamp - time.time()) < 60
    assert headers["content-type"] == "application/json"


@pytest.mark.network
def test_replay_returns_error_answers_instead_of_raising(receiver: Receiver) -> None:
    receiver.status = 401
    status, _ = operator.replay(BODY, url=receiver.url, secret=SECRET)
    assert status == 401
    [(headers, _)] = receiver.received
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-id"] != WEBHOOK_ID


@pytest.mark.network
def test_replay_to_nothing_is_an_operator_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OperatorError, match="cannot reach"):
        operator.replay(BODY, url=f"http://127.0.0.1:{port}/webhooks/dodo", secret=SECRET, timeout=2)
