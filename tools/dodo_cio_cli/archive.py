"""A manual archive that outlives queue retention: `dodo-cio dlq --export FILE` and `dodo-cio restore FILE`.

The dead-letter queue and the quarantine queue hold the only copy of what is on them, and SQS
deletes each message 14 days after it arrived. `export` peeks at both queues as the listing does
(`sqs_peek.peek_messages`: receive, then visible again at once, so nothing is consumed) and writes
every message whole, one JSON object per line, to a file only its owner may read: the bodies hold
customer emails. `restore` sends each line back to the queue it came from as a new message, with
its body and message attributes unchanged, so it has 14 fresh days and the ordinary `redrive` /
`reprocess` apply to it.

Restoring checks every line before it sends anything: the line must be an export line whose body
is still what the queue held (MD5), and the body must read as what that queue holds (a parked
delivery, `ParkedDelivery.from_json`; a quarantined webhook, `QuarantinedWebhook.from_json`).
A quarantined webhook is sent back only while the ingest function would still re-run it: a re-run
whose signed timestamp is older than `RERUN_TOLERANCE_SECONDS` (14 days and 5 minutes) is refused,
so restoring one would only put a message on the queue that `reprocess` can never clear. Such a
webhook is reported instead, with how to send its body through `dodo-cio replay`. A line whose body
is already on its queue (the original never expired, or an earlier restore stopped halfway) is
skipped, so running a restore twice sends nothing twice.

Nothing here prints a body or an email: reports name line numbers, ids, types and reasons.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from dodo_cio.delivery.parking import ParkedDelivery, ParkedFormatError
from dodo_cio.receiving.quarantine import RERUN_TOLERANCE_SECONDS, QuarantinedWebhook, QuarantineFormatError
from dodo_cio_cli.aws_calls import OperatorError, call_aws
from dodo_cio_cli.operator import _one_line, _redact, _truncate
from dodo_cio_cli.sqs_peek import peek_messages

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

FORMAT: Final = "dodo-cio.queue-export"
FORMAT_VERSION: Final = 1
FILE_MODE: Final = 0o600
QueueName = Literal["dead_letter", "quarantine"]
QUEUES: Final[tuple[QueueName, ...]] = get_args(QueueName)
QUEUE_TITLES: Final[Mapping[str, str]] = {"dead_letter": "the dead-letter queue", "quarantine": "the quarantine queue"}
# A whole export keeps every message hidden until the last page is read, so it needs longer than
# the listing's 30 s; the messages are made visible again as soon as it ends.
EXPORT_VISIBILITY_SECONDS: Final = 300
# SQS lets a standard queue have at most 120,000 messages in flight (received, not yet visible).
EXPORT_MAX_MESSAGES: Final = 100_000
DETAIL_WIDTH: Final = 160
LINES_NAMED: Final = 20  # the summary names this many lines not restored; each has its own line above


class ExportFormatError(ValueError):
    """A line that is not an export line this version can restore."""


# -- the line format --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedMessage:
    """One queue message, whole: what `restore` needs to send it again, and what SQS said about it."""

    queue: QueueName
    message_id: str
    body: str  # exactly as the queue held it
    message_attributes: Mapping[str, Mapping[str, str]]  # JSON form: BinaryValue as base64
    attributes: Mapping[str, str] = field(default_factory=dict)  # SentTimestamp, ApproximateReceiveCount, ...
    md5_of_body: str | None = None
    queue_name: str = ""
    exported_at: int = 0

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "queue": self.queue,
            "queue_name": self.queue_name,
            "message_id": self.message_id,
            "exported_at": self.exported_at,
            "attributes": dict(self.attributes),
            "message_attributes": {name: dict(value) for name, value in self.message_attributes.items()},
            "md5_of_body": self.md5_of_body,
            "body": self.body,
        }
        # ASCII only: any body survives any file system and editor, and jq reads it back unchanged.
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> ExportedMessage:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ExportFormatError(f"not JSON ({type(exc).__name__})") from None
        if not isinstance(doc, dict):
            raise ExportFormatError("not a JSON object")
        if doc.get("format") != FORMAT:
            raise ExportFormatError(f"format is not {FORMAT}")
        if doc.get("version") != FORMAT_VERSION:
            raise ExportFormatError(f"unsupported version {doc.get('version')!r}")
        queue = doc.get("queue")
        if queue not in QUEUES:
            raise ExportFormatError(f"queue must be one of {', '.join(QUEUES)}")
        for key in ("message_id", "body"):
            if not isinstance(doc.get(key), str):
                raise ExportFormatError(f"{key} is missing or not a string")
        md5 = doc.get("md5_of_body")
        if md5 is not None and not isinstance(md5, str):
            raise ExportFormatError("md5_of_body is not a string")
        attributes = doc.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ExportFormatError("attributes is not an object")
        exported_at = doc.get("exported_at")
        return cls(
            queue=queue,
            message_id=doc["message_id"],
            body=doc["body"],
            message_attributes=_checked_attributes(doc.get("message_attributes")),
            attributes={str(k): str(v) for k, v in attributes.items()},
            md5_of_body=md5,
            queue_name=str(doc.get("queue_name") or ""),
            exported_at=exported_at if isinstance(exported_at, int) else 0,
        )


def _checked_attributes(value: object) -> dict[str, dict[str, str]]:
    """Message attributes as exported: {name: {DataType, StringValue | BinaryValue (base64)}}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ExportFormatError("message_attributes is not an object")
    out: dict[str, dict[str, str]] = {}
    for name, attribute in value.items():
        if not isinstance(attribute, dict) or not isinstance(attribute.get("DataType"), str):
            raise ExportFormatError(f"message_attributes.{name} has no DataType")
        values = {k: v for k, v in attribute.items() if k in {"StringValue", "BinaryValue"}}
        if len(values) != 1 or not all(isinstance(v, str) for v in values.values()):
            raise ExportFormatError(f"message_attributes.{name} needs one StringValue or BinaryValue")
        if "BinaryValue" in values:
            try:
                base64.b64decode(values["BinaryValue"], validate=True)
            except (binascii.Error, ValueError):
                raise ExportFormatError(f"message_attributes.{name}.BinaryValue is not base64") from None
        out[str(name)] = {"DataType": attribute["DataType"], **values}
    return out


def _exported_attributes(value: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """SQS's MessageAttributes (BinaryValue as bytes, empty list fields) as plain JSON."""
    out: dict[str, dict[str, str]] = {}
    for name, attribute in (value or {}).items():
        entry = {"DataType": str(attribute.get("DataType", "String"))}
        if attribute.get("BinaryValue") is not None:
            entry["BinaryValue"] = base64.b64encode(bytes(attribute["BinaryValue"])).decode("ascii")
        else:
            entry["StringValue"] = str(attribute.get("StringValue", ""))
        out[str(name)] = entry
    return out


def _sqs_attributes(value: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """Exported attributes in the shape `send_message` takes (BinaryValue as bytes again)."""
    out: dict[str, dict[str, Any]] = {}
    for name, attribute in value.items():
        entry: dict[str, Any] = {"DataType": attribute["DataType"]}
        if "BinaryValue" in attribute:
            entry["BinaryValue"] = base64.b64decode(attribute["BinaryValue"])
        else:
            entry["StringValue"] = attribute["StringValue"]
        out[name] = entry
    return out


def _md5(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def _key(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# -- export -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueExport:
    """What one queue gave: how many messages were written, and how many SQS counted beforehand."""

    queue: QueueName
    written: int
    counted: int | None  # visible + in flight + delayed, before the export; None when SQS did not say
    count_error: str = ""

    @property
    def short(self) -> bool:
        """Fewer written than SQS counted: some were hidden (in flight elsewhere) or missed."""
        return self.counted is not None and self.written < self.counted


def _count(sqs: SQSClient, url: str, what: str) -> tuple[int | None, str]:
    names: list[QueueAttributeFilterType] = [
        "ApproximateNumberOfMessages",  # visible
        "ApproximateNumberOfMessagesNotVisible",  # in flight: a listing, redrive or reprocess has them
        "ApproximateNumberOfMessagesDelayed",
    ]
    try:
        response = call_aws(f"counting {what}", lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))
    except OperatorError as exc:  # the export itself does not need the count
        return None, str(exc)
    attributes = {str(k): v for k, v in response.get("Attributes", {}).items()}
    try:
        return sum(int(attributes.get(name) or 0) for name in names), ""
    except ValueError:
        return None, f"SQS answered a count that is not a number for {what}"


def exported(message: Mapping[str, Any], queue: QueueName, queue_url: str, exported_at: int) -> ExportedMessage:
    """One received SQS message as an export line (the receipt handle is left out: it dies with the peek)."""
    return ExportedMessage(
        queue=queue,
        message_id=str(message.get("MessageId", "")),
        body=str(message.get("Body", "")),
        message_attributes=_exported_attributes(message.get("MessageAttributes")),
        attributes={str(k): str(v) for k, v in (message.get("Attributes") or {}).items()},
        md5_of_body=message.get("MD5OfBody"),
        queue_name=queue_url.rstrip("/").rsplit("/", 1)[-1],
        exported_at=exported_at,
    )


def refuse_existing(path: Path, *, force: bool) -> None:
    """Fail before reading any queue when the file exists and may not be overwritten."""
    if path.is_dir():
        raise OperatorError(f"{path} is a directory; name a file to write")
    if not force and (path.exists() or path.is_symlink()):
        raise OperatorError(f"{path} already exists; not overwriting it (pass --force to replace it)")


def export(
    sqs: SQSClient,
    path: Path,
    queues: Mapping[QueueName, str | None],
    *,
    force: bool = False,
    now: float | None = None,
    wait_seconds: int = 1,
) -> list[QueueExport]:
    """Write every message of each queue in `queues` (name -> URL; None: not known) to `path`.

    The messages stay on their queues (peeked, as `dodo-cio dlq` does). `path` is created with
    mode 0600, and only when it does not exist unless `force`; it is written whole or not at all.
    """
    refuse_existing(path, force=force)
    at = int(time.time() if now is None else now)
    lines: list[str] = []
    report: list[QueueExport] = []
    for queue, url in queues.items():
        if not url:
            continue
        what = QUEUE_TITLES[queue]
        counted, count_error = _count(sqs, url, what)
        messages = peek_messages(
            sqs,
            url,
            limit=EXPORT_MAX_MESSAGES,
            what=what,
            visibility_timeout=EXPORT_VISIBILITY_SECONDS,
            wait_seconds=wait_seconds,
        )
        lines += [exported(message, queue, url, at).to_json() for message in messages]
        report.append(QueueExport(queue, len(messages), counted, count_error))
    write_private(path, lines, force=force)
    return report


def write_private(path: Path, lines: Sequence[str], *, force: bool) -> None:
    """`lines` to `path`, mode 0600 from the first byte, flushed to disk; never a half-written file."""
    data = "".join(f"{line}\n" for line in lines).encode("ascii")
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            raise OperatorError(f"{path} already exists; not overwriting it (pass --force to replace it)") from None
        except OSError as exc:
            raise OperatorError(f"cannot create {path}: {exc.strerror or exc}") from None
        _write_fd(fd, data, path, remove=path)
        return
    try:  # mkstemp creates the file 0600; replacing the old one keeps no trace of its mode
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OperatorError(f"cannot write next to {path}: {exc.strerror or exc}") from None
    _write_fd(fd, data, path, remove=Path(temporary))
    try:
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OperatorError(f"cannot replace {path}: {exc.strerror or exc}") from None


def _write_fd(fd: int, data: bytes, path: Path, *, remove: Path) -> None:
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        remove.unlink(missing_ok=True)
        raise OperatorError(f"cannot write {path}: {exc.strerror or exc}") from None


def export_summary(report: Sequence[QueueExport], path: Path) -> str:
    """How many of each were written, and what the file is."""
    counts = {item.queue: item.written for item in report}
    parts = []
    if "dead_letter" in counts:
        dead = counts["dead_letter"]
        parts.append(f"{dead} dead-lettered {_plural(dead, 'delivery', 'deliveries')}")
    if "quarantine" in counts:
        kept = counts["quarantine"]
        parts.append(f"{kept} quarantined {_plural(kept, 'webhook', 'webhooks')}")
    lines = [f"exported {' and '.join(parts)} to {path} (mode 0600); the messages stay on their queues"]
    if "quarantine" not in counts:
        lines.append("no quarantine queue known (pass --quarantine-url, or a stack that has QuarantineQueueUrl)")
    lines.append(
        "the file holds customer emails: keep it encrypted and delete it when done; "
        f"bring the messages back with: dodo-cio restore {path}"
    )
    return "\n".join(lines)


def export_warnings(report: Sequence[QueueExport]) -> list[str]:
    """Lines for stderr: a queue that counted more than was written, or that could not be counted."""
    out = []
    for item in report:
        what = QUEUE_TITLES[item.queue]
        if item.short:
            out.append(
                f"{what} counted about {item.counted} message(s) but {item.written} were exported: some were "
                "hidden (a listing, redrive or reprocess running) or missed; export again to a new file when "
                "nothing else is reading the queue (SQS's counts are approximate and lag by up to a minute)"
            )
        elif item.count_error:
            out.append(f"could not count {what} to compare ({item.count_error}); check it with dodo-cio dlq")
    return out


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


# -- restore ----------------------------------------------------------------------------------------

Outcome = Literal["restored", "would_restore", "already_queued", "duplicate_line", "invalid", "too_old", "no_queue"]
NOT_RESTORED: Final = frozenset({"invalid", "too_old", "no_queue"})


@dataclass(frozen=True, slots=True)
class Restored:
    """What happened to one line of the file."""

    line: int
    queue: str | None  # dead_letter | quarantine; None when the line did not say
    webhook_id: str | None
    event_type: str | None
    outcome: Outcome
    detail: str = ""
    rerun_by: int | None = None  # quarantine: the last Unix second `reprocess` can re-run it


@dataclass(frozen=True, slots=True)
class _Candidate:
    line: int
    item: ExportedMessage
    webhook_id: str
    event_type: str | None
    rerun_by: int | None


def _read(line: int, text: str, now: float) -> _Candidate | Restored:
    """A line that may be sent, or why it may not (parsed, MD5-checked, read as its queue's format)."""
    try:
        item = ExportedMessage.from_json(text)
    except ExportFormatError as exc:
        return Restored(line, None, None, None, "invalid", f"not an export line: {exc}")
    if item.md5_of_body is not None and _md5(item.body) != item.md5_of_body:
        return Restored(line, item.queue, None, None, "invalid", "the body is not what the queue held (MD5 differs)")
    if item.queue == "dead_letter":
        try:
            parked = ParkedDelivery.from_json(item.body)
        except ParkedFormatError as exc:
            return Restored(line, item.queue, None, None, "invalid", f"not a parked delivery: {exc}")
        return _Candidate(line, item, parked.webhook_id, parked.event_type, None)
    try:
        webhook = QuarantinedWebhook.from_json(item.body)
    except QuarantineFormatError as exc:
        return Restored(line, item.queue, None, None, "invalid", f"not a quarantined webhook: {exc}")
    signed = webhook.webhook_timestamp.strip()
    rerun_by = int(signed) + RERUN_TOLERANCE_SECONDS if signed.isdigit() else None
    if rerun_by is not None and now > rerun_by:
        return Restored(
            line,
            item.queue,
            _redact(webhook.webhook_id),
            _redact(webhook.event_type) if webhook.event_type else None,
            "too_old",
            f"signed {_utc(int(signed))}, over {_window()} ago: reprocess would refuse it (401); "
            "dodo-cio replay its body instead, with this webhook id as --webhook-id",
        )
    return _Candidate(line, item, webhook.webhook_id, webhook.event_type, rerun_by)


def _window() -> str:
    days, rest = divmod(RERUN_TOLERANCE_SECONDS, 86400)
    return f"{days} days {rest // 60} minutes"


def _utc(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _send_errors(what: str) -> Callable[[str, str], str | None]:
    def translate(code: str, message: str) -> str | None:
        if code in {"AccessDenied", "AccessDeniedException"}:
            return f"access denied sending to {what}: restoring needs sqs:SendMessage (and sqs:ReceiveMessage) on it"
        if code in {"QueueDoesNotExist", "NonExistentQueue"}:
            return f"{what} does not exist (check the URL and the region, or pass --stack)"
        return None

    return translate


def restore(
    sqs: SQSClient,
    lines: Iterable[str],
    queues: Mapping[QueueName, str | None],
    *,
    dry_run: bool = False,
    now: float | None = None,
    on_result: Callable[[Restored], None] | None = None,
    wait_seconds: int = 1,
) -> list[Restored]:
    """Send each line of an export back to its queue (name -> URL in `queues`); one result per line.

    Every line is read and checked first (`_read`); then each destination queue is peeked once, so
    a body already on it is skipped; then the lines are sent in order, each as a new message with
    the exported body and message attributes. With `dry_run` nothing is sent. An AWS error while
    sending stops the run with an OperatorError: the lines sent so far were reported through
    `on_result`, and a second run skips them.
    """
    current = time.time() if now is None else now
    planned: list[_Candidate | Restored] = [
        _read(number, text, current) for number, text in enumerate(lines, start=1) if text.strip()
    ]
    wanted = {p.item.queue for p in planned if isinstance(p, _Candidate)}
    on_queue: dict[str, set[str]] = {}
    for queue in QUEUES:
        url = queues.get(queue)
        if queue in wanted and url:
            messages = peek_messages(
                sqs,
                url,
                limit=EXPORT_MAX_MESSAGES,
                what=QUEUE_TITLES[queue],
                visibility_timeout=EXPORT_VISIBILITY_SECONDS,
                wait_seconds=wait_seconds,
            )
            on_queue[queue] = {_key(str(m.get("Body", ""))) for m in messages}
    first_line: dict[tuple[str, str], int] = {}
    results: list[Restored] = []
    for plan in planned:
        result = plan if isinstance(plan, Restored) else _restore_one(sqs, plan, queues, on_queue, first_line, dry_run)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _restore_one(
    sqs: SQSClient,
    plan: _Candidate,
    queues: Mapping[QueueName, str | None],
    on_queue: Mapping[str, set[str]],
    first_line: dict[tuple[str, str], int],
    dry_run: bool,
) -> Restored:
    item = plan.item
    webhook_id, event_type = _redact(plan.webhook_id), _redact(plan.event_type) if plan.event_type else None

    def result(outcome: Outcome, detail: str = "") -> Restored:
        return Restored(plan.line, item.queue, webhook_id, event_type, outcome, detail, plan.rerun_by)

    url = queues.get(item.queue)
    what = QUEUE_TITLES[item.queue]
    if not url:
        flag = "--queue-url" if item.queue == "dead_letter" else "--quarantine-url"
        return result("no_queue", f"no URL for {what}: pass --stack NAME, --local or {flag}")
    key = (item.queue, _key(item.body))
    if key in first_line:
        return result("duplicate_line", f"the same message as line {first_line[key]}")
    first_line[key] = plan.line
    if key[1] in on_queue.get(item.queue, set()):
        return result("already_queued", f"already on {what}")
    if dry_run:
        return result("would_restore")
    request: dict[str, Any] = {"QueueUrl": url, "MessageBody": item.body}
    if item.message_attributes:
        request["MessageAttributes"] = _sqs_attributes(item.message_attributes)
    call_aws(f"sending to {what}", lambda: sqs.send_message(**request), _send_errors(what))
    return result("restored")


def read_lines(path: Path) -> list[str]:
    """The export file's lines; an unreadable file, or `dlq --json` output, is an OperatorError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise OperatorError(f"{path} is not UTF-8 text, so not an export of dodo-cio dlq --export") from None
    if text.lstrip().startswith("["):
        raise OperatorError(
            f"{path} is a JSON array, like the listing `dodo-cio dlq --json` prints: a listing holds no "
            "messages; restore reads a file written by dodo-cio dlq --export"
        )
    return text.splitlines()


_SAYS: Final[Mapping[str, str]] = {
    "restored": "restored",
    "would_restore": "would be restored (dry run)",
    "already_queued": "skipped",
    "duplicate_line": "skipped",
    "invalid": "NOT restored",
    "too_old": "NOT restored",
    "no_queue": "NOT restored",
}


def format_restored(result: Restored) -> str:
    """One line per line of the file: where it goes, its ids, and what happened."""
    where = {"dead_letter": "dead-letter", "quarantine": "quarantine"}.get(result.queue or "", "?")
    ids = f"{_truncate(_one_line(result.webhook_id or '-'), 60)}  {_truncate(_one_line(result.event_type or '?'), 60)}"
    detail = f": {_truncate(_one_line(_redact(result.detail)), DETAIL_WIDTH)}" if result.detail else ""
    return f"line {result.line}: {where}  {ids}  {_SAYS[result.outcome]}{detail}"


def restore_summary(results: Sequence[Restored], *, dry_run: bool) -> str:
    """Counts per outcome, the lines not restored, and what to run next."""
    if not results:
        return "the file holds no messages: nothing to restore"
    sent = "would restore" if dry_run else "restored"
    done = [r for r in results if r.outcome in {"restored", "would_restore"}]
    by_queue = {q: sum(1 for r in done if r.queue == q) for q in QUEUES}
    dead, kept = by_queue["dead_letter"], by_queue["quarantine"]
    parts = [f"{sent} {dead} to the dead-letter queue and {kept} to the quarantine queue"]
    skipped = [r for r in results if r.outcome in {"already_queued", "duplicate_line"}]
    if skipped:
        parts.append(f"{len(skipped)} skipped (already on the queue, or repeated in the file)")
    refused = [r for r in results if r.outcome in NOT_RESTORED]
    if refused:
        numbers = ", ".join(str(r.line) for r in refused[:LINES_NAMED])
        more = f" and {len(refused) - LINES_NAMED} more" if len(refused) > LINES_NAMED else ""
        parts.append(f"{len(refused)} NOT restored (line {numbers}{more})")
    lines = ["; ".join(parts)]
    if by_queue["dead_letter"]:
        lines.append("next, once the cause is fixed: dodo-cio redrive (a delivery past its retry horizon gets one try)")
    deadlines = [r.rerun_by for r in done if r.queue == "quarantine" and r.rerun_by is not None]
    if by_queue["quarantine"]:
        by = f" before {_utc(min(deadlines))}, when the first of them leaves the re-run window" if deadlines else ""
        lines.append(f"next, once this version can process them: dodo-cio reprocess{by}")
    if any(r.outcome == "too_old" for r in results):
        lines.append(
            f"quarantined webhooks signed more than {_window()} ago cannot be re-run; their bodies stay in the "
            "file for dodo-cio replay (README: What happens on day 14)"
        )
    return "\n".join(lines)
