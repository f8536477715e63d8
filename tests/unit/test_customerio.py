"""Track v2 client: which endpoint, what body, what auth, and what each HTTP answer means per op."""

from __future__ import annotations

import calendar
import json
from email.utils import formatdate
from typing import Any

import pytest
import requests
import responses

from dodo_cio.delivery.track import (
    DeliveryResult,
    OpResult,
    TrackClient,
    classify_response,
    parse_retry_after,
    request_size,
    track_base_url,
)
from support.track_ops import event_op, identify_op
from support.track_session import TrackSession

BASE = "https://track.example.test"
OP_A = event_op(
    "cus_A", event_id="01JB8Z6Q2W3E4R5T6Y7V8X9M0P", timestamp=1792055307, attributes={"amount": 49.0, "note": "café ☕"}
)
OP_B = identify_op({"id": "cus_A"}, {"email": "maya@example.com"}, timestamp=1792055307)
OP_C: dict[str, Any] = {**OP_A, "identifiers": {"id": "cus_C"}, "id": "01JB8Z6Q2W3E4R5T6Y7V8X9M0Q"}


def outcomes(results: tuple[OpResult, ...]) -> list[str]:
    return [r.outcome for r in results]


# -------------------------------------------------------------------------------------------------
# classify_response


BAD_NAME = b'{"errors":[{"reason":"invalid","field":"name","message":"required"}]}'


@pytest.mark.parametrize(
    ("status", "body", "batch", "outcome", "reason"),
    [
        *[
            (200, body, batch, "delivered", None)
            for body in (b"", b"{}", b"OK", b"<html>ok</html>")
            for batch in (False, True)
        ],
        (207, b"whatever", False, "delivered", None),  # a 207 on /entity is a success
        (400, BAD_NAME, False, "permanent", "HTTP 400: " + BAD_NAME.decode()),
        (400, BAD_NAME, True, "permanent", "HTTP 400: " + BAD_NAME.decode()),
        *[(status, b"", True, "config", f"HTTP {status}") for status in (401, 403, 404)],
        *[(status, b"", False, "permanent", f"HTTP {status}") for status in (405, 415, 422)],
        *[
            (s, b"busy", False, "transient", f"HTTP {s}: busy")
            for s in (408, 409, 425, 429, 413, 500, 502, 503, 504, 599)
        ],
        (500, b"e" * 5000, False, "transient", "HTTP 500: " + "e" * 300),  # a long body: its start only
    ],
)
def test_the_status_decides_every_op(status: int, body: bytes, batch: bool, outcome: str, reason: str | None) -> None:
    n = 2 if batch else 1
    results, retry_after = classify_response(status, body, {}, n, batch=batch)
    assert outcomes(results) == [outcome] * n
    assert retry_after is None
    if reason is not None:
        assert results[0].reason == reason


@pytest.mark.parametrize(
    ("indexes", "expected"),
    [
        ([1], ["delivered", "permanent", "delivered"]),
        ([0, 2], ["permanent", "delivered", "permanent"]),
        ([7, 0], ["permanent", "delivered", "delivered"]),  # out of range next to a valid index
        *[([index], ["delivered"] * 3) for index in (3, 5, -1, "0", True, None, 1.0)],  # unusable: ignored
    ],
)
def test_207_fails_only_the_items_it_names_by_a_usable_index_saying_why(
    indexes: list[Any], expected: list[str]
) -> None:
    errors = [{"batch_index": i, "reason": "invalid", "field": "name", "message": f"bad {i}"} for i in indexes]
    results, _ = classify_response(207, json.dumps({"errors": errors}).encode(), {}, 3, batch=True)
    assert outcomes(results) == expected
    says = [f"HTTP 207: name; invalid; bad {i}" if o == "permanent" else "" for i, o in enumerate(expected)]
    assert [r.reason for r in results] == says


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b"{}", b'{"errors": null}', b'{"errors": "x"}', b'{"errors": [1, 2]}', b"\xff"],
)
def test_207_unreadable_body_means_resend_everything(body: bytes) -> None:
    results, _ = classify_response(207, body, {}, 3, batch=True)
    assert outcomes(results) == ["transient"] * 3
    assert "207" in results[0].reason


def test_retry_after_is_read_from_a_failure_only() -> None:
    assert classify_response(429, b"", {"Retry-After": "30"}, 1, batch=False)[1] == 30.0
    assert classify_response(503, b"", None, 1, batch=False)[1] is None
    assert classify_response(202, b"", {"Retry-After": "30"}, 1, batch=False)[1] is None
    future = formatdate(calendar.timegm((2099, 1, 1, 0, 0, 0)), usegmt=True)
    retry_after = classify_response(503, b"", {"Retry-After": future}, 1, batch=False)[1]
    assert retry_after is not None and retry_after > 365 * 86400  # computed against the real clock


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 80.0),
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),  # already past: no wait, never negative
        ("soon", None),
        ("-5", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = calendar.timegm((2015, 10, 21, 7, 26, 40))  # 80 s before 07:28:00 GMT
    result = parse_retry_after(value, now=float(now))
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


# -------------------------------------------------------------------------------------------------
# track_base_url


TRACK_US, TRACK_EU = "https://track.customer.io", "https://track-eu.customer.io"


@pytest.mark.parametrize(
    ("region", "override", "expected"),
    [
        *[(region, override, TRACK_US) for region in ("us", "US") for override in (None, "", "   ")],
        *[(region, override, TRACK_EU) for region in ("eu", " EU ") for override in (None, "", "   ")],
        *[(region, "http://localhost:4010/", "http://localhost:4010") for region in ("us", "eu")],
        *[(region, " https://proxy.example.com/cio ", "https://proxy.example.com/cio") for region in ("us", "eu")],
    ],
)
def test_track_base_url_is_the_regions_unless_an_override_wins_trimmed(
    region: str, override: str | None, expected: str
) -> None:
    assert track_base_url(region, override) == expected


@pytest.mark.parametrize("region", ["", "ap", "us-east-1", "europe"])
def test_track_base_url_invalid_region(region: str) -> None:
    with pytest.raises(ValueError, match="CUSTOMERIO_REGION"):
        track_base_url(region)


# -------------------------------------------------------------------------------------------------
# TrackClient.send over the `responses` mock transport (no sockets)


@pytest.fixture
def mock_http() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def client(base: str = BASE, **kwargs: Any) -> TrackClient:
    kwargs.setdefault("session", requests.Session())  # the responses library mocks requests
    return TrackClient(base, "site", "key", **kwargs)


def test_one_op_goes_to_entity_several_to_batch_and_none_nowhere(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/entity", body="", status=200)
    mock_http.add(responses.POST, f"{BASE}/api/v2/batch", body="{}", status=200)
    track = client(BASE + "/")
    empty = track.send([])
    assert empty == DeliveryResult((), None) and empty.delivered
    assert len(mock_http.calls) == 0
    result = track.send([OP_A])
    assert (outcomes(result.results), result.status) == (["delivered"], 200)
    assert result.elapsed_ms >= 0
    assert track.send([OP_B, OP_A]).delivered
    entity, batch = (call.request for call in mock_http.calls)
    assert (entity.method, entity.url, json.loads(entity.body)) == ("POST", f"{BASE}/api/v2/entity", OP_A)
    assert entity.headers["Content-Type"] == "application/json"
    assert entity.headers["Authorization"] == "Basic c2l0ZTprZXk="  # base64("site:key")
    assert "café ☕".encode() in entity.body  # UTF-8 on the wire, not \\u escapes
    assert (batch.url, json.loads(batch.body)) == (f"{BASE}/api/v2/batch", {"batch": [OP_B, OP_A]})
    assert [len(entity.body), len(batch.body)] == [request_size([OP_A]), request_size([OP_B, OP_A])]


@pytest.mark.parametrize(
    ("ops", "status", "headers", "expected", "retry_after"),
    [
        pytest.param([OP_B, OP_A, OP_C], 207, {}, ["delivered", "permanent", "delivered"], None, id="207"),
        pytest.param([OP_A], 429, {"retry-after": "12"}, ["transient"], 12.0, id="429-lowercase-retry-after"),
        pytest.param([OP_A, OP_B], 401, {}, ["config", "config"], None, id="401"),
    ],
)
def test_the_answer_decides_each_op(
    mock_http: Any, ops: list[Any], status: int, headers: dict[str, str], expected: list[str], retry_after: Any
) -> None:
    body = {"errors": [{"batch_index": 1, "reason": "invalid", "field": "name", "message": "bad"}]}
    path = "batch" if len(ops) > 1 else "entity"
    mock_http.add(responses.POST, f"{BASE}/api/v2/{path}", json=body, status=status, headers=headers)
    result = client().send(ops)
    assert (outcomes(result.results), result.status, result.retry_after) == (expected, status, retry_after)
    assert result.failed_indexes() == [i for i, outcome in enumerate(expected) if outcome != "delivered"]


@pytest.mark.parametrize(
    ("exc", "word"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), "timeout"),
        (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
        (requests.exceptions.ConnectionError("refused"), "connection error"),
        (requests.exceptions.SSLError("bad cert"), "connection error"),
        (requests.exceptions.ChunkedEncodingError("cut"), "connection error"),
    ],
)
def test_transport_errors_are_transient_without_status(mock_http: Any, exc: Exception, word: str) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/batch", body=exc)
    result = client().send([OP_A, OP_B])
    assert result.status is None
    assert result.retry_after is None
    assert outcomes(result.results) == ["transient", "transient"]
    assert word in result.results[0].reason


def test_one_session_carries_every_send_with_the_timeouts_and_closes_with_the_client() -> None:
    session = TrackSession()
    track = TrackClient(BASE, "s", "k", connect_timeout=1.5, read_timeout=4.0, session=session)
    track.send([OP_A])
    track.send([OP_A, OP_B])
    assert [(path, timeout) for path, *_, timeout in session.requests] == [
        ("/entity", (1.5, 4.0)),
        ("/batch", (1.5, 4.0)),
    ]
    track.close()
    assert session.closed
