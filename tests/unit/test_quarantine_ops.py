"""The quarantine format (what is kept of a signed body the bridge could not read, and the re-run request),
and `dodo-cio dlq` (quarantine listing) and `dodo-cio reprocess` against in-memory fakes: no socket, no moto.

The fakes keep exactly what the commands may change: which messages are deleted, which are made
visible again, and what the ingest function was asked.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dodo_cio.receiving.quarantine import (
    FORMAT,
    REPROCESS_KEY,
    QuarantinedWebhook,
    QuarantineFormatError,
    quarantine,
    reprocess_event,
    reprocess_request,
)
from dodo_cio.receiving.signature import SignatureError, sign, verify
from dodo_cio_cli import cli, quarantine_ops
from dodo_cio_cli.aws_calls import OperatorError
from support import fake_sqs
from support.fake_sqs import Releasing

EMAIL = "ana.souza@example.com"
SECRET = b"unit-test-secret-0123456789"
BODY = b'{"type":"payment.succeeded","data":{"total_amount":"4900"}}'


def _item(webhook_id: str = "msg_q1", body: bytes = BODY, **changes: Any) -> QuarantinedWebhook:
    """A kept webhook, validly signed with SECRET."""
    fields: dict[str, Any] = {
        "webhook_id": webhook_id,
        "webhook_timestamp": "1700000000",
        "webhook_signature": sign(SECRET, webhook_id, 1_700_000_000, body),
        "received_at": 1_700_000_001,
        "event_type": "payment.succeeded",
        "error_field": "data.total_amount",
        "error_detail": "must be an integer",
        "body": body,
    }
    return QuarantinedWebhook(**{**fields, **changes})


@dataclass
class FakeSqs(Releasing):
    """A queue: receive hides, change_message_visibility_batch(0) shows again, delete removes."""

    bodies: dict[str, str]
    deleted: list[str] = field(default_factory=list)

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        visible = [m for m in self.bodies if m not in self.hidden][: kwargs["MaxNumberOfMessages"]]
        self.hidden.update(visible)
        return {"Messages": [{"MessageId": m, "ReceiptHandle": f"rh-{m}", "Body": self.bodies[m]} for m in visible]}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        message_id = ReceiptHandle.removeprefix("rh-")
        del self.bodies[message_id]
        self.hidden.discard(message_id)
        self.deleted.append(message_id)
        return {}


@dataclass
class FakeLambda:
    """The ingest function, answering by webhook id what `answers` says (status, body) or raising."""

    answers: dict[str, Callable[[], dict[str, Any]]]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        event = json.loads(kwargs["Payload"])
        return self.answers[event[REPROCESS_KEY]["webhook_id"]]()


def answer(code: int, **body: Any) -> Callable[[], dict[str, Any]]:
    payload = {"statusCode": code, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
    return lambda: {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(payload).encode())}


def crashed() -> dict[str, Any]:
    payload = {"errorMessage": "boom", "errorType": "RuntimeError"}
    return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(payload).encode())}


QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-quarantine"
FUNCTION = "bridge-IngestFunction"


def _queue(*ids: str, **bodies: str) -> FakeSqs:
    return FakeSqs({**{i: _item(f"msg_{i}").to_json() for i in ids}, **bodies})


# -- the format -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b'{"a": "\xc3\xa9"}', "unreadable"), (b"\xff\xfe\x00 not utf-8", "unknown_type"), (b"", "rejected")],
)
def test_each_body_and_kind_round_trips_and_a_message_from_before_kinds_is_unreadable(body: bytes, kind: str) -> None:
    item = _item(body=body, kind=kind)
    assert QuarantinedWebhook.from_json(item.to_json()) == item
    doc = item.to_dict()
    doc.pop("kind")  # written before issue 16, when only unreadable bodies were quarantined
    assert QuarantinedWebhook.from_dict(doc).kind == "unreadable"


def test_a_utf8_body_is_readable_in_the_message_and_other_bytes_are_base64() -> None:
    assert _item(body=b'{"x":1}').to_dict()["body"] == '{"x":1}'
    doc = _item(body=b"\xff").to_dict()
    assert (doc["body_encoding"], doc["body"]) == ("base64", "/w==")


def test_a_body_of_control_characters_is_base64_so_the_largest_body_fits_one_message() -> None:
    body = b"\x01" * (256 * 1024)
    doc = _item(body=body).to_dict()
    assert doc["body_encoding"] == "base64"
    assert len(_item(body=body).to_json().encode()) < 1024 * 1024  # the quarantine queue's MaximumMessageSize
    assert QuarantinedWebhook.from_dict(doc).body == body


def test_the_kept_headers_verify_the_body_without_the_timestamp_window() -> None:
    item = _item()
    now = 1_700_000_000 + 30 * 86_400  # a month later
    with pytest.raises(SignatureError, match="tolerance"):
        verify(item.headers(), item.body, [SECRET], now=now)
    assert verify(item.headers(), item.body, [SECRET], now=now, tolerance_seconds=None).webhook_id == "msg_q1"
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(item.headers(), item.body + b" ", [SECRET], now=now, tolerance_seconds=None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(format="dodo-cio.parked"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.pop("webhook_signature"), "webhook_signature"),
        (lambda d: d.update(error="x"), "error"),
        (lambda d: d.update(body_encoding="base64", body="%%%"), "base64"),
        (lambda d: d.update(body_encoding="gzip"), "body_encoding"),
        (lambda d: d.update(kind="misc"), "kind"),
    ],
)
def test_anything_else_is_refused_with_the_reason(change: Any, problem: str) -> None:
    doc = _item().to_dict()
    change(doc)
    with pytest.raises(QuarantineFormatError, match=problem):
        QuarantinedWebhook.from_dict(doc)
    with pytest.raises(QuarantineFormatError, match="not JSON"):
        QuarantinedWebhook.from_json("{")


def test_a_reprocess_event_is_recognised_and_an_api_gateway_event_is_not() -> None:
    item = _item()
    assert reprocess_request(json.loads(json.dumps(reprocess_event(item)))) == item
    assert reprocess_request({"version": "2.0", "body": json.dumps(reprocess_event(item)), "headers": {}}) is None
    with pytest.raises(QuarantineFormatError):
        reprocess_request({"dodo_cio_reprocess": "not an object"})
    assert reprocess_request(["not", "an", "object"]) is None  # the API Gateway reading refuses it


def test_quarantine_sends_one_message_with_the_reason_as_attributes() -> None:
    sqs = fake_sqs.FakeSqs()
    assert quarantine(sqs, "https://sqs/q", _item()) == "new-1"
    (sent,) = sqs.sent
    assert json.loads(sent["MessageBody"])["format"] == FORMAT
    assert sent["MessageAttributes"]["error_field"]["StringValue"] == "data.total_amount"
    assert sent["MessageAttributes"]["event_type"]["StringValue"] == "payment.succeeded"
    assert sent["MessageAttributes"]["kind"]["StringValue"] == "unreadable"
    quarantine(sqs, "https://sqs/q", _item(event_type=None, error_field=""))
    assert "event_type" not in sqs.sent[1]["MessageAttributes"]


def test_an_ingest_service_with_state_but_no_duplicate_check_is_refused() -> None:
    """The state records only commit inside the duplicate check's transaction: never one without the other."""
    from dodo_cio.configuration.settings import SecretStore, Settings
    from dodo_cio.ingest.service import IngestService
    from dodo_cio.mapping.mapper import MappingConfig
    from dodo_cio.state.table import StateTable

    settings = Settings.from_env({})
    state = StateTable("t", lambda: None)
    with pytest.raises(ValueError, match="duplicate check"):
        IngestService(
            settings=settings,
            secrets=SecretStore(settings),
            mapping=MappingConfig(),
            metrics=None,  # type: ignore[arg-type]
            logger=None,  # type: ignore[arg-type]
            sqs_factory=lambda: None,  # type: ignore[arg-type,return-value]
            state=state,
        )


# -- classify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [  # 200 delivered, 422, a 401 with its reason, 409 and 503: test_reprocess_deletes_on_2xx_and_keeps_422_401_and_5xx
        (202, {"status": "queued"}, ("queued", True)),
        (202, {"status": "dead_lettered"}, ("dead_lettered", True)),
        (200, {"status": "ignored"}, ("ignored", True)),
        (401, {"error": "invalid signature"}, ("signature", False)),
        (401, {"error": "invalid signature", "reason": "timestamp outside tolerance"}, ("too_old", False)),
        (500, {"error": "delivery failed and could not be queued"}, ("retry_later", False)),
        (400, {"error": "not a quarantined webhook"}, ("http_400", False)),
        (None, {}, ("no_answer", False)),
    ],
)
def test_only_a_2xx_counts_as_handled(status: int | None, body: dict[str, Any], expected: tuple[str, bool]) -> None:
    outcome, handled, _ = quarantine_ops.classify(status, body)
    assert (outcome, handled) == expected


# -- reprocess --------------------------------------------------------------------------------------


def test_reprocess_deletes_on_2xx_and_keeps_422_401_5xx_a_crash_and_what_it_cannot_read() -> None:
    sqs = _queue("ok", "invalid", "rotated", "busy", "down", "crash", junk='{"format": "something-else"}')
    lam = FakeLambda(
        {
            "msg_ok": answer(200, status="delivered"),
            "msg_invalid": answer(422, status="still_invalid", field="data.total_amount", detail="must be an integer"),
            "msg_rotated": answer(401, error="invalid signature", reason="no matching signature"),
            "msg_busy": answer(409, error="webhook is being processed"),
            "msg_down": answer(503, error="state table unavailable"),
            "msg_crash": crashed,
        }
    )
    results = quarantine_ops.reprocess(sqs, lam, QUEUE, FUNCTION)

    assert sqs.deleted == ["ok"]
    assert sorted(sqs.bodies) == ["busy", "crash", "down", "invalid", "junk", "rotated"]
    assert sqs.hidden == set(), "what stayed must be visible again for the next run"
    by_id = {r.webhook_id: (r.status, r.outcome, r.deleted) for r in results}
    assert by_id == {
        "msg_ok": (200, "delivered", True),
        "msg_invalid": (422, "still_invalid", False),
        "msg_rotated": (401, "signature", False),
        "msg_busy": (409, "retry_later", False),
        "msg_down": (503, "retry_later", False),
        "msg_crash": (None, "retry_later", False),
        None: (None, "unreadable", False),
    }
    assert "RuntimeError" in next(r.detail for r in results if r.webhook_id == "msg_crash")
    # Each invoke carries exactly the documented direct-invoke event, synchronously; the unreadable one none.
    assert len(lam.calls) == 6
    first = lam.calls[0]
    assert (first["FunctionName"], first["InvocationType"]) == (FUNCTION, "RequestResponse")
    assert json.loads(first["Payload"]) == reprocess_event(_item("msg_ok"))
    text = quarantine_ops.summary(results)
    assert "1 handled and deleted, 6 kept" in text
    assert "webhook-secret" in text and "upgrade" in text  # what to do about the signature and still_invalid ones


def test_a_missing_function_stops_the_run_and_leaves_every_message_visible() -> None:
    sqs = _queue("a", "b", "c")

    def not_found() -> dict[str, Any]:
        error = {"Error": {"Code": "ResourceNotFoundException", "Message": "Function not found"}}
        raise ClientError(error, "Invoke")

    with pytest.raises(OperatorError, match="not found"):
        quarantine_ops.reprocess(sqs, FakeLambda({"msg_a": not_found}), QUEUE, FUNCTION)
    assert sqs.deleted == []
    assert sqs.hidden == set() and sorted(sqs.released) == ["a", "b", "c"]


def test_limit_and_dry_run() -> None:
    sqs = _queue(*"abcde")
    lam = FakeLambda({f"msg_{i}": answer(200, status="delivered") for i in "abcde"})
    dry = quarantine_ops.reprocess(sqs, lam, QUEUE, FUNCTION, limit=3, dry_run=True)
    assert [r.outcome for r in dry] == ["dry_run"] * 3
    assert lam.calls == [] and sqs.deleted == [] and sqs.hidden == set()
    done = quarantine_ops.reprocess(sqs, lam, QUEUE, FUNCTION, limit=2)
    assert len(done) == 2 and len(sqs.deleted) == 2 and len(sqs.bodies) == 3
    assert "--limit 2" in quarantine_ops.summary(done, limit=2)


# -- the CLI ----------------------------------------------------------------------------------------


def _wire(monkeypatch: pytest.MonkeyPatch, sqs: FakeSqs, lam: FakeLambda) -> list[str]:
    services: list[str] = []

    def aws(service: str, region: str | None) -> Any:
        services.append(service)
        return {"sqs": sqs, "lambda": lam}[service]

    monkeypatch.setattr(cli, "_aws", aws)
    return services


def test_reprocess_command_exits_1_while_any_stayed_and_0_once_none_did(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = _queue("ok", "invalid")
    verdicts = {"msg_ok": answer(200, status="delivered"), "msg_invalid": answer(422, status="still_invalid")}
    lam = FakeLambda(verdicts)
    _wire(monkeypatch, sqs, lam)
    argv = ["reprocess", "--queue-url", QUEUE, "--function", FUNCTION]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "msg_ok  payment.succeeded  -> 200 delivered (deleted)" in out
    assert "msg_invalid  payment.succeeded  -> 422 still_invalid (kept)" in out
    verdicts["msg_invalid"] = answer(202, status="queued")  # after the upgrade
    assert cli.main(argv) == 0
    assert "1 handled and deleted, 0 kept" in capsys.readouterr().out
    assert sqs.bodies == {}


def test_reprocess_command_needs_a_queue_and_a_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reprocess", "--queue-url", QUEUE]) == 2
    assert "--function" in capsys.readouterr().err


# -- listing ----------------------------------------------------------------------------------------


def test_the_listing_marks_quarantined_webhooks_and_hides_emails() -> None:
    body = _item("msg_q1", error_detail=f"must be an email address, not {EMAIL}").to_json()
    items = [quarantine_ops._quarantined({"MessageId": "m1", "Body": body}, now=1_700_000_061)]
    assert items[0].age_seconds == 60 and items[0].kind == "quarantined"
    table = quarantine_ops.format_quarantined(items)
    assert "msg_q1" in table and "payment.succeeded" in table and "2023-11-14 22:13:21Z" in table
    assert "data.total_amount: must be an email address" in table
    assert EMAIL not in table and "<email>" in table
    assert "dodo-cio reprocess" in table


def test_the_listing_says_each_kind_and_that_rejected_ones_need_a_person() -> None:
    from dataclasses import replace

    kinds = ["unknown_type", "unknown_type", "rejected"]
    items = [
        quarantine_ops._quarantined({"MessageId": f"m{n}", "Body": replace(_item(f"msg_{n}"), kind=kind).to_json()}, 0)
        for n, kind in enumerate(kinds)
    ]
    assert [item.why for item in items] == kinds
    table = quarantine_ops.format_quarantined(items)
    assert " ".join(table.splitlines()[0].split()) == "QUARANTINED WEBHOOK TYPE RECEIVED (UTC) AGE KIND REASON"
    assert "by kind: unknown_type 2, rejected 1" in table
    assert "no upgrade fixes them" in table
    assert "no upgrade fixes" not in quarantine_ops.format_quarantined(items[:2])
