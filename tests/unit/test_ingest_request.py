"""Turning an API Gateway event into the raw bytes Dodo signed."""

from __future__ import annotations

import base64

from dodo_cio.receiving.http_api import request_from_apigw


def test_plain_body_is_taken_as_utf8_bytes() -> None:
    assert request_from_apigw({"body": '{"a":"é"}', "headers": {"X": "1"}}).body == '{"a":"é"}'.encode()


def test_base64_body_is_decoded() -> None:
    raw = b"\xff\x00binary"
    event = {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    assert request_from_apigw(event).body == raw


def test_invalid_base64_becomes_bytes_no_signature_can_match() -> None:
    assert request_from_apigw({"body": "!!!", "isBase64Encoded": True}).body.startswith(b"\x00")


def test_a_lone_surrogate_does_not_crash() -> None:
    assert request_from_apigw({"body": "ab\ud83dcd"}).body.startswith(b"ab")


def test_missing_body_and_headers() -> None:
    request = request_from_apigw({})
    assert (request.body, dict(request.headers)) == (b"", {})
