"""Operator commands: look at the dead-letter queue, redrive it, replay a saved webhook, find the stack.

The CLI (`dodo-cio dlq | redrive | replay`) is a thin shell over these functions. Every AWS or
HTTP failure becomes an `OperatorError` whose message says what to do, so the CLI prints one line
instead of a traceback. Nothing here prints or returns an email address: parked ops hold them, so
listings show only ids, kinds and reasons (and reasons are scrubbed of addresses too).

Imports of botocore and requests are deferred so `import dodo_cio_cli.operator` stays cheap.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from dodo_cio.delivery.parking import ParkedDelivery, ParkedFormatError
from dodo_cio.receiving.signature import parse_secrets
from dodo_cio_cli.aws_calls import PEEK_VISIBILITY_SECONDS, OperatorError, call_aws
from dodo_cio_cli.sqs_peek import peek_messages

if TYPE_CHECKING:
    import requests
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "MAX_REDRIVE_RATE",
    "DeadLetter",
    "DeployedStack",
    "OperatorError",
    "call_aws",
    "cancel_redrive",
    "dead_letters_json",
    "format_age",
    "format_dead_letters",
    "format_redrive_status",
    "list_dead_letters",
    "read_secret_from_ssm",
    "redrive_status",
    "replay",
    "resolve_stack",
    "resolve_stack_outputs",
    "resolve_stack_parameters",
    "start_redrive",
]

MAX_REDRIVE_RATE: Final = 500  # SQS's ceiling for MaxNumberOfMessagesPerSecond
REPLAY_TIMEOUT: Final = 15.0  # Dodo gives up on an endpoint after 15 s; a replay should too
REASON_WIDTH: Final = 60
STATUS_HINT: Final = "see `dodo-cio redrive --status`"
WEBHOOK_SECRET_NAME: Final = "webhook-secret"  # noqa: S105 - a parameter name, not a secret

_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_ACTIVE_TASK: Final = re.compile(r"already|only one active", re.IGNORECASE)


class CloudFormation(Protocol):
    """The one CloudFormation call needed (boto3-stubs has no cloudformation extra installed)."""

    def describe_stacks(self, **kwargs: Any) -> Mapping[str, Any]: ...


# -- shared helpers ---------------------------------------------------------------------------------


def _redact(text: str) -> str:
    """Emails out of anything shown: a reason may quote Customer.io, which may quote an address."""
    return _EMAIL.sub("<email>", text) if "@" in text else text


def _one_line(text: str) -> str:
    """No control characters or newlines in a table cell (a body cannot drive the terminal)."""
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return " ".join(cleaned.split())


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _require_sqs_arn(value: str, what: str) -> None:
    """A queue URL where an ARN belongs is the likeliest mistake; say so before SQS does."""
    if not (value.startswith("arn:") and ":sqs:" in value):
        raise OperatorError(
            f"{what} must be a queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME), not {value!r}; "
            "the stack outputs DeadLetterQueueArn and RetryQueueArn, or pass --stack"
        )


# -- dead letters -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One DLQ message as an operator sees it: ids, kind, reason, timing. Never ops, never emails."""

    message_id: str
    event_type: str  # "?" when the body could not be read
    customer_id: str | None
    webhook_id: str | None
    reason: str
    kind: str  # permanent | transient | config | unreadable
    status: int | None  # Customer.io's HTTP status, None when no answer arrived
    attempts: int | None  # delivery attempts recorded in the parked message
    first_seen: int | None  # Unix seconds, when the bridge first received the webhook
    dead_lettered_at: int | None  # Unix seconds; None when SQS moved it (time not recorded)
    age_seconds: int | None  # now - first_seen, else now - SentTimestamp


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _dead_letter(message: Mapping[str, Any], now: float) -> DeadLetter:
    attributes: Mapping[str, str] = message.get("Attributes") or {}
    custom = message.get("MessageAttributes") or {}

    def custom_value(name: str) -> str | None:
        value = custom.get(name, {}).get("StringValue")
        return value if isinstance(value, str) else None

    sent_ms = _int_or_none(attributes.get("SentTimestamp"))
    sent = sent_ms // 1000 if sent_ms is not None else None
    message_id = str(message.get("MessageId", ""))
    parked: ParkedDelivery | None = None
    why_unreadable = ""
    if custom_value("error_kind") == "unreadable":
        why_unreadable = custom_value("reason") or "unreadable parked message"
    else:
        try:
            parked = ParkedDelivery.from_json(message.get("Body", ""))
        except ParkedFormatError as exc:
            why_unreadable = f"unreadable parked message: {exc}"

    if parked is None:
        at = _int_or_none(custom_value("dead_lettered_at")) or sent
        return DeadLetter(
            message_id=message_id,
            event_type="?",
            customer_id=None,
            webhook_id=None,
            reason=_redact(why_unreadable),
            kind="unreadable",
            status=None,
            attempts=None,
            first_seen=None,
            dead_lettered_at=at,
            age_seconds=max(0, int(now - sent)) if sent is not None else None,
        )

    error = parked.last_error
    reason = error.reason
    dead_lettered_at: int | None = error.at or sent
    if attributes.get("DeadLetterQueueSourceArn"):
        # SQS moved it (maxReceiveCount: the retry function kept crashing on it); last_error is older.
        reason = f"moved by SQS after too many receives; last error: {reason}"
        dead_lettered_at = None
    return DeadLetter(
        message_id=message_id,
        event_type=_redact(parked.event_type),
        customer_id=_redact(parked.customer_id) if parked.customer_id else None,
        webhook_id=_redact(parked.webhook_id),
        reason=_redact(reason),
        kind=error.kind,
        status=error.status,
        attempts=parked.attempts,
        first_seen=parked.first_seen,
        dead_lettered_at=dead_lettered_at,
        age_seconds=max(0, int(now - parked.first_seen)),
    )


def list_dead_letters(
    sqs: SQSClient,
    dlq_url: str,
    *,
    limit: int = 100,
    now: float | None = None,
    visibility_timeout: int = PEEK_VISIBILITY_SECONDS,
    wait_seconds: int = 1,
) -> list[DeadLetter]:
    """Peek at up to `limit` dead letters without consuming them (see `peek_messages`).

    Bodies are parsed but only ids, kind, reason and timing are kept: ops hold emails.
    """

    current = time.time() if now is None else now
    messages = peek_messages(
        sqs,
        dlq_url,
        limit=limit,
        what="the dead-letter queue",
        visibility_timeout=visibility_timeout,
        wait_seconds=wait_seconds,
    )
    return [_dead_letter(message, current) for message in messages]


def format_age(seconds: float | None) -> str:
    """Compact age for a table: 45s, 12m, 3h12m, 2d03h."""
    if seconds is None:
        return "?"
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{minutes}m"
    if days == 0:
        return f"{hours}h{minutes:02d}m"
    return f"{days}d{hours:02d}h"


def _counts(values: Iterable[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in Counter(values).most_common())


def format_dead_letters(items: Sequence[DeadLetter], *, limit: int | None = None) -> str:
    """A fixed-width table plus a summary line; `limit` notes when the listing may be partial."""
    if not items:
        return "no dead letters"
    headers = ("TYPE", "CUSTOMER", "KIND", "STATUS", "ATTEMPTS", "AGE", "REASON")
    rows = [
        (
            _truncate(_one_line(item.event_type), 40),
            _truncate(_one_line(item.customer_id or "-"), 40),
            item.kind,
            "-" if item.status is None else str(item.status),
            "-" if item.attempts is None else str(item.attempts),
            format_age(item.age_seconds),
            _truncate(_one_line(item.reason), REASON_WIDTH),
        )
        for item in items
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {3, 4, 5}  # numbers and ages line up on the right

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(headers), *(line(r) for r in rows)]
    noun = "dead letter" if len(items) == 1 else "dead letters"
    summary = (
        f"{len(items)} {noun} - by kind: {_counts(i.kind for i in items)}"
        f" - by type: {_counts(_one_line(i.event_type) for i in items)}"
    )
    if limit is not None and len(items) >= limit:
        summary += f" (stopped at --limit {limit}; there may be more)"
    out.append(summary)
    return "\n".join(out)


def dead_letters_json(items: Sequence[DeadLetter]) -> str:
    """The listing as a JSON array (one object per DeadLetter) for jq and scripts."""
    return json.dumps([asdict(item) for item in items], indent=2, ensure_ascii=False)


# -- redrive ----------------------------------------------------------------------------------------


def _redrive_errors(code: str, message: str) -> str | None:
    if code in {"AccessDenied", "AccessDeniedException"}:
        return (
            f"access denied ({message or code}): a redrive needs sqs:StartMessageMoveTask, "
            "sqs:ListMessageMoveTasks, sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes "
            "on the dead-letter queue and sqs:SendMessage on the destination"
        )
    # One active task per source queue. Reports differ on the code SQS uses for it
    # (InvalidParameterValue or UnsupportedOperation), so the message decides.
    if _ACTIVE_TASK.search(message):
        return f"a redrive is already running for this queue; {STATUS_HINT}"
    if code == "UnsupportedOperation":
        return (
            f"SQS cannot redrive from this queue ({message or code}): the source must be the "
            "dead-letter queue of an SQS queue (the stack's DeadLetterQueueArn)"
        )
    if code in {"ResourceNotFoundException", "QueueDoesNotExist", "NonExistentQueue"}:
        return f"queue not found ({message or code}): check the ARNs and the region, or pass --stack"
    if code == "InvalidParameterValue":
        return f"SQS rejected the redrive: {message or code}"
    return None


def _validate_rate(rate: object) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_REDRIVE_RATE:
        raise OperatorError(
            f"--rate must be a whole number of messages per second from 1 to {MAX_REDRIVE_RATE}, not {rate!r}"
        )
    return rate


def start_redrive(
    sqs: SQSClient,
    dlq_arn: str,
    *,
    destination_arn: str | None = None,
    rate: int | None = None,
) -> str:
    """Start moving every DLQ message to `destination_arn`; returns the task handle.

    Pass the retry queue's ARN (stack output RetryQueueArn). Without a destination SQS returns each
    message to the queue it came from, which it can only know for messages it moved there itself
    (maxReceiveCount); the retry function *sends* its dead letters, so those need the destination.
    `rate` caps messages per second (1..500; default: SQS picks). Moved messages get new message ids.

    Worth knowing before a redrive: the retry function measures its give-up horizon (36 h
    transient, 7 d config) from the parked `first_seen`, so a redriven delivery past it that fails
    again is dead-lettered again on that first failure; a permanent failure (HTTP 400) fails the
    same way until the data or mapping is fixed. Redrive after fixing the cause (credentials, an
    outage that is over).
    """
    _require_sqs_arn(dlq_arn, "the dead-letter queue")
    request: dict[str, Any] = {"SourceArn": dlq_arn}
    if destination_arn is not None:
        _require_sqs_arn(destination_arn, "the destination")
        if destination_arn == dlq_arn:
            raise OperatorError("the destination is the dead-letter queue itself; use the retry queue")
        request["DestinationArn"] = destination_arn
    if rate is not None:
        request["MaxNumberOfMessagesPerSecond"] = _validate_rate(rate)
    response = call_aws("starting the redrive", lambda: sqs.start_message_move_task(**request), _redrive_errors)
    handle = response.get("TaskHandle")
    if not handle:
        raise OperatorError("SQS accepted the redrive but returned no task handle; " + STATUS_HINT)
    return handle


def _seconds(timestamp: object) -> int | None:
    """StartedTimestamp is epoch milliseconds; tolerate seconds too."""
    value = _int_or_none(timestamp)
    if value is None:
        return None
    return value // 1000 if value > 10**11 else value


def redrive_status(sqs: SQSClient, dlq_arn: str) -> list[dict[str, Any]]:
    """The most recent redrive tasks of the DLQ (up to 10, newest first), as plain dicts.

    Keys: task_handle (only while running), status (RUNNING, COMPLETED, CANCELLING, CANCELLED,
    FAILED), moved, to_move, failure_reason, source_arn, destination_arn, rate, started_at (Unix s).
    """
    _require_sqs_arn(dlq_arn, "the dead-letter queue")
    response = call_aws(
        "reading the redrive status",
        lambda: sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10),
        _redrive_errors,
    )
    return [
        {
            "task_handle": task.get("TaskHandle"),
            "status": task.get("Status", "?"),
            "moved": task.get("ApproximateNumberOfMessagesMoved"),
            "to_move": task.get("ApproximateNumberOfMessagesToMove"),
            "failure_reason": task.get("FailureReason"),
            "source_arn": task.get("SourceArn"),
            "destination_arn": task.get("DestinationArn"),
            "rate": task.get("MaxNumberOfMessagesPerSecond"),
            "started_at": _seconds(task.get("StartedTimestamp")),
        }
        for task in response.get("Results", [])
    ]


def format_redrive_status(tasks: Sequence[Mapping[str, Any]], *, now: float | None = None) -> str:
    """One line per task: status, progress, age, destination and failure reason."""
    if not tasks:
        return "no redrive has been started for this queue"
    current = time.time() if now is None else now
    lines = []
    for task in tasks:
        moved = "?" if task.get("moved") is None else str(task["moved"])
        to_move = "?" if task.get("to_move") is None else str(task["to_move"])
        started = task.get("started_at")
        parts = [
            f"{task.get('status', '?')}: {moved}/{to_move} moved",
            f"started {format_age(current - started)} ago" if isinstance(started, int) else "",
            f"to {task['destination_arn'].rsplit(':', 1)[-1]}"
            if task.get("destination_arn")
            else "to the original queues",
            f"at most {task['rate']}/s" if task.get("rate") else "",
            f"failed: {task['failure_reason']}" if task.get("failure_reason") else "",
            f"handle {task['task_handle']}" if task.get("task_handle") else "",
        ]
        lines.append(", ".join(p for p in parts if p))
    return "\n".join(lines)


def cancel_redrive(sqs: SQSClient, task_handle: str) -> int | None:
    """Stop a running redrive (messages already moved stay moved); returns how many were moved."""
    response = call_aws(
        "cancelling the redrive",
        lambda: sqs.cancel_message_move_task(TaskHandle=task_handle),
        _redrive_errors,
    )
    return response.get("ApproximateNumberOfMessagesMoved")


# -- replay -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayAnswer:
    """The bridge's answer to a replay; unpacks as (status, text). `replayed`: the bridge had
    answered this webhook id before and returned that stored answer, sending nothing again."""

    status: int
    text: str
    replayed: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.text))


REPLAYED_NOTICE: Final = (
    "(the bridge had already answered webhook-id {webhook_id}: this is its stored answer, and nothing was "
    "sent again; replay without --webhook-id to deliver it as a new event)"
)


def replay(
    body: bytes,
    *,
    url: str,
    secret: str,
    webhook_id: str | None = None,
    timeout: float = REPLAY_TIMEOUT,
    session: requests.Session | None = None,
) -> ReplayAnswer:
    """Sign a saved Dodo webhook body and POST it to the bridge; returns (HTTP status, answer text).

    The request goes through exactly the path a Dodo delivery takes (verify -> map -> deliver ->
    park), so a replay needs no special handling anywhere. It is signed now, with the first of the
    configured secrets, because Dodo's original signature is older than the 5-minute tolerance.
    The body bytes are sent unchanged. Pass the original `webhook_id` (`--webhook-id`, e.g. from
    `dodo-cio dlq`) whenever the event may already be in Customer.io: event ids are derived from
    it, so Track deduplicates the replay instead of recording the event twice (under Pipelines
    the call repeats its `messageId`, but Customer.io documents no deduplication on it). Without
    it a fresh id is used and the replay counts as a new event.

    Nothing here depends on the Customer.io API: the bridge behind `url` renders and sends with
    the one it is deployed with (`CustomerioApi`).
    """
    import requests  # noqa: PLC0415 - only replay needs HTTP

    from dodo_cio_cli.sender import send_webhook  # noqa: PLC0415

    if not url.startswith(("http://", "https://")):
        raise OperatorError(f"--url must be an http(s) URL, not {url!r}")
    try:
        parse_secrets(secret)
    except ValueError as exc:  # the message names the position only, never the value
        raise OperatorError(f"webhook secret: {exc}") from None
    try:
        response = send_webhook(
            body,
            url=url,
            secret=secret,
            webhook_id=webhook_id,
            timeout=timeout,
            session=session,
            user_agent="dodo-cio-tools (replay)",
        )
    except requests.Timeout:
        raise OperatorError(f"no answer from {url} within {timeout:g} s") from None
    except requests.RequestException as exc:
        raise OperatorError(f"cannot reach {url}: {type(exc).__name__}") from None
    from dodo_cio.receiving.http_api import REPLAYED_HEADER  # noqa: PLC0415 - the handler's own contract

    replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
    return ReplayAnswer(int(response.status_code), str(response.text), replayed)


def read_secret_from_ssm(ssm: SSMClient, path: str) -> str:
    """The webhook secret from `<path>/webhook-secret` (decrypted), so nobody pastes it into a shell."""
    name = f"{path.rstrip('/')}/{WEBHOOK_SECRET_NAME}"
    if not name.startswith("/"):
        raise OperatorError(f"the SSM path must start with '/', like /dodo-customerio, not {path!r}")

    def translate(code: str, message: str) -> str | None:
        if code == "ParameterNotFound":
            return f"SSM parameter {name} not found: check the path (the stack's SsmParameterPath) and region"
        if code in {"AccessDeniedException", "AccessDenied"}:
            return f"access denied reading {name}: it needs ssm:GetParameter and kms:Decrypt on its key"
        return None

    response = call_aws(f"reading {name}", lambda: ssm.get_parameter(Name=name, WithDecryption=True), translate)
    value = response.get("Parameter", {}).get("Value", "")
    if not value.strip():
        raise OperatorError(f"SSM parameter {name} is empty")
    try:
        parse_secrets(value)
    except ValueError as exc:
        raise OperatorError(f"SSM parameter {name}: {exc}") from None
    return value


# -- stack ------------------------------------------------------------------------------------------


def _describe_stack(cfn: CloudFormation, stack_name: str) -> Mapping[str, Any]:
    def translate(code: str, message: str) -> str | None:
        if code == "ValidationError" and "does not exist" in message:
            region = getattr(getattr(cfn, "meta", None), "region_name", None)
            where = f" in {region}" if region else ""
            return f"stack {stack_name!r} not found{where}: check --stack and the region (AWS_REGION)"
        return None

    response = call_aws(f"describing stack {stack_name}", lambda: cfn.describe_stacks(StackName=stack_name), translate)
    stacks = response.get("Stacks") or []
    if not stacks:
        raise OperatorError(f"stack {stack_name!r} not found")
    stack: Mapping[str, Any] = stacks[0]
    return stack


def _missing(stack_name: str, stack: Mapping[str, Any], what: str, keys: Sequence[str]) -> NoReturn:
    status = stack.get("StackStatus", "?")
    raise OperatorError(
        f"stack {stack_name!r} ({status}) has no {what} {', '.join(keys)}; "
        "is it this bridge's stack, and fully deployed?"
    )


@dataclass(frozen=True)
class DeployedStack:
    """A deployed stack's outputs and parameters, read with one DescribeStacks call."""

    outputs: dict[str, str]
    parameters: dict[str, str]


def resolve_stack(
    cfn: CloudFormation, stack_name: str, *, outputs: Sequence[str] = (), parameters: Sequence[str] = ()
) -> DeployedStack:
    """Outputs (OutputKey -> value) and parameters of the deployed stack, so commands can take `--stack NAME`.

    `outputs` and `parameters` name the ones the caller needs, e.g. outputs=("DeadLetterQueueUrl",);
    a missing one is an OperatorError naming it and the stack's status (parameters are checked first).
    """
    stack = _describe_stack(cfn, stack_name)
    found = DeployedStack(
        outputs={
            str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in stack.get("Outputs") or [] if "OutputKey" in o
        },
        parameters={
            str(p["ParameterKey"]): str(p.get("ResolvedValue") or p.get("ParameterValue", ""))
            for p in stack.get("Parameters") or []
            if "ParameterKey" in p
        },
    )
    for what, values, required in (("parameter", found.parameters, parameters), ("output", found.outputs, outputs)):
        missing = [key for key in required if not values.get(key)]
        if missing:
            _missing(stack_name, stack, what if len(missing) == 1 else f"{what}s", missing)
    return found


def resolve_stack_outputs(cfn: CloudFormation, stack_name: str, *, required: Sequence[str] = ()) -> dict[str, str]:
    """The outputs alone (see `resolve_stack`)."""
    return resolve_stack(cfn, stack_name, outputs=required).outputs


def resolve_stack_parameters(cfn: CloudFormation, stack_name: str, *, required: Sequence[str] = ()) -> dict[str, str]:
    """The parameters alone (e.g. SsmParameterPath for `read_secret_from_ssm`; see `resolve_stack`)."""
    return resolve_stack(cfn, stack_name, parameters=required).parameters
