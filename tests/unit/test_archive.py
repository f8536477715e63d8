"""`dodo-cio dlq --export FILE` and `dodo-cio restore FILE` against an in-memory SQS: no socket, no moto.

The fake keeps what the commands may change: which messages were hidden and made visible again,
which were deleted (none may be), and what was sent to which queue, with which attributes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.receiving.quarantine import RERUN_TOLERANCE_SECONDS, QuarantinedWebhook
from dodo_cio_cli import archive, cli
from support.fake_sqs import Releasing, parked_body

EMAIL = "ana.souza@example.com"
DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
QUARANTINE = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-quarantine"
ROOT = Path(__file__).resolve().parents[2]


def _parked(webhook_id: str) -> str:
    return parked_body(webhook_id, EMAIL, reason="HTTP 400: attribute plan is invalid", attempts=4)


def _quarantined(webhook_id: str, *, signed: float | None = None) -> str:
    at = int(time.time() - 3600 if signed is None else signed)
    return QuarantinedWebhook(
        webhook_id=webhook_id,
        webhook_timestamp=str(at),
        webhook_signature="v1,c2lnbmF0dXJl",
        received_at=at + 1,
        event_type="payout.succeeded",
        error_field="type",
        error_detail="no mapping for payout.succeeded",
        body=f'{{"type":"payout.succeeded","data":{{"email":"{EMAIL}","note":"caf\u00e9 \u2603"}}}}'.encode(),
        kind="unknown_type",
    ).to_json()


@dataclass
class Message:
    body: str
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: int = 1_700_000_100_000
    receives: int = 0


@dataclass
class FakeSqs(Releasing):
    """Queues by URL: receive hides (and counts a receive), visibility 0 shows again, send appends."""

    queues: dict[str, dict[str, Message]]
    sent: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    receives: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what get_queue_attributes claims, when set

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives.append(kwargs)
        queue = self.queues[kwargs["QueueUrl"]]
        visible = [m for m in queue if m not in self.hidden][: kwargs["MaxNumberOfMessages"]]
        self.hidden.update(visible)
        out = []
        for message_id in visible:
            message = queue[message_id]
            message.receives += 1
            out.append(
                {
                    "MessageId": message_id,
                    "ReceiptHandle": f"rh-{message_id}",
                    "MD5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
                    "Body": message.body,
                    "Attributes": {
                        "SentTimestamp": str(message.sent),
                        "ApproximateReceiveCount": str(message.receives),
                    },
                    **({"MessageAttributes": message.attributes} if message.attributes else {}),
                }
            )
        return {"Messages": out}

    def delete_message(self, **kwargs: Any) -> dict[str, Any]:
        self.deleted.append(kwargs["ReceiptHandle"])
        return {}

    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        count = self.counts.get(QueueUrl, len(self.queues[QueueUrl]))
        return {
            "Attributes": {name: str(count if name == "ApproximateNumberOfMessages" else 0) for name in AttributeNames}
        }

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        queue = self.queues[kwargs["QueueUrl"]]
        message_id = f"new-{len(self.sent)}"
        queue[message_id] = Message(kwargs["MessageBody"], dict(kwargs.get("MessageAttributes", {})))
        return {"MessageId": message_id}


def _sqs(dead: dict[str, Message] | None = None, kept: dict[str, Message] | None = None) -> FakeSqs:
    return FakeSqs({DLQ: dict(dead or {}), QUARANTINE: dict(kept or {})})


def _run(monkeypatch: pytest.MonkeyPatch, sqs: FakeSqs, argv: list[str]) -> int:
    monkeypatch.setattr(cli, "_aws", lambda service, region: sqs)
    return cli.main(argv)


def _export_argv(path: Path) -> list[str]:
    return ["dlq", "--queue-url", DLQ, "--quarantine-url", QUARANTINE, "--export", str(path)]


def _two_queues() -> FakeSqs:
    binary = {"DataType": "Binary", "BinaryValue": b"\x00\xffraw"}
    return _sqs(
        dead={
            "d1": Message(
                _parked("msg_d1"),
                {
                    "event_type": {"DataType": "String", "StringValue": "payment.succeeded"},
                    "error_kind": {"DataType": "String", "StringValue": "permanent"},
                    "blob": binary,
                },
                receives=2,
            ),
            # The retry function dead-letters a body it cannot read as it came: exported all the same.
            "d2": Message(
                "{not json, mentions " + EMAIL, {"error_kind": {"DataType": "String", "StringValue": "unreadable"}}
            ),
        },
        kept={"q1": Message(_quarantined("msg_q1"), {"kind": {"DataType": "String", "StringValue": "unknown_type"}})},
    )


# -- export -----------------------------------------------------------------------------------------


def test_export_writes_every_message_whole_to_a_0600_file_and_leaves_them_queued(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = _two_queues()
    originals = {mid: (m.body, m.attributes) for q in sqs.queues.values() for mid, m in q.items()}
    out = tmp_path / "kept.jsonl"

    assert _run(monkeypatch, sqs, _export_argv(out)) == 0

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = out.read_text().splitlines()
    docs = {doc["message_id"]: doc for doc in map(json.loads, lines)}
    assert set(docs) == {"d1", "d2", "q1"}
    for message_id, doc in docs.items():
        body, attributes = originals[message_id]
        assert doc["format"] == "dodo-cio.queue-export" and doc["version"] == 1
        assert doc["body"] == body  # byte for byte, the email included: it is the archive
        assert doc["md5_of_body"] == hashlib.md5(body.encode()).hexdigest()
        assert doc["attributes"]["SentTimestamp"] == "1700000100000"
        assert int(doc["attributes"]["ApproximateReceiveCount"]) >= 1
        assert set(doc["message_attributes"]) == set(attributes)
    queues = {message_id: doc["queue"] for message_id, doc in docs.items()}
    assert queues == {"d1": "dead_letter", "d2": "dead_letter", "q1": "quarantine"}
    assert docs["d1"]["queue_name"] == "bridge-retry-dlq" and docs["q1"]["queue_name"] == "bridge-quarantine"
    assert docs["d1"]["message_attributes"]["error_kind"] == {"DataType": "String", "StringValue": "permanent"}
    assert docs["d1"]["message_attributes"]["blob"] == {"DataType": "Binary", "BinaryValue": "AP9yYXc="}
    assert all(line.isascii() for line in lines)

    # Peeked, never consumed: every message is visible again and none was deleted.
    assert sqs.hidden == set() and sqs.deleted == []
    assert sorted(sqs.released) == ["d1", "d2", "q1"]
    assert {r["VisibilityTimeout"] for r in sqs.receives} == {archive.EXPORT_VISIBILITY_SECONDS}
    assert all(r["MessageAttributeNames"] == ["All"] for r in sqs.receives)

    captured = capsys.readouterr()
    assert "exported 2 dead-lettered deliveries and 1 quarantined webhook" in captured.out
    assert "mode 0600" in captured.out and "encrypted" in captured.out and "dodo-cio restore" in captured.out
    assert EMAIL not in captured.out + captured.err


def test_export_refuses_to_overwrite_unless_forced_and_the_forced_file_is_0600(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = _two_queues()
    out = tmp_path / "kept.jsonl"
    out.write_text("an older export\n")
    out.chmod(0o644)
    argv = _export_argv(out)

    assert _run(monkeypatch, sqs, argv) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "an older export\n"
    assert sqs.receives == [], "the queues are not read when the file cannot be written"

    assert _run(monkeypatch, sqs, [*argv, "--force"]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["kept.jsonl"], "no temporary file is left behind"


def test_export_of_empty_queues_writes_an_empty_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "kept.jsonl"
    assert _run(monkeypatch, _sqs(), _export_argv(out)) == 0
    assert out.read_text() == "" and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_says_when_sqs_counted_more_than_it_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = _two_queues()
    sqs.counts[DLQ] = 5  # three more than it hands out: hidden by a concurrent listing, say
    out = tmp_path / "kept.jsonl"
    assert _run(monkeypatch, sqs, _export_argv(out)) == 1
    err = capsys.readouterr().err
    assert "counted about 5" in err and "2 were exported" in err
    assert len(out.read_text().splitlines()) == 3  # what it did read is kept all the same


# -- restore ----------------------------------------------------------------------------------------


def _restore_argv(path: Path, *extra: str) -> list[str]:
    return ["restore", str(path), "--queue-url", DLQ, "--quarantine-url", QUARANTINE, *extra]


def _line(queue: str, body: str, **changes: Any) -> str:
    doc: dict[str, Any] = {
        "format": "dodo-cio.queue-export",
        "version": 1,
        "queue": queue,
        "message_id": "m",
        "body": body,
        "message_attributes": {},
        "md5_of_body": hashlib.md5(body.encode()).hexdigest(),
    }
    doc.update(changes)
    return json.dumps(doc)


def test_restore_sends_each_readable_message_to_its_own_queue_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exported and restored (a dry run first) with --local, the queues of `make run`."""
    sqs = _two_queues()

    class Target:
        dead_letter_queue_url, quarantine_queue_url = DLQ, QUARANTINE

        def client(self, service: str) -> FakeSqs:
            assert service == "sqs"
            return sqs

    monkeypatch.setattr(cli, "_local", lambda args: Target() if args.local else None)
    path = tmp_path / "kept.jsonl"
    assert cli.main(["dlq", "--local", "--export", str(path)]) == 0
    assert {r["WaitTimeSeconds"] for r in sqs.receives} == {0}  # moto's short polls miss nothing
    originals = copy.deepcopy(sqs.queues)
    for queue in sqs.queues.values():
        queue.clear()  # day 15: SQS deleted them all
    capsys.readouterr()

    assert cli.main(["restore", str(path), "--local", "--dry-run"]) == 1  # the unreadable dead letter, line 2
    assert sqs.sent == [] and sqs.deleted == [] and sqs.hidden == set()
    out = capsys.readouterr().out
    assert out.count("would be restored (dry run)") == 2
    assert "would restore 1 to the dead-letter queue and 1 to the quarantine queue" in out
    readable = tmp_path / "readable.jsonl"
    readable.write_text("".join(line for n, line in enumerate(path.open(), 1) if n != 2))
    assert cli.main(["restore", str(readable), "--local", "--dry-run"]) == 0  # all of it could be restored
    assert sqs.sent == []
    capsys.readouterr()

    assert cli.main(["restore", str(path), "--local"]) == 1  # the unreadable dead letter is not restored

    by_queue = {url: [m["MessageBody"] for m in sqs.sent if m["QueueUrl"] == url] for url in (DLQ, QUARANTINE)}
    assert by_queue == {DLQ: [originals[DLQ]["d1"].body], QUARANTINE: [originals[QUARANTINE]["q1"].body]}
    parked, kept = sqs.sent
    assert parked["MessageAttributes"] == originals[DLQ]["d1"].attributes  # binary value back as bytes
    assert kept["MessageAttributes"] == originals[QUARANTINE]["q1"].attributes
    assert set(parked) == {"QueueUrl", "MessageBody", "MessageAttributes"}  # a new message: no delay, no id

    out = capsys.readouterr().out
    assert re.search(r"line \d: dead-letter  msg_d1  payment.succeeded  restored", out)
    assert re.search(r"line \d: quarantine  msg_q1  payout.succeeded  restored", out)
    assert re.search(r"line 2: dead-letter  -  \?  NOT restored: not a parked delivery: not JSON", out)
    assert "restored 1 to the dead-letter queue and 1 to the quarantine queue" in out
    assert "1 NOT restored (line 2)" in out
    assert "dodo-cio redrive" in out and "dodo-cio reprocess before " in out
    assert EMAIL not in out


def test_bad_lines_are_named_by_number_and_never_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _parked("msg_good")
    lines = [
        _line("dead_letter", good),
        "",  # blank lines are not lines of the export, but they still count for numbering
        "{not json at all",
        _line("retry", good),
        _line("dead_letter", '{"version": 1, "webhook_id": "msg_x"}'),
        _line("quarantine", good),  # a parked delivery is not a quarantined webhook
        _line(
            "dead_letter", good.replace("cus_1", "cus_2"), md5_of_body=hashlib.md5(good.encode()).hexdigest()
        ),  # edited since: the MD5 is the queue's
        _line("dead_letter", _parked("msg_attr"), message_attributes={"x": {"DataType": "String"}}),
        json.dumps({"format": "dodo-cio.queue-export", "version": 2, "queue": "dead_letter"}),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    sqs = _sqs()

    assert _run(monkeypatch, sqs, _restore_argv(path)) == 1

    assert [m["MessageBody"] for m in sqs.sent] == [good]
    out = capsys.readouterr().out
    expected = {
        3: "not an export line: not JSON",
        4: "not an export line: queue must be one of dead_letter, quarantine",
        5: "not a parked delivery:",
        6: "not a quarantined webhook: format is not dodo-cio.quarantined-webhook",
        7: "the body is not what the queue held (MD5 differs)",
        8: "message_attributes.x needs one StringValue or BinaryValue",
        9: "unsupported version 2",
    }
    for number, reason in expected.items():
        (line,) = [text for text in out.splitlines() if text.startswith(f"line {number}: ")]
        assert "NOT restored" in line and reason in line, line
    assert "7 NOT restored (line 3, 4, 5, 6, 7, 8, 9)" in out


def test_a_quarantined_webhook_past_the_rerun_window_is_not_sent_and_replay_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    old = _quarantined("msg_old", signed=now - RERUN_TOLERANCE_SECONDS - 60)
    recent = _quarantined("msg_recent", signed=now - 13 * 86400)
    path = tmp_path / "kept.jsonl"
    path.write_text(_line("quarantine", old) + "\n" + _line("quarantine", recent) + "\n")
    sqs = _sqs()

    assert _run(monkeypatch, sqs, _restore_argv(path)) == 1

    assert [m["MessageBody"] for m in sqs.sent] == [recent]
    out = capsys.readouterr().out
    (refused,) = [line for line in out.splitlines() if line.startswith("line 1: ")]
    assert "NOT restored" in refused and "14 days 5 minutes" in refused and "reprocess would refuse it" in refused
    assert "dodo-cio replay its body" in refused and "--webhook-id" in refused
    # The one restored has a day left: the summary says by when reprocess must run.
    deadline = time.strftime("%Y-%m-%d", time.gmtime(int(now - 13 * 86400) + RERUN_TOLERANCE_SECONDS))
    assert f"dodo-cio reprocess before {deadline}" in out
    assert "cannot be re-run" in out


def test_a_restore_run_twice_sends_nothing_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _parked("msg_a")
    path = tmp_path / "kept.jsonl"
    path.write_text(_line("dead_letter", body) + "\n" + _line("dead_letter", body) + "\n")  # two exports, cat'ed
    sqs = _sqs()

    assert _run(monkeypatch, sqs, _restore_argv(path)) == 0
    assert _run(monkeypatch, sqs, _restore_argv(path)) == 0

    assert [m["MessageBody"] for m in sqs.sent] == [body]
    assert sqs.hidden == set(), "the peek at the destination put everything back"
    out = capsys.readouterr().out
    assert "the same message as line 1" in out and "already on the dead-letter queue" in out


def test_a_line_for_a_queue_with_no_url_is_not_restored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kept.jsonl"
    path.write_text(_line("quarantine", _quarantined("msg_q")) + "\n")
    sqs = _sqs()
    assert _run(monkeypatch, sqs, ["restore", str(path), "--queue-url", DLQ]) == 1
    assert sqs.sent == []
    assert "--quarantine-url" in capsys.readouterr().out


def test_a_listing_or_a_missing_file_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "listing.json"
    listing.write_text('[\n  {"queue": "dead_letter", "message_id": "d1"}\n]\n')
    sqs = _sqs()
    assert _run(monkeypatch, sqs, _restore_argv(listing)) == 2
    err = capsys.readouterr().err
    assert "dlq --json" in err and "dlq --export" in err and len(err.strip().splitlines()) == 1
    assert _run(monkeypatch, sqs, _restore_argv(tmp_path / "absent.jsonl")) == 2
    assert "cannot read" in capsys.readouterr().err
    assert sqs.receives == [] and sqs.sent == []


def test_an_export_line_round_trips() -> None:
    item = archive.ExportedMessage(
        queue="quarantine",
        message_id="m1",
        body='{"x":"\u00e9\u2603"}',
        message_attributes={"kind": {"DataType": "String", "StringValue": "rejected"}},
        attributes={"SentTimestamp": "1", "ApproximateReceiveCount": "3"},
        md5_of_body="abc",
        queue_name="q",
        exported_at=5,
    )
    assert archive.ExportedMessage.from_json(item.to_json()) == item


# -- documented -------------------------------------------------------------------------------------


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", readme, re.S | re.M)
    assert match, title
    return match.group(1)


def test_the_readme_tells_how_to_keep_messages_past_day_14() -> None:
    operating, day_14 = _section("Operating it"), _section("What happens on day 14")
    assert "dodo-cio dlq --stack dodo-customerio-bridge --export" in operating
    assert "dodo-cio restore" in operating
    for text in (
        "`dodo-cio dlq --export",
        "`dodo-cio restore",
        "0600",
        "encrypted",
        "14 days and 5 minutes",
        "--force",
    ):
        assert text in day_14, text
