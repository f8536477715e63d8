"""Seed moto with what the template creates, using the template's own queue properties."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SSM_PATH = "/dodo-customerio"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def fake_credentials(monkeypatch: Any) -> None:
    """Test credentials and region in the environment, and no profile or endpoint override.

    Nothing a developer's shell exports can then send a client to a real account or endpoint
    (moto intercepts the default endpoints; an AWS_ENDPOINT_URL would slip past it).
    """
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@cache
def template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return dict(yaml_parse((ROOT / "template.yaml").read_text()))


def queue_properties(logical_id: str) -> dict[str, Any]:
    return dict(template()["Resources"][logical_id].get("Properties") or {})


def create_queues(sqs: Any) -> tuple[str, str]:
    """Retry queue and DLQ as template.yaml defines them (retention, visibility, redrive)."""
    dlq_props = queue_properties("RetryDeadLetterQueue")
    dlq_url = sqs.create_queue(
        QueueName="dodo-cio-dlq",
        Attributes={"MessageRetentionPeriod": str(dlq_props.get("MessageRetentionPeriod", 1209600))},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    props = queue_properties("RetryQueue")
    redrive = props.get("RedrivePolicy") or {}
    queue_url = sqs.create_queue(
        QueueName="dodo-cio-retry",
        Attributes={
            "VisibilityTimeout": str(props.get("VisibilityTimeout", 180)),
            "MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 345600)),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": int(redrive.get("maxReceiveCount", 20))}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def create_quarantine_queue(sqs: Any) -> str:
    """The QuarantineQueue as template.yaml defines it (retention, message size)."""
    props = queue_properties("QuarantineQueue")
    attributes = {"MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 1209600))}
    if "MaximumMessageSize" in props:
        attributes["MaximumMessageSize"] = str(props["MaximumMessageSize"])
    return str(sqs.create_queue(QueueName="dodo-cio-quarantine", Attributes=attributes)["QueueUrl"])


def put_secrets(ssm: Any, *, webhook_secret: str | None, site_id: str | None, api_key: str | None) -> None:
    for name, value in (
        ("webhook-secret", webhook_secret),
        ("customerio-site-id", site_id),
        ("customerio-api-key", api_key),
    ):
        if value is not None:
            ssm.put_parameter(Name=f"{SSM_PATH}/{name}", Value=value, Type="SecureString", Overwrite=True)


class FailingOperation:
    """A boto3 client whose one operation raises `error`; every other attribute is the client's own.

    Put it where one component holds its client, so that only that component sees the fault.
    """

    def __init__(self, client: Any, operation: str, error: Exception) -> None:
        self._client, self._operation, self._error = client, operation, error

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            return self._fail
        return getattr(self._client, name)

    def _fail(self, **kwargs: Any) -> Any:
        raise self._error


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message currently visible on the queue (bodies parsed), leaving them in flight."""
    return [
        {"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})}
        for m in receive_all(sqs, queue_url)
    ]


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message currently visible on the queue as SQS returns it (all attributes), leaving them in flight."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)


def create_state_table(dynamodb: Any, name: str = "dodo-cio-state") -> str:
    """The StateTable as template.yaml defines it (the local run's own reader, so both follow the template)."""
    from dodo_cio_local import local_run

    return local_run.create_state_table(dynamodb, local_run.state_table_spec(template()["Resources"]), name)
