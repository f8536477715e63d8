"""`--local` without sockets: finding the local run, the local Lambda Invoke API, and the local redrive."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.error import URLError

import pytest

from dodo_cio_cli import cli
from dodo_cio_cli.aws_calls import OperatorError
from dodo_cio_cli.local_target import DEFAULT_LOCAL_URL, LOCAL_URL_ENV, discover, local_url, move_messages
from dodo_cio_local.local_aws import invoke_api

# -- finding the local run --------------------------------------------------------------------------


def test_the_local_url_comes_from_the_flag_then_the_environment_then_the_default() -> None:
    assert local_url(None, env={}) == DEFAULT_LOCAL_URL
    assert local_url(None, env={LOCAL_URL_ENV: "http://127.0.0.1:3310/"}) == "http://127.0.0.1:3310"
    assert local_url("http://localhost:9", env={LOCAL_URL_ENV: "http://127.0.0.1:3310"}) == "http://localhost:9"
    with pytest.raises(OperatorError, match="http"):
        local_url("127.0.0.1:3000", env={})


def test_discover_says_how_to_start_the_local_run_when_nothing_answers() -> None:
    def refused(url: str, timeout: float) -> Any:
        raise URLError(ConnectionRefusedError(111, "Connection refused"))

    with pytest.raises(OperatorError, match=r"no local run answers at http://127.0.0.1:3000 .*make run"):
        discover("http://127.0.0.1:3000", fetch=refused)
    with pytest.raises(OperatorError, match="no emulated AWS endpoint"):
        discover("http://127.0.0.1:3000", fetch=lambda url, timeout: {"webhook_url": "x"})


def test_local_refuses_stack_and_redrive_refuses_status(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from dodo_cio_cli import local_target

    assert cli.main(["dlq", "--local", "--stack", "bridge"]) == 2
    assert "--local and --stack" in capsys.readouterr().err
    page = {"aws": {"endpoint": "http://127.0.0.1:4020"}}  # a local run found: the refusal is redrive's own
    monkeypatch.setattr(local_target, "_fetch_status", lambda url, timeout: page)
    assert cli.main(["redrive", "--local", "--status"]) == 2
    assert "move tasks" in capsys.readouterr().err


# -- the Lambda Invoke API of the local run ---------------------------------------------------------

NAME = "dodo-cio-local-IngestFunction"
PATH = f"/2015-03-31/functions/{NAME}/invocations"


def _invoke(path: str = PATH, *, client: str = "127.0.0.1", call: Any = None, **headers: str) -> Any:
    events: list[Any] = []

    def handler(event: dict[str, Any]) -> Any:
        events.append(event)
        return call(event) if call else {"statusCode": 200, "body": "{}"}

    answer = invoke_api(
        path,
        method="POST",
        headers=headers,
        body=json.dumps({"dodo_cio_reprocess": {"webhook_id": "msg_1"}}).encode(),
        client_address=client,
        function_names={NAME},
        call=handler,
    )
    return answer, events


def test_invoke_reports_a_raising_handler_as_lambda_does() -> None:
    def boom(event: Any) -> Any:
        raise RuntimeError("handler crashed")

    answer, _ = _invoke(call=boom)
    assert (answer.status, answer.headers["x-amz-function-error"]) == (200, "Unhandled")
    assert json.loads(answer.body) == {"errorMessage": "handler crashed", "errorType": "RuntimeError"}


def test_invoke_refusals() -> None:
    assert invoke_api("/webhooks/dodo", method="POST", headers={}, body=b"", client_address="127.0.0.1",
                      function_names={NAME}, call=lambda e: None) is None  # fmt: skip
    unknown, events = _invoke(PATH.replace(NAME, "other"))
    assert (unknown.status, unknown.headers["x-amzn-errortype"]) == (404, "ResourceNotFoundException")
    remote, events2 = _invoke(client="192.0.2.7")
    assert (remote.status, remote.headers["x-amzn-errortype"]) == (403, "AccessDeniedException")
    dry, events3 = _invoke(**{"X-Amz-Invocation-Type": "DryRun"})
    assert dry.status == 204
    async_call, events4 = _invoke(**{"X-Amz-Invocation-Type": "Event"})
    assert async_call.status == 400
    assert events == events2 == events3 == events4 == [], "none of these may run the handler"
    arn, _ = _invoke(f"/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3A{NAME}/invocations")
    assert arn.status == 404  # an ARN is answered only when it is one of the names given


# -- the local redrive ------------------------------------------------------------------------------


@dataclass
class TwoQueues:
    queues: dict[str, list[dict[str, Any]]]
    sent: list[dict[str, Any]] = field(default_factory=list)
    receipts: int = 0

    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.queues[QueueUrl]))}}

    def receive_message(self, *, QueueUrl: str, MaxNumberOfMessages: int, **kwargs: Any) -> dict[str, Any]:
        out = []
        for message in self.queues[QueueUrl][:MaxNumberOfMessages]:
            self.receipts += 1
            out.append({**message, "ReceiptHandle": message["MessageId"]})
        return {"Messages": out}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        queue = self.queues[kwargs["QueueUrl"]]
        queue.append({"MessageId": f"new-{len(self.sent)}", "Body": kwargs["MessageBody"]})
        if kwargs["MessageBody"] == "fails again":  # the retry function dead-letters it at once
            self.queues["dlq"].append({"MessageId": f"again-{len(self.sent)}", "Body": "fails again"})
        return {"MessageId": f"new-{len(self.sent)}"}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m["MessageId"] != ReceiptHandle]
        return {}


def test_move_keeps_body_and_attributes_and_moves_only_what_was_waiting() -> None:
    attributes = {"error_kind": {"DataType": "String", "StringValue": "permanent"}}
    sqs = TwoQueues(
        {
            "dlq": [
                {"MessageId": "1", "Body": "fails again"},
                {"MessageId": "2", "Body": "parked", "MessageAttributes": attributes},
            ],
            "retry": [],
        }
    )
    naps: list[float] = []
    assert move_messages(sqs, "dlq", "retry", rate=1, sleep=naps.append) == 2
    assert [m["Body"] for m in sqs.queues["retry"]] == ["fails again", "parked"]
    assert sqs.sent[1]["MessageAttributes"] == attributes and "MessageAttributes" not in sqs.sent[0]
    # The one that came straight back stays on the DLQ: it is not sent round again and again.
    assert [m["Body"] for m in sqs.queues["dlq"]] == ["fails again"]
    assert len(naps) == 2 and all(0 < nap <= 2 for nap in naps)
