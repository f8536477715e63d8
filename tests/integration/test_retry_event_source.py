"""The retry queue's event source: moto's queues (as template.yaml defines them) polled by the local
SQS event source (Lambda's poller, which moto does not run), and the local run that drains them.

What each Customer.io answer makes of a parked message is decided in tests/unit/test_retry_processor.py;
the real retry handler behind this event source, for every fault, in tests/integration/test_fault_matrix.py.
"Time passing" for a waiting message is simulated by setting its visibility to 0 with the receipt
handle the poll saw.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dodo_cio.delivery.parking import ParkedDelivery, park
from dodo_cio_cli import sender
from dodo_cio_local.event_source import PollResult, SqsEventSource
from dodo_cio_local.local_run import LocalBridge, read_template
from support.parked import parked

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"


@dataclass
class RetryQueue:
    sqs: Any  # moto's, from the integration conftest's bridge
    url: str

    def park(self, parked: ParkedDelivery) -> str:
        return park(self.sqs, self.url, parked)

    def time_passes(self, result: PollResult) -> None:
        """The messages a poll left for retry become visible now, as if their delay had passed."""
        for message_id in result.failed:
            handle = result.receipt_handles[message_id]
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0)

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) on the retry queue."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def retry(bridge: Any) -> RetryQueue:
    return RetryQueue(bridge.sqs, bridge.queue_url)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until `predicate()` held; fails the test after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


# -- the event source itself ------------------------------------------------------------------


def test_the_event_is_built_as_lambda_builds_it(retry: RetryQueue) -> None:
    from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel

    message_id = retry.park(parked("a"))
    seen: list[dict[str, Any]] = []
    source = SqsEventSource(retry.sqs, retry.url, lambda event, ctx: seen.append(event))

    result = source.poll_once()

    assert (result.received, result.deleted, result.failed, result.error) == (1, 1, (), None)
    SqsModel.model_validate(seen[0])  # Powertools' model of Lambda's SQS event: every field and attribute Lambda has
    (record,) = seen[0]["Records"]
    assert set(record) <= {field.alias or name for name, field in SqsRecordModel.model_fields.items()}  # nothing more
    assert record["messageId"] == message_id
    assert record["attributes"]["ApproximateReceiveCount"] == "1"  # SQS's count, as a string
    assert record["messageAttributes"]["event_type"] == {
        "stringValue": "payment.succeeded",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    arn = retry.sqs.get_queue_attributes(QueueUrl=retry.url, AttributeNames=["QueueArn"])
    assert record["eventSourceARN"] == arn["Attributes"]["QueueArn"]
    assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
    assert retry.counts() == (0, 0)


def test_a_batch_above_ten_is_several_receives_and_one_invocation(retry: RetryQueue) -> None:
    for i in range(25):
        retry.park(parked(f"n{i}"))
    sizes: list[int] = []
    source = SqsEventSource(
        retry.sqs,
        retry.url,
        lambda event, ctx: sizes.append(len(event["Records"])),
        batch_size=25,
    )
    assert source.poll_once().deleted == 25
    assert sizes == [25]
    assert retry.counts() == (0, 0)


def test_partial_batch_responses_are_honoured_like_lambda(retry: RetryQueue) -> None:
    for tag in "abc":
        retry.park(parked(tag))
    answers: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        ids = [r["messageId"] for r in event["Records"]]
        return answers.pop(0)(ids)

    def crash(ids: list[str]) -> Any:
        raise RuntimeError("boom")

    source = SqsEventSource(retry.sqs, retry.url, handler)

    # A handler that raises is a function error: nothing is deleted, everything comes back.
    answers.append(crash)
    crashed = source.poll_once()
    assert (crashed.received, crashed.deleted, len(crashed.failed)) == (3, 0, 3)
    assert isinstance(crashed.error, RuntimeError)
    retry.time_passes(crashed)

    # An id the batch does not hold makes the whole response invalid: nothing is deleted.
    answers.append(lambda ids: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]})
    first = source.poll_once()
    assert (first.received, first.deleted, len(first.failed)) == (3, 0, 3)
    assert "not-in-batch" in str(first.error)
    retry.time_passes(first)

    # Exactly the named message stays (in flight); the rest are deleted.
    answers.append(lambda ids: {"batchItemFailures": [{"itemIdentifier": ids[1]}]})
    second = source.poll_once()
    assert (second.received, second.deleted, second.error) == (3, 2, None)
    assert retry.counts() == (0, 1)
    retry.time_passes(second)

    # An empty list (or none at all) is full success.
    answers.append(lambda ids: {"batchItemFailures": []})
    third = source.poll_once()
    assert (third.received, third.deleted) == (1, 1)
    assert third.event is not None
    assert third.event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "4"
    assert retry.counts() == (0, 0)


# -- the local run ------------------------------------------------------------------------------


def test_the_local_run_drains_a_parked_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(key, raising=False)
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    lines: list[str] = []
    bridge = LocalBridge(port=0, sandbox_port=0, log=lines.append, drain_interval=0.1, backoff_scale=0.01)
    info = bridge.start()
    try:
        sandbox = bridge.sandbox
        assert sandbox is not None
        sandbox.script(503)
        response = sender.send_webhook(PAYMENT.read_bytes(), url=info.webhook_url, secret=info.secret)
        assert (response.status_code, response.json()) == (202, {"status": "queued"})

        wait_until(lambda: any(op.get("action") == "event" for op in sandbox.accepted_ops()), timeout=10)

        assert [r.status for r in sandbox.requests] == [503, 200]
        wait_until(lambda: bridge.queue_depths()["retry_queue"] == {"visible": 0, "in_flight": 0, "delayed": 0}, 5)
        page = requests.get(info.status_url, timeout=5).json()
        assert page["queues"]["dead_letter_queue"]["visible"] == 0
        batch = read_template().retry_batch_size
        assert page["retry_drain"].startswith(f"running, batch size {batch}, backoff x0.01")
        assert any(" retry received 1, deleted 1" in line for line in lines), lines
    finally:
        bridge.stop()
    assert bridge.retry_module is not None and bridge.retry_module._service is None
    assert {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} == before
