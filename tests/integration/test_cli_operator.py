"""The operator subcommands wired end to end: `dlq` and `reprocess` on moto queues, `redrive` on a stubbed SQS.

The Stubber tests of the same functions are in tests/unit/test_operator.py.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dodo_cio.delivery.track import DeliveryResult, OpResult
from dodo_cio.receiving.quarantine import REPROCESS_KEY, QuarantinedWebhook, quarantine
from dodo_cio.retry.service import RetryProcessor
from dodo_cio.retry.verdicts import SqsRecord
from dodo_cio_cli import cli
from support.aws import create_quarantine_queue, create_queues
from support.fake_sqs import parked_body
from support.fake_stack import FakeStack

EMAIL = "maya.fernandes@example.com"


def test_redrive_moves_from_the_dlq_to_the_retry_queue_at_the_chosen_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sqs)
    dlq = "arn:aws:sqs:us-east-1:123456789012:bridge-retry-dlq"
    retry = "arn:aws:sqs:us-east-1:123456789012:bridge-retry"
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "task-1"},
        {"SourceArn": dlq, "DestinationArn": retry, "MaxNumberOfMessagesPerSecond": 10},
    )
    monkeypatch.setattr(cli, "_aws", lambda service, region: sqs)
    with stub:
        assert cli.main(["redrive", "--dlq-arn", dlq, "--to-arn", retry, "--rate", "10"]) == 0
    stub.assert_no_pending_responses()
    assert "task-1" in capsys.readouterr().out


# -- quarantined webhooks ---------------------------------------------------------------------------


def _quarantined(webhook_id: str) -> QuarantinedWebhook:
    return QuarantinedWebhook(
        webhook_id=webhook_id,
        webhook_timestamp="1700000000",
        webhook_signature="v1,c2lnbmF0dXJl",
        received_at=1_700_000_001,
        event_type="subscription.renewed",
        error_field="data.next_billing_date",
        error_detail="must be an ISO-8601 date-time",
        body=json.dumps({"type": "subscription.renewed", "data": {"customer": {"email": EMAIL}}}).encode(),
    )


def _visible(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


class RejectingSender:
    """Customer.io answering 400 for every op, quoting the address as an API might."""

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        reason = f"HTTP 400: invalid email {EMAIL}"
        return DeliveryResult(results=tuple(OpResult("permanent", reason) for _ in ops), status=400)


def test_dlq_lists_both_queues_from_the_stack_without_emails_and_consumes_nothing(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The retry function's own code dead-letters, so the listing reads the format it really writes."""
    sqs = boto3.client("sqs")
    retry_url, dlq_url = create_queues(sqs)
    quarantine_url = create_quarantine_queue(sqs)
    now = int(time.time())
    records = [
        SqsRecord("r1", "rh1", parked_body("msg_dead", EMAIL, attempts=2), 1),
        SqsRecord("r2", "rh2", f"{{not json, mentions {EMAIL}", 1),
    ]
    outcomes = RetryProcessor(sqs, retry_url, dlq_url, clock=lambda: now).process(records, RejectingSender())
    assert [o.verdict for o in outcomes] == ["dead_letter", "dead_letter"]
    quarantine(sqs, quarantine_url, _quarantined("msg_kept"))  # as the ingest function writes it
    sqs.send_message(QueueUrl=quarantine_url, MessageBody="not in the quarantine format")
    cfn = FakeStack(outputs={"DeadLetterQueueUrl": dlq_url, "QuarantineQueueUrl": quarantine_url})
    monkeypatch.setattr(cli, "_aws", lambda service, region: cfn if service == "cloudformation" else sqs)
    assert cli.main(["dlq", "--stack", "bridge"]) == 0
    out = capsys.readouterr().out
    parked, kept = out.split("Quarantined webhooks (quarantine queue):")
    assert "HTTP 400: invalid email <email>" in parked and "cus_1" in parked and "msg_kept" not in parked
    assert parked.strip().splitlines()[-1].startswith("2 dead letters - by kind: ")
    assert "QUARANTINED WEBHOOK" in kept and "msg_kept" in kept and "subscription.renewed" in kept
    assert "not a quarantined webhook" in kept  # the stray message is shown, not hidden
    assert cli.main(["dlq", "--queue-url", dlq_url, "--quarantine-url", quarantine_url, "--json"]) == 0
    as_json = capsys.readouterr().out
    for shown in (out, as_json):
        assert EMAIL not in shown and "maya.fernandes" not in shown and "example.com" not in shown
    items = {(i["queue"], i["kind"]): i for i in json.loads(as_json)}
    assert set(items) == {
        ("dead_letter", "permanent"),
        ("dead_letter", "unreadable"),
        ("quarantine", "quarantined"),
        ("quarantine", "unreadable"),
    }
    dead = items["dead_letter", "permanent"]
    assert (dead["event_type"], dead["customer_id"], dead["webhook_id"]) == ("payment.succeeded", "cus_1", "msg_dead")
    assert (dead["reason"], dead["status"], dead["attempts"]) == ("HTTP 400: invalid email <email>", 400, 3)
    assert (dead["first_seen"], dead["dead_lettered_at"]) == (1_700_000_005, now)  # 3: 2 parked + this receive
    unreadable = items["dead_letter", "unreadable"]
    assert (unreadable["event_type"], unreadable["customer_id"], unreadable["webhook_id"]) == ("?", None, None)
    assert unreadable["reason"].startswith("unreadable parked message: not JSON")
    assert unreadable["dead_lettered_at"] == now
    assert (_visible(sqs, dlq_url), _visible(sqs, quarantine_url)) == (2, 2), "a listing must not consume"


class IngestFunction:
    """Lambda's Invoke API for the ingest function: a statusCode per webhook id (the real one is in
    tests/integration/test_local_runbook.py and test_quarantine.py)."""

    def __init__(self, answers: dict[str, int]) -> None:
        self.answers = answers

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert (FunctionName, InvocationType) == ("bridge-IngestFunction", "RequestResponse")
        status = self.answers[json.loads(Payload)[REPROCESS_KEY]["webhook_id"]]
        body = json.dumps({"status": "delivered" if status < 300 else "not yet"})
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps({"statusCode": status, "body": body}).encode())}


def test_reprocess_on_moto_deletes_what_was_handled_and_leaves_the_rest_visible(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    url = create_quarantine_queue(sqs)
    answers = {"msg_ok": 200, "msg_down": 503}  # each answer's verdict: tests/unit/test_quarantine_ops.py
    for webhook_id in answers:
        quarantine(sqs, url, _quarantined(webhook_id))
    stack = FakeStack(outputs={"QuarantineQueueUrl": url, "IngestFunctionName": "bridge-IngestFunction"})
    services = {"cloudformation": stack, "sqs": sqs, "lambda": IngestFunction(answers)}
    monkeypatch.setattr(cli, "_aws", lambda service, region: services[service])
    assert cli.main(["reprocess", "--stack", "bridge"]) == 1
    out = capsys.readouterr().out
    assert "1 handled and deleted, 1 kept on the queue" in out
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert [QuarantinedWebhook.from_json(m["Body"]).webhook_id for m in left] == ["msg_down"]
