"""The quarantine format: what is kept of a signed body the bridge could not read, and the re-run request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio.receiving.quarantine import (
    FORMAT,
    QuarantinedWebhook,
    QuarantineFormatError,
    quarantine,
    reprocess_event,
    reprocess_request,
)
from dodo_cio.receiving.signature import SignatureError, sign, verify
from support.fake_sqs import FakeSqs

SECRET = b"unit-test-secret-0123456789"


def _item(body: bytes = b'{"type":"payment.succeeded"}', **changes: Any) -> QuarantinedWebhook:
    fields: dict[str, Any] = {
        "webhook_id": "msg_q1",
        "webhook_timestamp": "1790000000",
        "webhook_signature": sign(SECRET, "msg_q1", 1_790_000_000, body),
        "received_at": 1_790_000_001,
        "event_type": "payment.succeeded",
        "error_field": "body.data",
        "error_detail": "is required",
        "body": body,
    }
    fields.update(changes)
    return QuarantinedWebhook(**fields)


@pytest.mark.parametrize("body", [b'{"a": "\xc3\xa9"}', b"\xff\xfe\x00 not utf-8", b""])
def test_round_trip_keeps_the_body_byte_for_byte(body: bytes) -> None:
    item = _item(body)
    again = QuarantinedWebhook.from_json(item.to_json())
    assert again == item


def test_a_utf8_body_is_readable_in_the_message_and_other_bytes_are_base64() -> None:
    assert _item(b'{"x":1}').to_dict()["body"] == '{"x":1}'
    doc = _item(b"\xff").to_dict()
    assert (doc["body_encoding"], doc["body"]) == ("base64", "/w==")


def test_a_body_of_control_characters_is_base64_so_the_largest_body_fits_one_message() -> None:
    body = b"\x01" * (256 * 1024)
    doc = _item(body).to_dict()
    assert doc["body_encoding"] == "base64"
    assert len(_item(body).to_json().encode()) < 1024 * 1024  # the quarantine queue's MaximumMessageSize
    assert QuarantinedWebhook.from_dict(doc).body == body


def test_the_kept_headers_verify_the_body_without_the_timestamp_window() -> None:
    item = _item()
    now = 1_790_000_000 + 30 * 86_400  # a month later
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


@pytest.mark.parametrize("kind", ["unreadable", "unknown_type", "rejected"])
def test_each_kind_round_trips_and_a_message_from_before_kinds_is_unreadable(kind: str) -> None:
    item = _item(kind=kind)
    assert QuarantinedWebhook.from_json(item.to_json()) == item
    doc = item.to_dict()
    doc.pop("kind")  # written before issue 16, when only unreadable bodies were quarantined
    assert QuarantinedWebhook.from_dict(doc).kind == "unreadable"


def test_quarantine_sends_one_message_with_the_reason_as_attributes() -> None:
    sqs = FakeSqs()
    assert quarantine(sqs, "https://sqs/q", _item()) == "new-1"
    (sent,) = sqs.sent
    assert json.loads(sent["MessageBody"])["format"] == FORMAT
    assert sent["MessageAttributes"]["error_field"]["StringValue"] == "body.data"
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
