"""SQS, DynamoDB and SSM over botocore's JSON protocol, in memory, for the backlog-drain benchmark.

Why not moto: moto's SQS scans every message on each call (ReceiveMessage took ~330 ms with 1,000
messages queued and seeding 1,000 took 7 s on the bench machine, growing with the queue), so
10,000 parked messages cannot be drained in minutes. This server keeps the semantics the retry
path relies on, with O(log n) calls: visibility timeouts (queue default or per receive),
ChangeMessageVisibility, receipt handles that change on every receive, ApproximateReceiveCount,
DelaySeconds, the redrive policy (a message received more than maxReceiveCount times moves to the
dead-letter queue), message attributes, and the approximate depth counters. DynamoDB and SSM are
`fakeaws.FakeAws` behind HTTP: PutItem, GetItem, UpdateItem, TransactWriteItems, BatchGetItem
(conditional failures and cancelled transactions, with their CancellationReasons, answered as
botocore expects them).
The retry function reaches it through real boto3 clients (AWS_ENDPOINT_URL), so botocore's own
cost is in the measurement.

    python bench/fake_aws_server.py   # prints "http://127.0.0.1:PORT", serves until killed
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from fakeaws import FakeAws
from stub_http import json_response, serve

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SQS's own checksum


@dataclass
class Message:
    id: str
    body: str
    attributes: dict[str, Any]
    sent_ms: int
    visible_at: float
    delayed: bool
    receive_count: int = 0
    first_receive_ms: int | None = None
    handle_gen: int = 0  # bumped on every receive: older receipt handles stop deleting it
    vis_gen: int = 0  # bumped on every visibility change: older heap entries are ignored


@dataclass
class Queue:
    name: str
    attributes: dict[str, str]
    messages: dict[str, Message] = field(default_factory=dict)
    ready: deque[str] = field(default_factory=deque)
    timed: list[tuple[float, int, str]] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"

    @property
    def url(self) -> str:
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name}"

    def add(self, message: Message) -> None:
        self.messages[message.id] = message
        if message.visible_at <= time.time():
            self.ready.append(message.id)
        else:
            heapq.heappush(self.timed, (message.visible_at, message.vis_gen, message.id))

    def hide(self, message: Message, seconds: float) -> None:
        message.vis_gen += 1
        message.visible_at = time.time() + seconds
        heapq.heappush(self.timed, (message.visible_at, message.vis_gen, message.id))

    def promote(self) -> None:
        now = time.time()
        while self.timed and self.timed[0][0] <= now:
            _, gen, message_id = heapq.heappop(self.timed)
            message = self.messages.get(message_id)
            if message is not None and message.vis_gen == gen:
                message.delayed = False
                self.ready.append(message_id)


class FakeAwsServer:
    def __init__(self) -> None:
        self.aws = FakeAws({})
        self.queues: dict[str, Queue] = {}
        self.calls: Counter[str] = Counter()

    # -- dispatch
    def respond(self, target: str, body: bytes) -> bytes:
        service, _, operation = target.partition(".")
        self.calls[operation] += 1
        params = json.loads(body or b"{}")
        try:
            if service == "AmazonSQS":
                return json_response(getattr(self, f"sqs_{operation}")(params))
            if service.startswith("DynamoDB"):
                return json_response(self.dynamodb(operation, params))
            if service == "AmazonSSM":
                return json_response(self.ssm(operation, params))
            if target == "Bench.Stats":
                return json_response({"calls": dict(self.calls)})
        except self.aws.exceptions.ConditionalCheckFailedException:
            error = {
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
            }
            return json_response(error, "400 Bad Request")
        except self.aws.exceptions.TransactionCanceledException as exc:
            response = exc.response  # type: ignore[attr-defined]
            error = {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": response["Error"]["Message"],
                "CancellationReasons": response["CancellationReasons"],
            }
            return json_response(error, "400 Bad Request")
        except (AttributeError, KeyError) as exc:
            error = {"__type": "InvalidAction", "message": f"fake AWS cannot do {target}: {exc!r}"}
            return json_response(error, "400 Bad Request")
        return json_response({"__type": "InvalidAction", "message": target}, "400 Bad Request")

    # -- DynamoDB, SSM
    def dynamodb(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "CreateTable":
            return {"TableDescription": {"TableName": params["TableName"], "TableStatus": "ACTIVE"}}
        method = {
            "PutItem": "put_item",
            "GetItem": "get_item",
            "UpdateItem": "update_item",
            "DeleteItem": "delete_item",
            "TransactWriteItems": "transact_write_items",
            "BatchGetItem": "batch_get_item",
        }[operation]
        return getattr(self.aws.dynamodb, method)(**params)

    def ssm(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PutParameter":
            self.aws.parameters[params["Name"]] = params["Value"]
            return {"Version": 1, "Tier": "Standard"}
        return self.aws.ssm.get_parameters(Names=params["Names"], WithDecryption=params.get("WithDecryption", False))

    # -- SQS
    def _queue(self, params: dict[str, Any]) -> Queue:
        return self.queues[params["QueueUrl"].rsplit("/", 1)[-1]]

    def sqs_CreateQueue(self, params: dict[str, Any]) -> Any:
        queue = self.queues.setdefault(params["QueueName"], Queue(params["QueueName"], {}))
        queue.attributes.update(params.get("Attributes") or {})
        return {"QueueUrl": queue.url}

    def sqs_GetQueueAttributes(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        queue.promote()
        now = time.time()
        visible = sum(1 for m in queue.messages.values() if m.visible_at <= now)
        delayed = sum(1 for m in queue.messages.values() if m.delayed and m.visible_at > now)
        values = {
            **queue.attributes,
            "QueueArn": queue.arn,
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(len(queue.messages) - visible - delayed),
            "ApproximateNumberOfMessagesDelayed": str(delayed),
        }
        names = params.get("AttributeNames") or ["All"]
        return {"Attributes": values if "All" in names else {k: v for k, v in values.items() if k in names}}

    def _enqueue(self, queue: Queue, body: str, attributes: dict[str, Any], delay: int) -> Message:
        now = time.time()
        message = Message(
            id=str(uuid.uuid4()),
            body=body,
            attributes=attributes,
            sent_ms=int(now * 1000),
            visible_at=now + delay,
            delayed=delay > 0,
        )
        queue.add(message)
        return message

    def sqs_SendMessage(self, params: dict[str, Any]) -> Any:
        message = self._enqueue(
            self._queue(params),
            params["MessageBody"],
            params.get("MessageAttributes") or {},
            int(params.get("DelaySeconds") or 0),
        )
        return {"MessageId": message.id, "MD5OfMessageBody": _md5(message.body)}

    def sqs_SendMessageBatch(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        successful = []
        for entry in params["Entries"]:
            message = self._enqueue(
                queue, entry["MessageBody"], entry.get("MessageAttributes") or {}, int(entry.get("DelaySeconds") or 0)
            )
            successful.append({"Id": entry["Id"], "MessageId": message.id, "MD5OfMessageBody": _md5(message.body)})
        return {"Successful": successful, "Failed": []}

    def _redrive(self, queue: Queue) -> tuple[Queue, int] | None:
        policy = queue.attributes.get("RedrivePolicy")
        if not policy:
            return None
        doc = json.loads(policy)
        target = next(q for q in self.queues.values() if q.arn == doc["deadLetterTargetArn"])
        return target, int(doc["maxReceiveCount"])

    def sqs_ReceiveMessage(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        queue.promote()
        wanted = int(params.get("MaxNumberOfMessages") or 1)
        visibility = float(params.get("VisibilityTimeout") or queue.attributes.get("VisibilityTimeout", 30))
        redrive = self._redrive(queue)
        now_ms = int(time.time() * 1000)
        out = []
        while queue.ready and len(out) < wanted:
            message = queue.messages.get(queue.ready.popleft())
            if message is None or message.visible_at > time.time():
                continue
            if redrive is not None and message.receive_count >= redrive[1]:
                del queue.messages[message.id]
                message.visible_at = 0.0
                redrive[0].add(message)
                continue
            message.receive_count += 1
            message.handle_gen += 1
            message.first_receive_ms = message.first_receive_ms or now_ms
            queue.hide(message, visibility)
            out.append(
                {
                    "MessageId": message.id,
                    "ReceiptHandle": f"{message.id}:{message.handle_gen}",
                    "MD5OfBody": _md5(message.body),
                    "Body": message.body,
                    "Attributes": {
                        "ApproximateReceiveCount": str(message.receive_count),
                        "SentTimestamp": str(message.sent_ms),
                        "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
                        "SenderId": "AIDABENCH",
                    },
                    "MessageAttributes": message.attributes,
                }
            )
        return {"Messages": out} if out else {}

    def _by_handle(self, queue: Queue, handle: str) -> Message | None:
        message_id, _, gen = handle.rpartition(":")
        message = queue.messages.get(message_id)
        return message if message is not None and str(message.handle_gen) == gen else None

    def sqs_DeleteMessageBatch(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        for entry in params["Entries"]:
            message = self._by_handle(queue, entry["ReceiptHandle"])
            if message is not None:
                del queue.messages[message.id]
        return {"Successful": [{"Id": e["Id"]} for e in params["Entries"]], "Failed": []}

    def sqs_DeleteMessage(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        message = self._by_handle(queue, params["ReceiptHandle"])
        if message is not None:
            del queue.messages[message.id]
        return {}

    def sqs_ChangeMessageVisibility(self, params: dict[str, Any]) -> Any:
        queue = self._queue(params)
        message = self._by_handle(queue, params["ReceiptHandle"])
        if message is not None:
            queue.hide(message, float(params["VisibilityTimeout"]))
        return {}


def main() -> None:
    server = FakeAwsServer()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(server.respond))


if __name__ == "__main__":
    main()
