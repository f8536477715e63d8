"""What the local run takes from template.yaml, so it cannot drift from the deployed stack.

Queue attributes, the functions' environment and limits, the retry function's SQS event source
and the state table's key schema, read with samtranslator's YAML loader (it understands !Ref,
!GetAtt and !Sub). Only plain values, `!Ref` to a parameter's Default and `!Sub` on pseudo
parameters resolve; anything else is a LocalRunError naming the property, so a template change
the local run cannot follow fails loudly instead of running something else.

Split from local_run.py, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType as QueueAttributeName

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE: Final = REPO_ROOT / "template.yaml"
STACK_NAME: Final = "dodo-cio-local"
REGION: Final = "us-east-1"


class LocalRunError(RuntimeError):
    """The local run cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    attributes: dict[QueueAttributeName, str]


@dataclass(frozen=True, slots=True)
class TemplateSettings:
    """What the local run takes from template.yaml, so it cannot drift from the deployed stack."""

    retry_queue: QueueSpec
    dead_letter_queue: QueueSpec
    max_receive_count: int
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    # The retry function and its SQS event source.
    retry_environment: dict[str, str] = field(default_factory=dict)
    retry_timeout_seconds: int = 30
    retry_memory_mb: int = 256
    retry_batch_size: int = 10
    retry_reports_batch_item_failures: bool = True
    # The StateTable's key schema and attribute definitions (idempotency + freshness records).
    state_table: dict[str, Any] = field(default_factory=dict)
    # Where signed but unreadable webhooks are kept; a default queue when the template has none.
    quarantine_queue: QueueSpec = field(default_factory=lambda: QueueSpec(f"{STACK_NAME}-quarantine", {}))


def _resolve(value: Any, params: Mapping[str, Any], where: str) -> Any:
    """Plain values, `!Ref Parameter` (its Default) and `!Sub` on pseudo parameters; nothing more."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name == "AWS::StackName":
            return STACK_NAME
        if name == "AWS::Region":
            return REGION
        if name in params and "Default" in params[name]:
            return params[name]["Default"]
        raise LocalRunError(f"template.yaml {where}: cannot resolve !Ref {name} locally")
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text: str = value["Fn::Sub"]
        for pseudo, replacement in (("AWS::StackName", STACK_NAME), ("AWS::Region", REGION)):
            text = text.replace("${" + pseudo + "}", replacement)
        if "${" in text:
            raise LocalRunError(f"template.yaml {where}: cannot resolve !Sub {value['Fn::Sub']!r} locally")
        return text
    if isinstance(value, dict | list):
        raise LocalRunError(f"template.yaml {where}: unsupported value {value!r}")
    return value


def _get(doc: Any, *path: str) -> Any:
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise LocalRunError(f"template.yaml has no {'.'.join(path)}")
        node = node[key]
    return node


def _as_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LocalRunError(f"template.yaml {where} must be a number, not {value!r}") from None


def _queue_spec(resource: Any, params: Mapping[str, Any], logical_id: str, default_name: str) -> QueueSpec:
    props = _get(resource, "Properties")
    name = props.get("QueueName")
    attributes: dict[QueueAttributeName, str] = {}
    keys: tuple[QueueAttributeName, ...] = ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize")
    for key in keys:
        if key in props:
            attributes[key] = str(_as_int(_resolve(props[key], params, f"{logical_id}.{key}"), key))
    if "SqsManagedSseEnabled" in props:
        sse = _resolve(props["SqsManagedSseEnabled"], params, f"{logical_id}.SqsManagedSseEnabled")
        attributes["SqsManagedSseEnabled"] = str(sse).lower()
    resolved = _resolve(name, params, f"{logical_id}.QueueName") if name is not None else default_name
    return QueueSpec(str(resolved), attributes)


def read_template(path: Path = DEFAULT_TEMPLATE) -> TemplateSettings:
    """Queue attributes, the ingest function's environment and limits, from the SAM template."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 - dev dependency, local run only

    if not path.is_file():
        raise LocalRunError(f"{path} not found: run from a checkout of the repository (or pass --template)")
    doc = yaml_parse(path.read_text(encoding="utf-8"))
    params: Mapping[str, Any] = doc.get("Parameters") or {}
    resources = _get(doc, "Resources")
    retry = _get(resources, "RetryQueue")
    dlq = _get(resources, "RetryDeadLetterQueue")
    redrive = _get(retry, "Properties", "RedrivePolicy")
    max_receive = _as_int(
        _resolve(_get(redrive, "maxReceiveCount"), params, "RetryQueue.RedrivePolicy.maxReceiveCount"),
        "RetryQueue.RedrivePolicy.maxReceiveCount",
    )
    retry_spec = _queue_spec(retry, params, "RetryQueue", f"{STACK_NAME}-retry")
    for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
        if key not in retry_spec.attributes:
            raise LocalRunError(f"template.yaml has no RetryQueue.Properties.{key}")

    state_table = state_table_spec(resources)
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    function = _get(resources, "IngestFunction", "Properties")
    environment = _function_environment(globals_fn, function, params, "IngestFunction")
    timeout = _as_int(function.get("Timeout", globals_fn.get("Timeout", 3)), "Timeout")
    memory = _as_int(function.get("MemorySize", globals_fn.get("MemorySize", 128)), "MemorySize")
    retry_fn = _get(resources, "RetryFunction", "Properties")
    batch_size, report_failures = _retry_event_source(retry_fn, params)
    return TemplateSettings(
        retry_queue=retry_spec,
        dead_letter_queue=_queue_spec(dlq, params, "RetryDeadLetterQueue", f"{STACK_NAME}-retry-dlq"),
        max_receive_count=max_receive,
        environment=environment,
        timeout_seconds=timeout,
        memory_mb=memory,
        retry_environment=_function_environment(globals_fn, retry_fn, params, "RetryFunction"),
        retry_timeout_seconds=_as_int(retry_fn.get("Timeout", globals_fn.get("Timeout", 3)), "RetryFunction.Timeout"),
        retry_memory_mb=_as_int(
            retry_fn.get("MemorySize", globals_fn.get("MemorySize", 128)), "RetryFunction.MemorySize"
        ),
        retry_batch_size=batch_size,
        retry_reports_batch_item_failures=report_failures,
        state_table=state_table,
        quarantine_queue=_queue_spec(
            resources.get("QuarantineQueue") or {"Properties": {}},
            params,
            "QuarantineQueue",
            f"{STACK_NAME}-quarantine",
        ),
    )


# `!Ref`s to the queues and the table: the local run sets moto's URLs and table name instead.
_QUEUE_URL_VARIABLES: Final = frozenset(
    {"RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "QUARANTINE_QUEUE_URL", "STATE_TABLE_NAME"}
)
STATE_TABLE: Final = f"{STACK_NAME}-state"


def state_table_spec(resources: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable arguments from the template's StateTable (key schema, attributes, billing)."""
    props = _get(resources, "StateTable", "Properties")
    return {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }


def create_state_table(dynamodb: Any, spec: Mapping[str, Any], name: str = STATE_TABLE) -> str:
    dynamodb.create_table(TableName=name, **spec)
    return name


def _function_environment(
    globals_fn: Mapping[str, Any], function: Mapping[str, Any], params: Mapping[str, Any], logical_id: str
) -> dict[str, str]:
    environment: dict[str, str] = {}
    for source, where in ((globals_fn, "Globals.Function"), (function, logical_id)):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        for key, value in variables.items():
            if key in _QUEUE_URL_VARIABLES:
                continue
            resolved = _resolve(value, params, f"{where}.Environment.Variables.{key}")
            environment[key] = "" if resolved is None else str(resolved)
    return environment


def _retry_event_source(function: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[int, bool]:
    """(BatchSize, ReportBatchItemFailures) of the RetryFunction's SQS event on the RetryQueue."""
    events = function.get("Events") or {}
    sqs_events = [(name, e) for name, e in events.items() if isinstance(e, dict) and e.get("Type") == "SQS"]
    if len(sqs_events) != 1:
        raise LocalRunError("template.yaml: RetryFunction must have exactly one SQS event (the retry queue)")
    name, event = sqs_events[0]
    props = event.get("Properties") or {}
    where = f"RetryFunction.Events.{name}.BatchSize"
    batch_size = _as_int(_resolve(props.get("BatchSize", 10), params, where), where)
    report = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
    return batch_size, report
