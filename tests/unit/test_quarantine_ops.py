"""`dodo-cio dlq` (quarantine listing) and `dodo-cio reprocess` against in-memory fakes: no socket, no moto.

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

from dodo_cio.receiving.quarantine import REPROCESS_KEY, QuarantinedWebhook, reprocess_event
from dodo_cio_cli import cli, quarantine_ops
from dodo_cio_cli.aws_calls import OperatorError
from support.fake_sqs import Releasing

EMAIL = "ana.souza@example.com"


def _item(webhook_id: str, *, detail: str = "must be an integer", event_type: str | None = "payment.succeeded"):
    return QuarantinedWebhook(
        webhook_id=webhook_id,
        webhook_timestamp="1700000000",
        webhook_signature="v1,c2lnbmF0dXJl",
        received_at=1_700_000_001,
        event_type=event_type,
        error_field="data.total_amount",
        error_detail=detail,
        body=b'{"type":"payment.succeeded","data":{"total_amount":"4900"}}',
    )


@dataclass
class FakeSqs(Releasing):
    """A queue: receive hides, change_message_visibility_batch(0) shows again, delete removes."""

    bodies: dict[str, str]
    deleted: list[str] = field(default_factory=list)
    receives: list[dict[str, Any]] = field(default_factory=list)

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives.append(kwargs)
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


# -- classify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "delivered"}, ("delivered", True)),
        (202, {"status": "queued"}, ("queued", True)),
        (202, {"status": "dead_lettered"}, ("dead_lettered", True)),
        (200, {"status": "ignored"}, ("ignored", True)),
        (422, {"status": "still_invalid", "field": "data.x", "detail": "bad"}, ("still_invalid", False)),
        (401, {"error": "invalid signature"}, ("signature", False)),
        (401, {"error": "invalid signature", "reason": "timestamp outside tolerance"}, ("too_old", False)),
        (409, {"error": "in progress"}, ("retry_later", False)),
        (500, {"error": "delivery failed and could not be queued"}, ("retry_later", False)),
        (503, {"error": "state table unavailable"}, ("retry_later", False)),
        (400, {"error": "not a quarantined webhook"}, ("http_400", False)),
        (None, {}, ("no_answer", False)),
    ],
)
def test_only_a_2xx_counts_as_handled(status: int | None, body: dict[str, Any], expected: tuple[str, bool]) -> None:
    outcome, handled, _ = quarantine_ops.classify(status, body)
    assert (outcome, handled) == expected


# -- reprocess --------------------------------------------------------------------------------------


def test_reprocess_deletes_on_2xx_and_keeps_422_401_and_5xx() -> None:
    sqs = _queue("ok", "invalid", "rotated", "busy", "down")
    lam = FakeLambda(
        {
            "msg_ok": answer(200, status="delivered"),
            "msg_invalid": answer(422, status="still_invalid", field="data.total_amount", detail="must be an integer"),
            "msg_rotated": answer(401, error="invalid signature", reason="no matching signature"),
            "msg_busy": answer(409, error="webhook is being processed"),
            "msg_down": answer(503, error="state table unavailable"),
        }
    )
    results = quarantine_ops.reprocess(sqs, lam, QUEUE, FUNCTION)

    assert sqs.deleted == ["ok"]
    assert sorted(sqs.bodies) == ["busy", "down", "invalid", "rotated"]
    assert sqs.hidden == set(), "what stayed must be visible again for the next run"
    by_id = {r.webhook_id: (r.status, r.outcome, r.deleted) for r in results}
    assert by_id == {
        "msg_ok": (200, "delivered", True),
        "msg_invalid": (422, "still_invalid", False),
        "msg_rotated": (401, "signature", False),
        "msg_busy": (409, "retry_later", False),
        "msg_down": (503, "retry_later", False),
    }
    # Each invoke carries exactly the documented direct-invoke event, synchronously.
    first = lam.calls[0]
    assert (first["FunctionName"], first["InvocationType"]) == (FUNCTION, "RequestResponse")
    assert json.loads(first["Payload"]) == reprocess_event(_item("msg_ok"))
    text = quarantine_ops.summary(results)
    assert "1 handled and deleted, 4 kept" in text
    assert "webhook-secret" in text and "upgrade" in text  # what to do about the signature and still_invalid ones


def test_a_function_that_raises_keeps_the_message() -> None:
    sqs = _queue("a")
    (result,) = quarantine_ops.reprocess(sqs, FakeLambda({"msg_a": crashed}), QUEUE, FUNCTION)
    assert (result.outcome, result.deleted) == ("retry_later", False)
    assert "RuntimeError" in result.detail
    assert sqs.deleted == [] and sqs.hidden == set()


def test_an_unreadable_message_is_kept_and_never_sent() -> None:
    sqs = _queue(junk='{"format": "something-else"}')
    lam = FakeLambda({})
    (result,) = quarantine_ops.reprocess(sqs, lam, QUEUE, FUNCTION)
    assert (result.outcome, result.deleted) == ("unreadable", False)
    assert lam.calls == [] and sqs.deleted == [] and sqs.hidden == set()


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
    body = _item("msg_q1", detail=f"must be an email address, not {EMAIL}").to_json()
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


def test_dlq_lists_both_queues_and_json_stays_one_array(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    quarantine = _queue("q1")
    dlq = FakeSqs({})

    class Both:
        """One client, two queues, as boto3 has."""

        def __getattr__(self, name: str) -> Any:
            def call(**kwargs: Any) -> Any:
                return getattr(quarantine if kwargs["QueueUrl"] == QUEUE else dlq, name)(**kwargs)

            return call

    monkeypatch.setattr(cli, "_aws", lambda service, region: Both())
    argv = ["dlq", "--queue-url", "https://sqs/dlq", "--quarantine-url", QUEUE]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "no dead letters" in out and "QUARANTINED WEBHOOK" in out and "msg_q1" in out
    assert cli.main([*argv, "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["queue"], item["kind"], item["webhook_id"]) == ("quarantine", "quarantined", "msg_q1")
    assert quarantine.deleted == [] and quarantine.hidden == set(), "listing must not consume"
