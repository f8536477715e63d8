"""A signed body the bridge cannot read is kept, and can be run again once the bridge can read it.

The ingest handler in-process on moto and the sandbox (conftest.bridge). A re-run is the direct
invoke `dodo-cio reprocess` sends (dodo_cio.receiving.quarantine.reprocess_event).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

import dodo_cio.ingest.service
from dodo_cio.receiving.models import PayloadError
from dodo_cio.receiving.quarantine import QuarantinedWebhook, reprocess_event
from dodo_cio_local.lambda_context import FakeLambdaContext
from support.apigw import signed_event
from support.bodies import PAYMENT, SAMPLES, body, changed
from support.emf import emitted_metrics

pytestmark = pytest.mark.network


def _rerun(bridge: Any, item: QuarantinedWebhook | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    event = reprocess_event(item) if isinstance(item, QuarantinedWebhook) else item
    response = bridge.app.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def _kept(bridge: Any) -> QuarantinedWebhook:
    (message,) = bridge.quarantined()
    return QuarantinedWebhook.from_dict(message["body"])


@pytest.mark.parametrize(
    ("body", "field", "event_type"),
    [
        (b"", "body", None),
        (b"{not json", "body", None),
        (b"[1, 2]", "body", None),
        (body({"data": {}, "timestamp": "2026-10-14T09:21:47Z"}), "body.type", None),
        (body({"type": "payment.succeeded", "timestamp": "2026-10-14T09:21:47Z"}), "body.data", "payment.succeeded"),
        (changed(PAYMENT, lambda d: d["data"].pop("payment_id")), "data.payment_id", "payment.succeeded"),
        (changed(PAYMENT, lambda d: d["data"].update(total_amount="4900")), "data.total_amount", "payment.succeeded"),
        (
            changed(SAMPLES["subscription.active.json"], lambda d: d["data"].pop("status")),
            "data.status",
            "subscription.active",
        ),
        (b'{"type": "refund.succeeded", "data": "\xff\xfe"}', "body", None),  # not UTF-8: kept as base64
    ],
)
def test_a_signed_body_that_cannot_be_read_is_kept_whole(
    bridge: Any, body: bytes, field: str, event_type: str | None
) -> None:
    # base64-encoded, as API Gateway passes a body that is not UTF-8: the bytes kept are the bytes signed
    event = signed_event(body, bridge.secret, webhook_id="msg_unreadable", base64_body=True)
    status, answer = bridge.invoke(event)
    assert status == 202 and answer["status"] == "quarantined" and answer["field"] == field, answer
    kept = _kept(bridge)
    assert kept.body == body, "byte for byte as signed"
    assert kept.webhook_id == "msg_unreadable"
    assert kept.webhook_timestamp == event["headers"]["webhook-timestamp"]
    assert kept.webhook_signature == event["headers"]["webhook-signature"]
    assert (kept.error_field, kept.event_type) == (field, event_type)
    assert abs(kept.received_at - time.time()) < 60
    assert bridge.sandbox.requests == [] and bridge.parked() == [] and bridge.dead_lettered() == []


@pytest.mark.parametrize("no_queue", ["deleted", "not configured"])
def test_when_the_body_cannot_be_kept_dodo_is_asked_to_send_it_again(
    bridge: Any, monkeypatch: Any, no_queue: str
) -> None:
    if no_queue == "deleted":
        bridge.sqs.delete_queue(QueueUrl=bridge.quarantine_url)
    else:
        monkeypatch.delenv("QUARANTINE_QUEUE_URL")
    assert bridge.send(b"{not json") == (500, {"error": "webhook could not be processed nor kept"})


def _quarantine_a_payment_the_old_model_rejects(bridge: Any, monkeypatch: Any) -> QuarantinedWebhook:
    """What an upgrade fixes: this version's model refuses a field Dodo started sending."""
    real = dodo_cio.ingest.service.parse_payload

    def old_model(envelope: Any) -> Any:
        raise PayloadError("data.total_amount", "must be an integer")

    monkeypatch.setattr(dodo_cio.ingest.service, "parse_payload", old_model)
    status, answer = bridge.send(PAYMENT, webhook_id="msg_after_upgrade")
    assert (status, answer["status"]) == (202, "quarantined")
    monkeypatch.setattr(dodo_cio.ingest.service, "parse_payload", real)  # "the upgrade"
    return _kept(bridge)


def test_a_rerun_the_bridge_still_cannot_read_is_422_and_not_kept_twice(bridge: Any) -> None:
    bridge.send(b'{"type": "payment.succeeded"}', webhook_id="msg_still_bad")
    item = _kept(bridge)
    status, answer = _rerun(bridge, item)
    assert status == 422 and answer == {"status": "still_invalid", "field": "body.data", "detail": answer["detail"]}
    assert bridge.quarantined() == [] and bridge.sandbox.requests == []


def test_a_rerun_after_a_secret_rotation_needs_the_old_secret_kept_beside_the_new(
    bridge: Any, monkeypatch: Any
) -> None:
    item = _quarantine_a_payment_the_old_model_rejects(bridge, monkeypatch)
    old = "whsec_" + base64.b64encode(bridge.secret).decode()
    new = "whsec_" + base64.b64encode(b"the-rotated-secret-0123456789").decode()
    bridge.store("webhook-secret", new)
    assert _rerun(bridge, item)[0] == 401
    bridge.store("webhook-secret", f"{new} {old}")
    assert _rerun(bridge, item) == (200, {"status": "delivered"})


def test_a_direct_invoke_that_is_not_a_quarantined_webhook_is_refused(bridge: Any) -> None:
    status, answer = _rerun(bridge, {"dodo_cio_reprocess": {"format": "something-else"}})
    assert status == 400 and answer["error"] == "not a quarantined webhook"


# -- issue 16: what can never be processed as it is is kept, once, with its reason -----------------


def _long_customer_id(doc: dict[str, Any]) -> None:
    doc["data"]["customer"]["customer_id"] = "cus_" + "x" * 2100


def _long_payment_id(doc: dict[str, Any]) -> None:
    doc["data"]["payment_id"] = "pay_" + "y" * 2100


@pytest.mark.parametrize("change", [_long_customer_id, _long_payment_id], ids=["customer_id", "payment_id"])
def test_an_id_dynamodb_cannot_key_is_kept_with_its_reason_every_time(bridge: Any, change: Any) -> None:
    """A 2,100-character id used to be answered 503 on every try, and nothing was kept anywhere."""
    body = changed(PAYMENT, change)
    for attempt in range(2):  # Dodo sending it again (a lost answer) is decided the same way
        status, answer = bridge.send(body, webhook_id="msg_long_id")
        assert (status, answer["status"], answer["kind"]) == (202, "quarantined", "rejected"), answer
        assert "2048-byte key limit" in answer["detail"] and "y" * 100 not in answer["detail"]
        kept = _kept(bridge)
        assert kept.kind == "rejected" and kept.body == body and kept.error_field == "state", attempt
        assert bridge.sandbox.requests == [] and bridge.parked() == [] and bridge.dead_lettered() == []
    status, answer = _rerun(bridge, kept)
    assert (status, answer["status"]) == (422, "still_invalid")


def test_a_validation_error_dynamodb_answers_is_permanent_not_unavailable(bridge: Any, monkeypatch: Any) -> None:
    """Broken on purpose: without the size check, DynamoDB's own ValidationException must be read as permanent."""
    import dodo_cio.state.table

    for module in (dodo_cio.ingest.service, dodo_cio.state.table):  # both places that measure before calling
        monkeypatch.setattr(module, "plan_problem", lambda plan: None)
    status, answer = bridge.send(changed(PAYMENT, _long_payment_id), webhook_id="msg_refused_by_dynamodb")
    assert (status, answer["status"], answer["kind"]) == (202, "quarantined", "rejected"), answer
    assert "DynamoDB refused the request" in answer["detail"]
    assert _kept(bridge).kind == "rejected"


def test_an_unknown_type_is_kept_and_delivered_once_a_mapping_exists(
    bridge: Any, monkeypatch: Any, capsys: Any
) -> None:
    """A type this version does not map (None from parse_payload) is kept; the upgrade's re-run delivers it."""
    real = dodo_cio.ingest.service.parse_payload
    monkeypatch.setattr(dodo_cio.ingest.service, "parse_payload", lambda envelope: None)  # "before the upgrade"
    status, answer = bridge.send(PAYMENT, webhook_id="msg_new_type")
    assert (status, answer["status"], answer["kind"], answer["field"]) == (202, "quarantined", "unknown_type", "type")
    item = _kept(bridge)
    assert (item.kind, item.event_type) == ("unknown_type", "payment.succeeded")
    assert _rerun(bridge, item)[0] == 422  # still unmapped: stays for later
    counted = emitted_metrics(capsys.readouterr().out)  # the alarm counts arrivals, not re-runs
    assert (counted["UnknownEventType"], counted["QuarantineStillInvalid"]) == (1, 1)
    monkeypatch.setattr(dodo_cio.ingest.service, "parse_payload", real)  # "the upgrade"
    assert _rerun(bridge, item) == (200, {"status": "delivered"})
    # A second re-run (the message was not deleted in time) is answered from the first.
    assert _rerun(bridge, item) == (200, {"status": "delivered"})
    assert [op["name"] for op in bridge.sandbox.accepted_ops() if op["action"] == "event"] == ["payment.succeeded"]


@pytest.mark.parametrize(("age_days", "status"), [(13.9, 200), (14.1, 401), (30, 401)])
def test_a_rerun_older_than_the_quarantine_could_keep_is_refused(
    bridge: Any, monkeypatch: Any, age_days: float, status: int
) -> None:
    """A signed webhook of any age used to be accepted by a re-run; the public endpoint refuses it."""
    item = _quarantine_a_payment_the_old_model_rejects(bridge, monkeypatch)
    service = bridge.app.service()
    monkeypatch.setattr(service, "clock", lambda: time.time() + age_days * 86_400)
    assert _rerun(bridge, item)[0] == status
    assert len(bridge.sandbox.requests) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ({"headers": ["webhook-id", "msg_1"], "body": "{}"}, "headers must be an object, not list"),
        ({"headers": {}, "body": {"type": "payment.succeeded"}}, "body must be a string, not dict"),
        (["not", "an", "object"], "the event must be a JSON object, not list"),
        ("just a string", "the event must be a JSON object, not str"),
    ],
)
def test_a_malformed_direct_invoke_gets_a_clear_400_not_a_traceback(bridge: Any, event: Any, detail: str) -> None:
    response = bridge.app.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"error": "not an API Gateway event", "detail": detail}


def test_a_100_kb_type_is_kept_whole_but_never_logged_whole(bridge: Any, capsys: Any) -> None:
    body = changed(PAYMENT, lambda d: d.update(type="x" * 100_000))
    status, answer = bridge.send(body)
    assert (status, answer["kind"]) == (202, "unknown_type")
    assert _kept(bridge).body == body
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) < 5_000
