"""Quarantined webhooks, operator side: list them (`dodo-cio dlq`) and put them back through (`dodo-cio reprocess`).

A quarantined webhook was signed by Dodo but could not be processed by the deployed version
(format in `dodo_cio.receiving.quarantine`). After an upgrade, `reprocess` hands each one to the ingest
function by a direct Lambda invoke (`reprocess_event`); the function verifies the kept signature
again against the current webhook secret(s), with the queue's retention as the timestamp window
(`quarantine.RERUN_TOLERANCE_SECONDS`), and runs the ordinary flow. The
message is deleted only when the function answered 2xx, so nothing is lost to a secret that was
rotated, a model that still cannot parse it, or a transient failure: those stay for the next run.

Listings show ids, type, time and the validation error only; the body is never printed (it holds
the customer's email), and the error text is scrubbed of addresses like the DLQ's reasons.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from dodo_cio.receiving.quarantine import QuarantinedWebhook, QuarantineFormatError, reprocess_event
from dodo_cio_cli.aws_calls import OperatorError, call_aws
from dodo_cio_cli.operator import DeadLetter, _one_line, _redact, _truncate, format_age
from dodo_cio_cli.sqs_peek import peek_messages, release_messages

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# Long enough for a batch of 10 invocations (the ingest function's timeout is 12 s); the ones
# left are made visible again as soon as the run ends.
REPROCESS_VISIBILITY_SECONDS: Final = 300
ERROR_WIDTH: Final = 70
KEEP_HINTS: Final = {
    "still_invalid": "this version still cannot process it; upgrade the model or mapping, then run again "
    "(a 'rejected' one no upgrade fixes: read it and decide)",
    "signature": "the kept signature no longer verifies: add the webhook secret it was signed with back "
    "to webhook-secret (space-separated, next to the current one), run again, then remove it",
    "retry_later": "a transient failure; run again later",
    "too_old": "signed longer ago than the quarantine can keep anything (14 days and 5 minutes): the bridge "
    "will not re-run it, whatever the secret; read it and decide (dodo-cio dlq --export keeps it)",
}


class LambdaInvoker(Protocol):
    """The one Lambda call needed (boto3-stubs has no lambda extra installed)."""

    def invoke(self, **kwargs: Any) -> Mapping[str, Any]: ...


# -- listing ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantine-queue message as an operator sees it; never the body."""

    message_id: str
    webhook_id: str | None
    event_type: str | None
    received_at: int | None  # Unix seconds, when the bridge received and verified it
    age_seconds: int | None
    reason: str  # "field: detail", why it could not be processed at receipt
    kind: str  # quarantined | unreadable (not in the quarantine format)
    why: str = "-"  # the format's kind: unreadable | unknown_type | rejected ("-" when not in the format)


def _quarantined(message: Mapping[str, Any], now: float) -> Quarantined:
    message_id = str(message.get("MessageId", ""))
    try:
        item = QuarantinedWebhook.from_json(message.get("Body", ""))
    except QuarantineFormatError as exc:
        sent = str((message.get("Attributes") or {}).get("SentTimestamp") or "")
        at = int(sent) // 1000 if sent.isdigit() else None
        age = max(0, int(now - at)) if at is not None else None
        return Quarantined(message_id, None, None, at, age, f"not a quarantined webhook: {exc}", "unreadable")
    received = item.received_at or None
    return Quarantined(
        message_id=message_id,
        webhook_id=_redact(item.webhook_id),
        event_type=_redact(item.event_type) if item.event_type else None,
        received_at=received,
        age_seconds=max(0, int(now - received)) if received else None,
        reason=_redact(item.reason),
        kind="quarantined",
        why=item.kind,
    )


def list_quarantined(
    sqs: SQSClient, queue_url: str, *, limit: int = 100, now: float | None = None, wait_seconds: int = 1
) -> list[Quarantined]:
    """Peek at up to `limit` quarantined webhooks, leaving them on the queue (`operator.peek_messages`)."""
    current = time.time() if now is None else now
    messages = peek_messages(sqs, queue_url, limit=limit, what="the quarantine queue", wait_seconds=wait_seconds)
    return [_quarantined(message, current) for message in messages]


def _received(at: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at)) if at else "?"


def format_quarantined(items: Sequence[Quarantined], *, limit: int | None = None) -> str:
    """A table marked QUARANTINED, with a summary line and what to do about it."""
    if not items:
        return "no quarantined webhooks"
    headers = ("QUARANTINED WEBHOOK", "TYPE", "RECEIVED (UTC)", "AGE", "KIND", "REASON")
    rows = [
        (
            _truncate(_one_line(item.webhook_id or "-"), 40),
            _truncate(_one_line(item.event_type or "?"), 40),
            _received(item.received_at),
            format_age(item.age_seconds),
            item.why,
            _truncate(_one_line(item.reason), ERROR_WIDTH),
        )
        for item in items
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    noun = "quarantined webhook" if len(items) == 1 else "quarantined webhooks"
    by_kind = Counter(i.why for i in items if i.kind == "quarantined")
    by_field = Counter(_one_line(i.reason.split(":", 1)[0]) for i in items if i.kind == "quarantined")
    summary = f"{len(items)} {noun} (signed by Dodo, not processable by this version as they are)"
    if by_kind:
        summary += " - by kind: " + ", ".join(f"{name} {count}" for name, count in by_kind.most_common())
    if by_field:
        summary += "; by field: " + ", ".join(f"{name} {count}" for name, count in by_field.most_common())
    if limit is not None and len(items) >= limit:
        summary += f" (stopped at --limit {limit}; there may be more)"
    advice = "after upgrading the bridge: dodo-cio reprocess (deletes each one the function accepts)"
    if by_kind.get("rejected"):
        advice += "; 'rejected' ones carry an id DynamoDB cannot key: no upgrade fixes them, read and decide"
    return "\n".join([*(line(r).rstrip() for r in [headers, *rows]), summary, advice])


def listing_json(dead: Sequence[DeadLetter], quarantined: Sequence[Quarantined]) -> str:
    """Both queues as one JSON array; each object says its `queue` (dead_letter | quarantine).

    One array, as `dlq --json` has always printed: the DLQ's objects keep their keys (plus
    `queue`), and quarantined webhooks follow with `kind` "quarantined".
    """
    out = [{"queue": "dead_letter", **asdict(item)} for item in dead]
    out += [{"queue": "quarantine", **asdict(item)} for item in quarantined]
    return json.dumps(out, indent=2, ensure_ascii=False)


# -- reprocessing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """What happened to one quarantined message."""

    message_id: str
    webhook_id: str | None
    event_type: str | None
    status: int | None  # the function's statusCode; None when it gave none
    outcome: str  # the answer's status (delivered, queued, ...), or still_invalid | signature | retry_later | ...
    detail: str
    deleted: bool  # handled (2xx) and removed from the quarantine queue


def classify(status: int | None, body: Mapping[str, Any]) -> tuple[str, bool, str]:
    """(outcome, handled, detail) of the ingest function's answer to a reprocess invoke.

    2xx: handled, whatever it became (delivered, queued, ignored, dead_lettered, duplicate);
    422: this version still cannot process it; 401: the kept signature no longer verifies with the
    current secrets, or (reason "timestamp outside tolerance") it is older than the re-run window;
    409 and 5xx: try again later. Anything else is kept and shown as it came.
    """
    detail = ""
    if body.get("field") or body.get("detail"):
        detail = f"{body.get('field', '')}: {body.get('detail', '')}"
    elif body.get("error"):
        detail = str(body["error"]) + (f" ({body['reason']})" if body.get("reason") else "")
    if status is not None and 200 <= status < 300:
        return str(body.get("status") or "handled"), True, detail
    if status == 422:
        return "still_invalid", False, detail
    if status == 401:
        if body.get("reason") == "timestamp outside tolerance":  # the re-run window, not the secret
            return "too_old", False, detail
        return "signature", False, detail or "invalid signature"
    if status == 409 or (status is not None and status >= 500):
        return "retry_later", False, detail
    return f"http_{status}" if status is not None else "no_answer", False, detail


def _invoke(lam: LambdaInvoker, function: str, item: QuarantinedWebhook) -> tuple[int | None, dict[str, Any], str]:
    """(statusCode, parsed body, function error) of one direct invoke; raises OperatorError on API errors."""

    def translate(code: str, message: str) -> str | None:
        if code == "ResourceNotFoundException":
            return f"function {function!r} not found: check --function and the region, or pass --stack"
        if code in {"AccessDeniedException", "AccessDenied"}:
            return f"access denied invoking {function}: reprocessing needs lambda:InvokeFunction on it"
        return None

    payload = json.dumps(reprocess_event(item)).encode("utf-8")
    response = call_aws(
        f"invoking {function}",
        lambda: lam.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=payload),
        translate,
    )
    raw: Any = response.get("Payload")
    text = raw.read() if hasattr(raw, "read") else raw or b""
    try:
        answer = json.loads(text or b"null")
    except ValueError:
        answer = None
    if response.get("FunctionError"):
        kind = answer.get("errorType", "") if isinstance(answer, dict) else ""
        return None, {}, f"the function raised {kind or 'an error'}".strip()
    if not isinstance(answer, dict):
        return None, {}, "the function's answer is not an API Gateway response"
    try:
        body = json.loads(answer.get("body") or "{}")
    except (TypeError, ValueError):
        body = {}
    status = answer.get("statusCode")
    return (status if isinstance(status, int) else None), (body if isinstance(body, dict) else {}), ""


def reprocess(
    sqs: SQSClient,
    lam: LambdaInvoker,
    queue_url: str,
    function: str,
    *,
    limit: int = 100,
    dry_run: bool = False,
    on_result: Callable[[Reprocessed], None] | None = None,
    wait_seconds: int = 1,
) -> list[Reprocessed]:
    """Invoke `function` with each quarantined message (up to `limit`); delete those answered 2xx.

    Messages not handled stay on the queue and are made visible again when the run ends; so do
    the ones received but not yet tried when an API error (function missing, access denied) stops
    the run. A message deleted after a 2xx whose receipt had expired would only be run once more
    later: the function's duplicate check answers it without a second delivery. With `dry_run`
    the messages are only peeked at (`dlq`'s listing), nothing is invoked or deleted.
    `wait_seconds` is SQS long polling: an empty short poll of SQS can miss messages, moto's cannot.
    """
    if limit < 1:
        raise OperatorError(f"--limit must be at least 1, not {limit}")
    results: list[Reprocessed] = []
    if dry_run:
        for item in list_quarantined(sqs, queue_url, limit=limit, wait_seconds=wait_seconds):
            result = Reprocessed(item.message_id, item.webhook_id, item.event_type, None, "dry_run", item.reason, False)
            results.append(result)
            if on_result:
                on_result(result)
        return results
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles to make visible again
    try:
        while len(seen) < limit:
            got = call_aws(
                "reading the quarantine queue",
                lambda: sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    VisibilityTimeout=REPROCESS_VISIBILITY_SECONDS,
                    WaitTimeSeconds=wait_seconds,
                ),
            )
            fresh = [m for m in got.get("Messages", []) if m["MessageId"] not in seen]
            if not fresh:
                kept.extend(m["ReceiptHandle"] for m in got.get("Messages", []))
                break
            pending = [m["ReceiptHandle"] for m in fresh]
            kept.extend(pending)  # until handled; removed again once deleted
            for message in fresh:
                seen.add(message["MessageId"])
                result = _one(sqs, lam, queue_url, function, message)
                if result.deleted:
                    kept.remove(message["ReceiptHandle"])
                results.append(result)
                if on_result:
                    on_result(result)
    finally:
        release_messages(sqs, queue_url, kept)
    return results


def _one(sqs: SQSClient, lam: LambdaInvoker, queue_url: str, function: str, message: Mapping[str, Any]) -> Reprocessed:
    message_id = str(message["MessageId"])
    try:
        item = QuarantinedWebhook.from_json(message.get("Body", ""))
    except QuarantineFormatError as exc:
        return Reprocessed(message_id, None, None, None, "unreadable", f"not a quarantined webhook: {exc}", False)
    webhook_id, event_type = _redact(item.webhook_id), _redact(item.event_type) if item.event_type else None
    status, body, error = _invoke(lam, function, item)
    if error:
        return Reprocessed(message_id, webhook_id, event_type, None, "retry_later", error, False)
    outcome, handled, detail = classify(status, body)
    if handled:
        call_aws(
            "deleting from the quarantine queue",
            lambda: sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]),
        )
    return Reprocessed(message_id, webhook_id, event_type, status, outcome, _redact(detail), handled)


def format_result(result: Reprocessed) -> str:
    """One line per message: id, type, the function's answer, and whether it left the queue."""
    webhook = f"{_one_line(result.webhook_id or result.message_id)}  {_one_line(result.event_type or '?')}"
    detail = _truncate(_one_line(result.detail), ERROR_WIDTH)
    if result.outcome == "dry_run":
        return f"{webhook}  quarantined for {detail}  (would be sent to the function)"
    status = "" if result.status is None else f"{result.status} "
    answer = f"{status}{result.outcome}: {detail}" if detail else f"{status}{result.outcome}"
    return f"{webhook}  -> {answer} ({'deleted' if result.deleted else 'kept'})"


def summary(results: Sequence[Reprocessed], *, limit: int | None = None) -> str:
    """The closing lines: counts by outcome, and what to do about what stayed."""
    if not results:
        return "no quarantined webhooks"
    if all(r.outcome == "dry_run" for r in results):
        return f"dry run: {len(results)} quarantined webhook(s) would be sent to the function; nothing changed"
    handled = [r for r in results if r.deleted]
    remained = [r for r in results if not r.deleted]
    counts = Counter(r.outcome for r in results)
    lines = [
        f"{len(results)} reprocessed: {len(handled)} handled and deleted, {len(remained)} kept on the queue"
        f" - {', '.join(f'{name} {count}' for name, count in counts.most_common())}"
    ]
    if limit is not None and len(results) >= limit:
        lines[0] += f" (stopped at --limit {limit}; there may be more)"
    for outcome in sorted({r.outcome for r in remained}):
        if outcome in KEEP_HINTS:
            lines.append(f"  {outcome}: {KEEP_HINTS[outcome]}")
    return "\n".join(lines)
