"""The operator subcommands wired end to end: `dodo-cio dlq` on a moto DLQ, `redrive` on a stubbed SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dodo_cio.parking import LastError, ParkedDelivery
from dodo_cio_tools import cli
from support.aws import create_queues

EMAIL = "maya.fernandes@example.com"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def _dead_letter() -> str:
    return ParkedDelivery(
        webhook_id="msg_dead",
        event_type="payment.succeeded",
        event_time=1_700_000_000,
        first_seen=1_700_000_005,
        attempts=3,
        ops=[{"type": "person", "identifiers": {"id": "cus_1"}, "action": "identify", "attributes": {"email": EMAIL}}],
        last_error=LastError(kind="permanent", reason="HTTP 400: attributes invalid", status=400, at=1_700_000_100),
        customer_id="cus_1",
    ).to_json()


def test_dlq_lists_type_customer_and_reason_without_emails(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs")
    _, dlq_url = create_queues(sqs)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=_dead_letter())
    assert cli.main(["dlq", "--queue-url", dlq_url]) == 0
    table = capsys.readouterr().out
    assert "payment.succeeded" in table and "cus_1" in table and "HTTP 400" in table
    assert EMAIL not in table
    assert cli.main(["dlq", "--queue-url", dlq_url, "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["event_type"], item["kind"], item["attempts"]) == ("payment.succeeded", "permanent", 3)


def test_dlq_without_a_queue_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dlq"]) == 2
    assert "--stack" in capsys.readouterr().err


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


def test_redrive_rate_out_of_range_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(cli, "_aws", lambda service, region: calls.append(service) or object())
    dlq = "arn:aws:sqs:us-east-1:123456789012:q-dlq"
    code = cli.main(["redrive", "--dlq-arn", dlq, "--to-arn", dlq.replace("-dlq", ""), "--rate", "900"])
    assert code == 2
    assert "500" in capsys.readouterr().err
