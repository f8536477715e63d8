"""The parked-message format (versioned, documented in the README) and the SQS send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio.delivery.parking import (
    ERROR_KINDS,
    FORMAT_VERSION,
    LastError,
    ParkedDelivery,
    ParkedFormatError,
    park,
)
from support.fake_sqs import FakeSqs

OPS: list[dict[str, Any]] = [
    {
        "type": "person",
        "identifiers": {"id": "cus_2RfYk8HcWq5NzT1mLb9Xe"},
        "action": "identify",
        "timestamp": 1792055307,
        "attributes": {"email": "maya.fernandes@example.com", "name": "Zoë ☕"},
    },
    {
        "type": "person",
        "identifiers": {"id": "cus_2RfYk8HcWq5NzT1mLb9Xe"},
        "action": "event",
        "name": "payment.succeeded",
        "id": "01JB8Z6Q2W3E4R5T6Y7V8X9M0P",
        "timestamp": 1792055307,
        "attributes": {"amount": 49.0, "amount_minor": 4900, "amount_currency": "USD"},
    },
]


FIELDS: dict[str, Any] = {  # a parked delivery's fields but its last error
    "webhook_id": "msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC0",
    "event_type": "payment.succeeded",
    "event_time": 1792055307,
    "first_seen": 1792055310,
    "attempts": 1,
    "ops": OPS,
    "customer_id": "cus_2RfYk8HcWq5NzT1mLb9Xe",
}
LAST_ERROR: dict[str, Any] = {
    "kind": "transient",
    "reason": "HTTP 503: busy",
    "status": 503,
    "at": 1792055311,
    "retry_after": 30.0,
}


def parked(**changes: Any) -> ParkedDelivery:
    return ParkedDelivery(**{**FIELDS, "last_error": LastError(**LAST_ERROR), **changes})


def test_the_document_is_version_1_compact_utf8() -> None:
    assert FORMAT_VERSION == 1
    assert frozenset({"transient", "permanent", "config"}) == ERROR_KINDS
    assert issubclass(ParkedFormatError, ValueError)
    text = parked().to_json()
    assert json.loads(text) == {"version": 1, **FIELDS, "last_error": {**LAST_ERROR, "permanent": False}}
    assert "Zoë ☕" in text
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "item",
    [
        parked(),
        parked(last_error=LastError(kind="permanent", reason="HTTP 400: bad", status=400, at=5)),
        parked(last_error=LastError(kind="config", reason="HTTP 401"), customer_id=None, attempts=0),
        parked(last_error=LastError(kind="transient", reason="timeout: ReadTimeout", status=None)),
    ],
)
def test_round_trip(item: ParkedDelivery) -> None:
    text = item.to_json()
    assert ParkedDelivery.from_json(text) == item
    assert ParkedDelivery.from_json(text.encode("utf-8")) == item


@pytest.mark.parametrize(("kind", "permanent"), [("permanent", True), ("transient", False), ("config", False)])
def test_permanent_flag(kind: str, permanent: bool) -> None:
    item = parked(last_error=LastError(kind=kind, reason="r"))
    assert item.last_error.permanent is permanent
    assert json.loads(item.to_json())["last_error"]["permanent"] is permanent


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(parked().to_json())
    doc.update(changes)
    return doc


def _without(key: str) -> dict[str, Any]:
    doc = _doc()
    del doc[key]
    return doc


@pytest.mark.parametrize(
    ("doc", "mentions"),
    [
        *[(doc, "version") for doc in (_doc(version=2), _doc(version="1"), _doc(version=0), _without("version"))],
        *[(doc, "ops") for doc in (_without("ops"), _doc(ops=[]), _doc(ops="[]"), _doc(ops=[OPS[0], "op"]))],
        (_doc(last_error={"kind": "fatal", "reason": "x"}), "kind"),
        (_doc(last_error={"reason": "x"}), "kind"),
        (_doc(last_error="transient"), "kind"),
        (_without("last_error"), "kind"),
        *[(doc, "webhook_id") for doc in (_without("webhook_id"), _doc(webhook_id=123))],
        (_without("event_type"), "event_type"),
        (_doc(event_time="2026-10-14T09:21:47Z"), "event_time"),
        (_without("first_seen"), "first_seen"),
    ],
)
def test_from_json_rejects(doc: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ParkedFormatError) as info:
        ParkedDelivery.from_json(json.dumps(doc))
    assert mentions in str(info.value)


@pytest.mark.parametrize("text", ["", "not json", "{", b"\xff\xfe", "[]", '"a string"', "null", "42"])
def test_from_json_rejects_non_objects(text: str | bytes) -> None:
    with pytest.raises(ParkedFormatError):
        ParkedDelivery.from_json(text)


def test_from_json_tolerates_optional_fields_missing_or_odd() -> None:
    doc = _doc(attempts="3", customer_id=42)
    for key in ("status", "at", "reason"):
        del doc["last_error"][key]
    doc["last_error"]["retry_after"] = 5  # an integer becomes a float
    item = ParkedDelivery.from_json(json.dumps(doc))
    assert item.attempts == 0
    assert item.customer_id is None
    assert item.last_error == LastError(kind="transient", reason="", status=None, at=0, retry_after=5.0)
    assert isinstance(item.last_error.retry_after, float)


def test_unknown_extra_fields_are_ignored() -> None:
    doc = _doc(added_in_a_later_minor="x")
    assert ParkedDelivery.from_json(json.dumps(doc)) == parked()


# -------------------------------------------------------------------------------------------------
# park()


QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/dodo-cio-retry"


def test_park_sends_the_message() -> None:
    sqs = FakeSqs()
    item = parked(last_error=LastError(kind="permanent", reason="HTTP 400"))
    assert park(sqs, QUEUE, item, delay_seconds=30) == "new-1"
    (call,) = sqs.sent
    assert call["QueueUrl"] == QUEUE
    assert ParkedDelivery.from_json(call["MessageBody"]) == item
    assert call["DelaySeconds"] == 30
    assert call["MessageAttributes"] == {
        "event_type": {"DataType": "String", "StringValue": "payment.succeeded"},
        "error_kind": {"DataType": "String", "StringValue": "permanent"},
    }


@pytest.mark.parametrize(
    ("delay", "expected"),
    [(None, 0), (0, 0), (-5, 0), (900, 900), (901, 900), (86_400, 900), (12.9, 12)],
)
def test_park_clamps_delay_to_sqs_range(delay: float | None, expected: int) -> None:
    sqs = FakeSqs()
    park(sqs, QUEUE, parked(), **({} if delay is None else {"delay_seconds": delay}))  # type: ignore[arg-type]
    assert sqs.sent[0]["DelaySeconds"] == expected


def test_park_without_message_id_and_when_sqs_fails() -> None:
    class NoId(FakeSqs):
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            return {}

    assert park(NoId(), QUEUE, parked()) == ""
    with pytest.raises(RuntimeError, match="SQS is unavailable"):  # raised to the caller, which answers 5xx
        park(FakeSqs(failing_queues=[QUEUE]), QUEUE, parked())
