"""`dodo-cio trace ID`: everything the bridge knows about a customer, payment or webhook, in time order.

"Why didn't she get the email?" used to mean reading two log groups, three queues and the state
table by hand. The trace reads them for one id, whichever kind it is:

* the state table: the customer's record (the identity directory entry, when each piece of their
  profile was last written, the commercial summary's totals and subscriptions), a payment's
  customer, and the duplicate check's record of a webhook id (its answer and when it expires);
* the retry queue, the dead-letter queue and the quarantine queue: every message about it (by
  webhook id, customer id, or an identifier in its ops), peeked and left in place;
* on AWS, the log lines of both functions through CloudWatch Logs Insights (`--since`, default 7
  days): the ingest function logs each webhook's `webhook_id` and `customer_id`, so the webhooks a
  customer sent and what became of each are there.

An email address is matched against the queued ops' identifiers only: the bridge never writes
an email to a log line nor keys a record by one (README "Observability"). Locally (`--local`) the
trace reads what `make run` keeps (its emulated state table and queues, and the functions' last
log lines, `GET /__local/logs`).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from dodo_cio.state.table import item_int, item_str
from dodo_cio_cli.aws_calls import OperatorError

LOGS_SINCE_DAYS: Final = 7
LOGS_LIMIT: Final = 200
QUEUE_LIMIT: Final = 500
_INSIGHTS_POLL_SECONDS: Final = 1.0
_INSIGHTS_MAX_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing the bridge knows, at a time (Unix seconds; None when nothing says when)."""

    at: int | None
    source: str  # state | retry queue | dead-letter queue | quarantine | ingest log | retry log
    what: str


@dataclass(slots=True)
class Trace:
    subject: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    def add(self, at: int | None, source: str, what: str) -> None:
        self.entries.append(Entry(at, source, what))

    def ordered(self) -> list[Entry]:
        return sorted(self.entries, key=lambda e: (e.at is None, e.at or 0))

    def to_json(self) -> str:
        return json.dumps(
            {"subject": self.subject, "entries": [asdict(e) for e in self.ordered()], "notes": self.notes},
            indent=2,
        )

    def format(self) -> str:
        lines = [f"trace of {self.subject}"]
        if not self.entries:
            lines.append("  nothing found in the state table, the queues or the logs read")
        for entry in self.ordered():
            when = _utc(entry.at) if entry.at else "(no time)".ljust(20)
            lines.append(f"  {when}  {entry.source:<17} {entry.what}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the trace reads: a boto3 DynamoDB and SQS client, and the resources' names."""

    dynamodb: Any
    sqs: Any
    table: str | None
    identifier: str  # the deployment's identifier strategy (its directory attribute)
    ingest_function: str  # the idempotency records' owner
    queues: Mapping[str, str]  # label -> URL: retry queue, dead-letter queue, quarantine
    logs: Any = None  # CloudWatch Logs client (AWS only)
    log_groups: Mapping[str, str] = field(default_factory=dict)  # label -> log group name
    log_lines: Sequence[str] = ()  # a local run's kept log lines (GET /__local/logs), as Lambda writes them


def trace(subject: str, sources: Sources, *, since_days: float = LOGS_SINCE_DAYS, now: float | None = None) -> Trace:
    """Everything the sources hold about `subject` (see the module docstring)."""
    result = Trace(subject)
    current = time.time() if now is None else now
    ids = {subject}
    if sources.table:
        ids |= _state(result, sources, subject)
    for label, url in sources.queues.items():
        if url:
            _queue(result, sources.sqs, label, url, ids)
    if sources.logs is not None and sources.log_groups:
        _logs(result, sources, ids, since=current - since_days * 86400, until=current)
    if sources.log_lines:
        _log_lines(result, sources.log_lines, ids)
    return result


# -- the state table ---------------------------------------------------------------------------------


def _state(result: Trace, sources: Sources, subject: str) -> set[str]:
    """Adds the records about `subject`; returns the ids they point to (a payment's customer)."""
    from dodo_cio.state.idempotency import RECORD_OWNER  # noqa: PLC0415
    from dodo_cio.state.table import CUSTOMER_PREFIX, PAYMENT_PREFIX, RECEIPT_PREFIX, ident_attribute  # noqa: PLC0415

    more: set[str] = set()
    payment = _get(result, sources, PAYMENT_PREFIX + subject)
    customer_id = subject
    if payment is not None:
        customer_id = item_str(payment, "customer_id") or subject
        result.add(None, "state", f"payment {subject} belongs to customer {customer_id}")
        more.add(customer_id)
    record = _get(result, sources, CUSTOMER_PREFIX + customer_id)
    if record is not None:
        _customer_record(result, customer_id, record, ident_attribute(sources.identifier))
    receipts = _get(result, sources, RECEIPT_PREFIX + subject)
    if receipts is not None:
        _receipt_record(result, subject, receipts)
    digest = hashlib.md5(json.dumps(subject).encode(), usedforsecurity=False).hexdigest()
    idem = _get(result, sources, f"{sources.ingest_function}.{RECORD_OWNER}#{digest}")
    if idem is not None:
        _webhook_record(result, subject, idem)
    return more


def _customer_record(result: Trace, customer_id: str, item: Mapping[str, Any], ident: str) -> None:
    from dodo_cio.state.summary import Ledger  # noqa: PLC0415
    from dodo_cio.state.table import LEDGER_ATTRIBUTE, PIECE_PREFIX  # noqa: PLC0415

    identifiers = item_str(item, ident)
    if identifiers:
        result.add(None, "state", f"customer {customer_id} is the Customer.io person {identifiers}")
    for name, value in sorted(item.items()):
        if name.startswith(PIECE_PREFIX) and isinstance(value, dict) and "N" in value:
            piece = name[len(PIECE_PREFIX) :]
            result.add(int(value["N"]), "state", f"customer {customer_id}: newest '{piece}' written")
    ledger = Ledger.loads(item_str(item, LEDGER_ATTRIBUTE))
    if ledger.stamp:
        summary = {k: v for k, v in ledger.attributes().items() if k != "active_subscription_ids"}
        result.add(ledger.stamp, "state", f"customer {customer_id}: summary {json.dumps(summary, sort_keys=True)}")


def _receipt_record(result: Trace, object_id: str, item: Mapping[str, Any]) -> None:
    from dodo_cio.state.table import RECEIPT_EVENT_PREFIX  # noqa: PLC0415

    for name, value in sorted(item.items()):
        text = value.get("S") if isinstance(value, dict) else None
        if not name.startswith(RECEIPT_EVENT_PREFIX) or not text:
            continue
        try:
            seen = json.loads(text)
        except ValueError:
            continue
        event_type = name.removeprefix(RECEIPT_EVENT_PREFIX)
        received = seen.get("received_at")
        result.add(
            received if isinstance(received, int) else None,
            "state",
            f"{object_id}: {event_type} received as webhook {seen.get('webhook_id')}",
        )


def _webhook_record(result: Trace, webhook_id: str, item: Mapping[str, Any]) -> None:
    status = item_str(item, "status") or "?"
    data = item_str(item, "data")
    answer = ""
    if data:
        try:
            stored = json.loads(data)
            answer = f": answered {stored.get('status')} {json.dumps(stored.get('body'), sort_keys=True)}"
        except ValueError:
            answer = ""
    expires = item_int(item, "expiration")
    result.add(
        None,
        "state",
        f"webhook {webhook_id} {status.lower()}{answer}"
        + (f" (a redelivery is answered from this until {_utc(expires)})" if expires else ""),
    )


def _get(result: Trace, sources: Sources, key: str) -> Mapping[str, Any] | None:
    from dodo_cio.state.table import key_problem  # noqa: PLC0415

    if key_problem(key) is not None:
        return None
    try:
        item = sources.dynamodb.get_item(TableName=sources.table, Key={"id": {"S": key}}, ConsistentRead=True)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the trace goes on
        note = f"state table {sources.table}: {type(exc).__name__}"
        if note not in result.notes:
            result.notes.append(note)
        return None
    found = item.get("Item")
    return found if isinstance(found, dict) else None


# -- the queues ------------------------------------------------------------------------------------


def _queue(result: Trace, sqs: Any, label: str, url: str, ids: set[str]) -> None:
    from dodo_cio_cli.sqs_peek import peek_messages  # noqa: PLC0415

    try:
        messages = peek_messages(sqs, url, limit=QUEUE_LIMIT, what=f"the {label}", wait_seconds=0)
    except OperatorError as exc:
        result.notes.append(f"{label}: {exc}")
        return
    for message in messages:
        try:
            doc = json.loads(message.get("Body", ""))
        except ValueError:
            continue
        if not isinstance(doc, dict) or not _mentions(doc, ids):
            continue
        sent = str((message.get("Attributes") or {}).get("SentTimestamp") or "")
        at = int(sent) // 1000 if sent.isdigit() else None
        result.add(at, label, _describe_message(doc))


def _mentions(doc: Mapping[str, Any], ids: set[str]) -> bool:
    """Whether a parked or quarantined message is about one of `ids` (webhook, customer, or identifier)."""
    if doc.get("webhook_id") in ids or doc.get("customer_id") in ids:
        return True
    for op in doc.get("ops") or []:
        if not isinstance(op, dict):
            continue
        values = [*_values(op.get("identifiers")), *_values(op.get("primary")), *_values(op.get("secondary"))]
        values += [op.get("_customer_id"), op.get("_payment_id")]
        attributes = op.get("attributes")
        if isinstance(attributes, dict):  # a subscription, payment or refund the op is about
            values += [attributes.get(k) for k in ("subscription_id", "payment_id", "refund_id", "dispute_id")]
        if any(isinstance(v, str) and (v in ids or v.casefold() in {i.casefold() for i in ids}) for v in values):
            return True
    body = doc.get("body")
    return isinstance(body, str) and any(len(i) > 5 and i in body for i in ids)  # a quarantined webhook's text


def _values(identifiers: Any) -> Iterable[Any]:
    return identifiers.values() if isinstance(identifiers, dict) else ()


def _describe_message(doc: Mapping[str, Any]) -> str:
    last = doc.get("last_error")
    error: Mapping[str, Any] = last if isinstance(last, dict) else {}
    if "ops" in doc:
        ops = ", ".join(sorted({str(op.get("action")) for op in doc["ops"] if isinstance(op, dict)}))
        return (
            f"webhook {doc.get('webhook_id')} ({doc.get('event_type')}): {len(doc['ops'])} op(s) [{ops}] waiting, "
            f"{doc.get('attempts')} attempt(s); last error {error.get('kind')}: {str(error.get('reason'))[:200]}"
        )
    return f"webhook {doc.get('webhook_id')} kept: {doc.get('kind')} {str(doc.get('error_detail', ''))[:200]}"


# -- the logs (AWS) --------------------------------------------------------------------------------


def _logs(result: Trace, sources: Sources, ids: set[str], *, since: float, until: float) -> None:
    quoted = ", ".join(json.dumps(i) for i in sorted(ids))
    query = (
        "fields @timestamp, level, message, webhook_id, event_type, status, reason, verdict "
        f"| filter webhook_id in [{quoted}] or customer_id in [{quoted}] "
        f"| sort @timestamp asc | limit {LOGS_LIMIT}"
    )
    for label, group in sources.log_groups.items():
        try:
            rows = _insights(sources.logs, group, query, since, until)
        except Exception as exc:  # noqa: BLE001 - reported, the rest of the trace stands
            result.notes.append(f"{label} ({group}): {type(exc).__name__}: {str(exc)[:200]}")
            continue
        for row in rows:
            fields = {f["field"]: f["value"] for f in row if "field" in f and "value" in f}
            result.add(_insights_time(fields.get("@timestamp")), label, _log_entry(fields))


def _log_lines(result: Trace, lines: Sequence[str], ids: set[str]) -> None:
    """The local run's kept lines that name one of `ids`, as the Logs Insights query would pick them."""
    for line in lines:
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if not isinstance(fields, dict) or not ids & {fields.get("webhook_id"), fields.get("customer_id")}:
            continue
        function = str(fields.get("function_name") or "")
        label = "retry log" if "Retry" in function else "ingest log" if "Ingest" in function else "local log"
        result.add(_log_time(fields.get("timestamp")), label, _log_entry(fields))


def _log_entry(fields: Mapping[str, Any]) -> str:
    """One log line as the trace shows it: level, message and the fields that say what happened."""
    detail = ", ".join(
        f"{k}={fields[k]}" for k in ("webhook_id", "event_type", "status", "verdict", "reason") if k in fields
    )
    return f"{fields.get('level', '?')} {fields.get('message', '')} ({detail})"


def _log_time(text: Any) -> int | None:
    """Powertools' `2026-12-06 22:25:26,123+0000` as Unix seconds."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f%z").timestamp())
    except ValueError:
        return None


def _insights(
    logs: Any, group: str, query: str, since: float, until: float, sleep: Callable[[float], None] = time.sleep
) -> Sequence[Sequence[Mapping[str, str]]]:
    started = logs.start_query(logGroupName=group, startTime=int(since), endTime=int(until), queryString=query)
    waited = 0.0
    while True:
        answer = logs.get_query_results(queryId=started["queryId"])
        if answer.get("status") in ("Complete", "Failed", "Cancelled", "Timeout"):
            if answer.get("status") != "Complete":
                raise OperatorError(f"Logs Insights query {answer.get('status')}")
            return list(answer.get("results") or [])
        if waited >= _INSIGHTS_MAX_SECONDS:
            raise OperatorError("Logs Insights query still running after a minute")
        sleep(_INSIGHTS_POLL_SECONDS)
        waited += _INSIGHTS_POLL_SECONDS


def _insights_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S"))  # Logs Insights answers in UTC
    except ValueError:
        return None


def _utc(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))
