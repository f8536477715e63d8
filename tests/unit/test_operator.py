"""Operator functions without a network: SQS, SSM and CloudFormation through botocore's Stubber.

moto has no StartMessageMoveTask/ListMessageMoveTasks/CancelMessageMoveTask, so the redrive calls
are checked here against the exact request parameters and the error codes SQS answers with.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from botocore.stub import Stubber

from dodo_cio.receiving.signature import parse_secrets, verify
from dodo_cio_cli import operator
from dodo_cio_cli.aws_calls import OperatorError
from dodo_cio_cli.operator import DeadLetter
from support.fake_http import FakeResponse, FakeSession
from support.fake_sqs import parked_body

DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:bridge-retry-dlq"
RETRY_ARN = "arn:aws:sqs:us-east-1:123456789012:bridge-retry"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
EMAIL = "maya.fernandes@example.com"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-operator-01").decode()
NOW = 1_700_000_005 + 3 * 3600 + 12 * 60  # 3h12m after the first_seen of support.fake_sqs.parked_body


# -- start_redrive ---------------------------------------------------------------------------------


# A rate inside the range through the CLI: tests/integration/test_cli_operator.py.
@pytest.mark.parametrize(
    ("kwargs", "request_fields"),
    [
        pytest.param({"destination_arn": RETRY_ARN, "rate": 1}, {"DestinationArn": RETRY_ARN}, id="lowest-rate"),
        pytest.param({"destination_arn": RETRY_ARN, "rate": 500}, {"DestinationArn": RETRY_ARN}, id="highest-rate"),
        pytest.param({}, {}, id="what-was-not-given-is-left-out"),
    ],
)
def test_start_redrive_sends_source_destination_and_rate(
    sqs: tuple[Any, Stubber], kwargs: dict[str, Any], request_fields: dict[str, Any]
) -> None:
    client, stubber = sqs
    if "rate" in kwargs:
        request_fields = {**request_fields, "MaxNumberOfMessagesPerSecond": kwargs["rate"]}
    stubber.add_response(
        "start_message_move_task", {"TaskHandle": "handle-1"}, {"SourceArn": DLQ_ARN, **request_fields}
    )
    assert operator.start_redrive(client, DLQ_ARN, **kwargs) == "handle-1"


@pytest.mark.parametrize(
    ("source", "destination", "rate", "message"),
    [
        *[
            pytest.param(
                DLQ_ARN, RETRY_ARN, rate, r"--rate must be a whole number .* from 1 to 500", id=f"rate-{rate!r}"
            )
            for rate in (0, -5, 501, 10_000, 2.5, True, "10")
        ],
        pytest.param(DLQ_URL, RETRY_ARN, None, "must be a queue ARN", id="source-url"),
        pytest.param(
            DLQ_ARN,
            "https://sqs.us-east-1.amazonaws.com/1/bridge-retry",
            None,
            "must be a queue ARN",
            id="destination-url",
        ),
        pytest.param(DLQ_ARN, DLQ_ARN, None, "retry queue", id="into-the-dlq-itself"),
    ],
)
def test_bad_requests_fail_before_any_call(
    sqs: tuple[Any, Stubber], source: str, destination: str, rate: Any, message: str
) -> None:
    client, _ = sqs  # no response queued: any API call would fail the test
    with pytest.raises(OperatorError, match=message):
        operator.start_redrive(client, source, destination_arn=destination, rate=rate)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "InvalidParameterValue",
            "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
            "a redrive is already running for this queue; see `dodo-cio redrive --status`",
        ),
        (
            "AWS.SimpleQueueService.UnsupportedOperation",
            "There is already an active message movement task for this source queue.",
            "a redrive is already running for this queue; see `dodo-cio redrive --status`",
        ),
        (
            "AWS.SimpleQueueService.UnsupportedOperation",
            "Source queue must be configured as a Dead Letter Queue.",
            "SQS cannot redrive from this queue",
        ),
        ("AccessDenied", "User is not authorized", "sqs:StartMessageMoveTask"),
        ("ResourceNotFoundException", "The resource that you specified does not exist.", "queue not found"),
        ("AWS.SimpleQueueService.NonExistentQueue", "nope", "queue not found"),
        ("RequestThrottled", "slow down", "throttled"),
        ("InvalidParameterValue", "Value for MaxNumberOfMessagesPerSecond is invalid", "SQS rejected"),
        ("SomethingNew", "surprise", "starting the redrive failed: SomethingNew: surprise"),
    ],
)
def test_start_errors_are_translated(sqs: tuple[Any, Stubber], code: str, message: str, expected: str) -> None:
    client, stubber = sqs
    stubber.add_client_error("start_message_move_task", code, message)
    with pytest.raises(OperatorError) as exc:
        operator.start_redrive(client, DLQ_ARN, destination_arn=RETRY_ARN)
    assert expected in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_a_missing_task_handle_is_an_error(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_response("start_message_move_task", {}, {"SourceArn": DLQ_ARN})
    with pytest.raises(OperatorError, match="no task handle"):
        operator.start_redrive(client, DLQ_ARN)


# -- redrive_status / cancel -----------------------------------------------------------------------

RUNNING = {
    "TaskHandle": "handle-1",
    "Status": "RUNNING",
    "SourceArn": DLQ_ARN,
    "DestinationArn": RETRY_ARN,
    "MaxNumberOfMessagesPerSecond": 25,
    "ApproximateNumberOfMessagesMoved": 40,
    "ApproximateNumberOfMessagesToMove": 120,
    "StartedTimestamp": (NOW - 300) * 1000,
}
FAILED = {
    "Status": "FAILED",
    "SourceArn": DLQ_ARN,
    "ApproximateNumberOfMessagesMoved": 0,
    "ApproximateNumberOfMessagesToMove": 3,
    "FailureReason": "CouldNotDetermineMessageSource",
    "StartedTimestamp": (NOW - 7200) * 1000,
}


def test_redrive_status_lists_tasks_or_none(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_response(
        "list_message_move_tasks", {"Results": [RUNNING, FAILED]}, {"SourceArn": DLQ_ARN, "MaxResults": 10}
    )
    tasks = operator.redrive_status(client, DLQ_ARN)
    assert tasks[0] == {
        "task_handle": "handle-1",
        "status": "RUNNING",
        "moved": 40,
        "to_move": 120,
        "failure_reason": None,
        "source_arn": DLQ_ARN,
        "destination_arn": RETRY_ARN,
        "rate": 25,
        "started_at": NOW - 300,
    }
    failed = (tasks[1]["status"], tasks[1]["failure_reason"], tasks[1]["task_handle"])
    assert failed == ("FAILED", "CouldNotDetermineMessageSource", None)

    text = operator.format_redrive_status(tasks, now=NOW)
    first, second = text.splitlines()
    assert first.startswith("RUNNING: 40/120 moved")
    assert "started 5m ago" in first and "to bridge-retry" in first and "at most 25/s" in first
    assert "handle handle-1" in first
    assert "to the original queues" in second and "failed: CouldNotDetermineMessageSource" in second
    assert json.dumps(tasks)  # plain data, ready for --json
    stubber.add_response("list_message_move_tasks", {"Results": []}, {"SourceArn": DLQ_ARN, "MaxResults": 10})
    assert operator.redrive_status(client, DLQ_ARN) == []
    assert "no redrive" in operator.format_redrive_status([])


def test_redrive_status_errors_are_translated(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_client_error("list_message_move_tasks", "AccessDenied", "not allowed")
    with pytest.raises(OperatorError, match="access denied"):
        operator.redrive_status(client, DLQ_ARN)


def test_cancel_redrive(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_response(
        "cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 7}, {"TaskHandle": "handle-1"}
    )
    assert operator.cancel_redrive(client, "handle-1") == 7


# -- list_dead_letters (request shape; the queue behaviour is in tests/integration) -----------------


def _parked(reason: str = f"HTTP 400: bad email {EMAIL}") -> str:
    return parked_body("msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC0", EMAIL, reason=reason, attempts=4)


def _message(
    message_id: str,
    body: str,
    *,
    attributes: dict[str, str] | None = None,
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": body,
        "Attributes": {
            "SentTimestamp": str((NOW - 60) * 1000),
            "ApproximateReceiveCount": "1",
            **(attributes or {}),
        },
    }
    if custom:
        message["MessageAttributes"] = custom
    return message


def _receive_params(count: int) -> dict[str, Any]:
    return {
        "QueueUrl": DLQ_URL,
        "MaxNumberOfMessages": count,
        "VisibilityTimeout": 30,
        "WaitTimeSeconds": 1,
        "MessageAttributeNames": ["All"],
        "MessageSystemAttributeNames": ["All"],
    }


def test_list_receives_with_all_attributes_and_releases_every_message(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_response(
        "receive_message",
        {
            "Messages": [
                _message("m1", _parked()),
                _message(
                    "m2",
                    _parked("HTTP 503"),
                    attributes={"DeadLetterQueueSourceArn": RETRY_ARN, "ApproximateReceiveCount": "1001"},
                ),
            ]
        },
        _receive_params(3),
    )
    stubber.add_response("receive_message", {"Messages": [_message("m1", _parked())]}, _receive_params(1))
    stubber.add_response(
        "change_message_visibility_batch",
        {"Successful": [{"Id": "0"}, {"Id": "1"}, {"Id": "2"}], "Failed": []},
        {
            "QueueUrl": DLQ_URL,
            "Entries": [
                {"Id": "0", "ReceiptHandle": "rh-m1", "VisibilityTimeout": 0},
                {"Id": "1", "ReceiptHandle": "rh-m2", "VisibilityTimeout": 0},
                {"Id": "2", "ReceiptHandle": "rh-m1", "VisibilityTimeout": 0},
            ],
        },
    )
    items = operator.list_dead_letters(client, DLQ_URL, limit=3, now=NOW)
    assert [i.message_id for i in items] == ["m1", "m2"]
    first, second = items
    assert first.reason == "HTTP 400: bad email <email>"
    assert (first.kind, first.status, first.attempts) == ("permanent", 400, 4)
    assert first.dead_lettered_at == 1_700_000_100  # the time in its last error, not when it was sent
    assert first.age_seconds == 3 * 3600 + 12 * 60
    assert second.reason == "moved by SQS after too many receives; last error: HTTP 503"
    assert second.dead_lettered_at is None


def test_list_pages_until_the_limit(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    page = [_message(f"m{i}", _parked()) for i in range(10)]
    stubber.add_response("receive_message", {"Messages": page}, _receive_params(10))
    stubber.add_response("receive_message", {"Messages": [_message("m10", "x")]}, _receive_params(2))
    stubber.add_response("receive_message", {}, _receive_params(1))
    stubber.add_response("change_message_visibility_batch", {"Successful": [], "Failed": []})
    stubber.add_response("change_message_visibility_batch", {"Successful": [], "Failed": []})
    items = operator.list_dead_letters(client, DLQ_URL, limit=12, now=NOW)
    assert len(items) == 11
    assert items[-1].kind == "unreadable"
    assert "not JSON" in items[-1].reason
    assert "there may be more" not in operator.format_dead_letters(items, limit=12)
    assert "there may be more" in operator.format_dead_letters(items, limit=11)


def test_messages_are_released_even_when_listing_fails(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_response("receive_message", {"Messages": [_message("m1", "x")]}, _receive_params(2))
    stubber.add_client_error("receive_message", "RequestThrottled", "slow down")
    stubber.add_response(
        "change_message_visibility_batch",
        {"Successful": [{"Id": "0"}], "Failed": []},
        {"QueueUrl": DLQ_URL, "Entries": [{"Id": "0", "ReceiptHandle": "rh-m1", "VisibilityTimeout": 0}]},
    )
    with pytest.raises(OperatorError, match="throttled"):
        operator.list_dead_letters(client, DLQ_URL, limit=2, now=NOW)


def test_a_missing_queue_is_explained(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    stubber.add_client_error("receive_message", "AWS.SimpleQueueService.NonExistentQueue", "gone")
    with pytest.raises(OperatorError, match="dead-letter queue does not exist"):
        operator.list_dead_letters(client, DLQ_URL, now=NOW)


def test_limit_must_be_positive(sqs: tuple[Any, Stubber]) -> None:
    with pytest.raises(OperatorError, match="--limit"):
        operator.list_dead_letters(sqs[0], DLQ_URL, limit=0)


def test_unreadable_dead_letters_take_reason_and_time_from_attributes(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    custom = {
        "error_kind": {"DataType": "String", "StringValue": "unreadable"},
        "reason": {
            "DataType": "String",
            "StringValue": "unreadable parked message: not JSON: JSONDecodeError",
        },
        "dead_lettered_at": {"DataType": "Number", "StringValue": str(NOW - 30)},
    }
    stubber.add_response(
        "receive_message",
        {"Messages": [_message("m1", f"{{oops {EMAIL}", custom=custom)]},
        _receive_params(1),
    )
    stubber.add_response("change_message_visibility_batch", {"Successful": [], "Failed": []})
    [item] = operator.list_dead_letters(client, DLQ_URL, limit=1, now=NOW)
    assert item == DeadLetter(
        message_id="m1",
        event_type="?",
        customer_id=None,
        webhook_id=None,
        reason="unreadable parked message: not JSON: JSONDecodeError",
        kind="unreadable",
        status=None,
        attempts=None,
        first_seen=None,
        dead_lettered_at=NOW - 30,
        age_seconds=60,
    )


# -- formatting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (-5, "0s"),
        (45, "45s"),
        (60, "1m"),
        (59 * 60 + 59, "59m"),
        (3 * 3600 + 12 * 60 + 5, "3h12m"),
        (3 * 3600 + 5 * 60, "3h05m"),
        (2 * 86400 + 3 * 3600, "2d03h"),
    ],
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert operator.format_age(seconds) == text


LETTER: dict[str, Any] = {
    "message_id": "m1",
    "event_type": "payment.succeeded",
    "customer_id": "cus_1",
    "webhook_id": "msg_1",
    "reason": "HTTP 400: attribute too long",
    "kind": "permanent",
    "status": 400,
    "attempts": 4,
    "first_seen": NOW - 3600,
    "dead_lettered_at": NOW - 60,
    "age_seconds": 3 * 3600 + 12 * 60,
}


def _letter(**changes: Any) -> DeadLetter:
    return DeadLetter(**{**LETTER, **changes})


def test_table_has_columns_and_summary() -> None:
    items = [
        _letter(),
        _letter(message_id="m2", reason="x" * 200 + "\n\x1b[31mred"),
        _letter(message_id="m3", event_type="?", customer_id=None, kind="unreadable", status=None, attempts=None),
    ]
    lines = operator.format_dead_letters(items).splitlines()
    assert lines[0].split() == ["TYPE", "CUSTOMER", "KIND", "STATUS", "ATTEMPTS", "AGE", "REASON"]
    assert "payment.succeeded" in lines[1] and "cus_1" in lines[1] and "3h12m" in lines[1]
    assert "HTTP 400: attribute too long" in lines[1]
    reason = lines[2][lines[0].index("REASON") :]
    assert len(reason) == 60 and reason.endswith("…")
    assert "\x1b" not in "\n".join(lines)
    assert lines[3].split()[:3] == ["?", "-", "unreadable"]
    assert lines[-1] == ("3 dead letters - by kind: permanent 2, unreadable 1 - by type: payment.succeeded 2, ? 1")


def test_json_is_a_list_of_every_field() -> None:
    doc = json.loads(operator.dead_letters_json([_letter()]))
    assert doc == [LETTER]  # the field names and values the letter was built from, no more


# -- replay (over real HTTP: tests/integration/test_local_runbook.py, test_replay_pipelines.py) -------


ACCEPTED = '{"status":"accepted"}'


def test_replay_signs_the_exact_bytes_and_keeps_the_webhook_id() -> None:
    session = FakeSession(FakeResponse(202, ACCEPTED))
    body = b'{"type":"payment.succeeded",  "data": {"note":"caf\xc3\xa9"}}\n'
    status, text = operator.replay(
        body,
        url="https://example.invalid/webhooks/dodo",
        secret=SECRET,
        webhook_id="msg_original",
        session=session,  # type: ignore[arg-type]
    )
    assert (status, text) == (202, ACCEPTED)
    [(_, call)] = session.calls
    assert call["data"] == body and call["timeout"] == 15.0
    assert call["headers"]["content-type"] == "application/json"
    assert verify(call["headers"], body, parse_secrets(SECRET)).webhook_id == "msg_original"


def test_replay_returns_stored_and_error_answers_with_a_fresh_webhook_id_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bridge marks the answer to a webhook id it had answered before; replay says nothing was sent again."""
    from dodo_cio.receiving.http_api import REPLAYED_HEADER
    from dodo_cio_cli import cli

    session: Any = FakeSession(FakeResponse(202, ACCEPTED, {REPLAYED_HEADER: "true"}), FakeResponse(401, "no"))
    answer = operator.replay(b"{}", url="http://127.0.0.1:3000/webhooks/dodo", secret=SECRET, session=session)
    assert answer.replayed and tuple(answer) == (202, ACCEPTED)
    assert cli._replay_answer(answer, "msg_1") == 0
    assert "already answered webhook-id msg_1" in capsys.readouterr().out
    fresh = operator.replay(b"{}", url="http://127.0.0.1:3000/webhooks/dodo", secret=SECRET, session=session)
    assert tuple(fresh) == (401, "no") and not fresh.replayed  # an error answer is returned, not raised
    ids = [call["headers"]["webhook-id"] for _, call in session.calls]
    assert ids[0].startswith("msg_") and ids[1].startswith("msg_") and ids[0] != ids[1]  # none given: a fresh one


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"url": "127.0.0.1:3000/webhooks/dodo"}, None, "http"),
        ({"secret": "whsec_not*base64"}, None, "webhook secret: webhook secret #1"),
        ({"secret": " "}, None, "no webhook secret"),
        ({}, requests.ConnectionError("no"), "cannot reach"),
        ({"timeout": 2}, requests.ReadTimeout("slow"), r"no answer from .* within 2 s"),
    ],
)
def test_replay_errors_are_operator_errors(kwargs: dict[str, Any], error: Exception | None, message: str) -> None:
    session: Any = FakeSession(*([] if error is None else [error]))
    with pytest.raises(OperatorError, match=message):
        operator.replay(b"{}", session=session, **{"url": "http://127.0.0.1:9/", "secret": SECRET, **kwargs})
    assert len(session.calls) == (0 if error is None else 1)  # a usage error sends nothing


# -- SSM ---------------------------------------------------------------------------------------------


def test_read_secret_from_ssm_and_errors_name_the_parameter_not_the_value(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    stubber.add_response(
        "get_parameter",
        {"Parameter": {"Name": "/dodo-customerio/webhook-secret", "Type": "SecureString", "Value": SECRET}},
        {"Name": "/dodo-customerio/webhook-secret", "WithDecryption": True},
    )
    assert operator.read_secret_from_ssm(client, "/dodo-customerio/") == SECRET
    stubber.add_client_error("get_parameter", "ParameterNotFound", "")
    with pytest.raises(OperatorError, match="/dodo-customerio/webhook-secret not found"):
        operator.read_secret_from_ssm(client, "/dodo-customerio")
    stubber.add_client_error("get_parameter", "AccessDeniedException", "no")
    with pytest.raises(OperatorError, match="kms:Decrypt"):
        operator.read_secret_from_ssm(client, "/dodo-customerio")
    bad = "whsec_sup3r*secret"
    stubber.add_response("get_parameter", {"Parameter": {"Value": bad}})
    with pytest.raises(OperatorError) as exc:
        operator.read_secret_from_ssm(client, "/dodo-customerio")
    assert "not valid base64" in str(exc.value) and "sup3r" not in str(exc.value)
    with pytest.raises(OperatorError, match="must start with '/'"):
        operator.read_secret_from_ssm(client, "dodo-customerio")


# -- CloudFormation ----------------------------------------------------------------------------------

STACK = {
    "StackName": "bridge",
    "StackStatus": "UPDATE_COMPLETE",
    "CreationTime": "2026-01-01T00:00:00Z",
    "Parameters": [{"ParameterKey": "SsmParameterPath", "ParameterValue": "/dodo-customerio"}],
    "Outputs": [
        {"OutputKey": "DeadLetterQueueUrl", "OutputValue": DLQ_URL},
        {"OutputKey": "DeadLetterQueueArn", "OutputValue": DLQ_ARN},
        {"OutputKey": "RetryQueueArn", "OutputValue": RETRY_ARN},
    ],
}


@pytest.mark.parametrize(
    ("error", "stack", "message"),
    [
        pytest.param(None, "bridge", r"stack 'bridge' \(UPDATE_COMPLETE\) has no output RetryQueueUrl", id="no-output"),
        pytest.param(
            ("ValidationError", "Stack with id nope does not exist"),
            "nope",
            "stack 'nope' not found in us-east-1",
            id="no-stack-names-the-region",
        ),
        pytest.param(
            ("ExpiredToken", "The security token included in the request is expired"),
            "bridge",
            "refresh them",
            id="unexpected-aws-error-is-one-line",
        ),
    ],
)
def test_stack_errors_are_named(
    cfn: tuple[Any, Stubber], error: tuple[str, str] | None, stack: str, message: str
) -> None:
    client, stubber = cfn
    if error is None:
        stubber.add_response("describe_stacks", {"Stacks": [STACK]}, {"StackName": stack})
    else:
        stubber.add_client_error("describe_stacks", *error)
    with pytest.raises(OperatorError, match=message):
        operator.resolve_stack_outputs(client, stack, required=("RetryQueueUrl", "DeadLetterQueueArn"))
