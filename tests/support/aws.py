"""Seed moto with what the template creates, using the template's own queue properties."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SSM_PATH = "/dodo-customerio"


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


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message currently visible on the queue (bodies parsed), leaving them in flight."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return out
        out.extend({"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})} for m in messages)


def create_state_table(dynamodb: Any, name: str = "dodo-cio-state") -> str:
    """The StateTable as template.yaml defines it (the local run's own reader, so both follow the template)."""
    from dodo_cio_local import local_run

    return local_run.create_state_table(dynamodb, local_run.state_table_spec(template()["Resources"]), name)
