"""Track v2 client: which endpoint, what body, what auth, and what each HTTP answer means per op."""

from __future__ import annotations

import base64
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


@pytest.mark.parametrize("body", [b"", b"{}", b"OK", b"<html>fine</html>"])
@pytest.mark.parametrize("batch", [False, True])
def test_200_is_delivered_whatever_the_body(body: bytes, batch: bool) -> None:
    n = 2 if batch else 1
    results, retry_after = classify_response(200, body, {}, n, batch=batch)
    assert outcomes(results) == ["delivered"] * n
    assert retry_after is None


def test_2xx_ignores_retry_after() -> None:
    results, retry_after = classify_response(202, b"", {"Retry-After": "30"}, 1, batch=False)
    assert outcomes(results) == ["delivered"]
    assert retry_after is None


def test_207_names_both_items() -> None:
    body = json.dumps(
        {
            "errors": [
                {"batch_index": 0, "reason": "invalid", "field": "identifiers", "message": "bad id"},
                {"batch_index": 1, "reason": "too_long", "field": "name", "message": "name too long"},
            ]
        }
    ).encode()
    results, _ = classify_response(207, body, {}, 2, batch=True)
    assert outcomes(results) == ["permanent", "permanent"]
    assert "identifiers" in results[0].reason
    assert "bad id" in results[0].reason
    assert "name too long" in results[1].reason
    assert results[0].reason.startswith("HTTP 207")


def test_207_only_the_named_item_fails() -> None:
    body = b'{"errors": [{"batch_index": 1, "reason": "invalid", "message": "nope"}]}'
    results, _ = classify_response(207, body, {}, 3, batch=True)
    assert outcomes(results) == ["delivered", "permanent", "delivered"]
    assert results[0].reason == ""


@pytest.mark.parametrize("index", [2, 5, -1, "0", True, None, 1.0])
def test_207_unusable_index_is_ignored(index: Any) -> None:
    body = json.dumps({"errors": [{"batch_index": index, "reason": "x"}]}).encode()
    results, _ = classify_response(207, body, {}, 2, batch=True)
    assert outcomes(results) == ["delivered", "delivered"]


def test_207_out_of_range_next_to_a_valid_index() -> None:
    body = json.dumps({"errors": [{"batch_index": 7, "reason": "x"}, {"batch_index": 0, "reason": "y"}]})
    results, _ = classify_response(207, body.encode(), {}, 2, batch=True)
    assert outcomes(results) == ["permanent", "delivered"]


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b"{}", b'{"errors": null}', b'{"errors": "x"}', b'{"errors": [1, 2]}', b"\xff"],
)
def test_207_unreadable_body_means_resend_everything(body: bytes) -> None:
    results, _ = classify_response(207, body, {}, 3, batch=True)
    assert outcomes(results) == ["transient"] * 3
    assert "207" in results[0].reason


def test_207_on_entity_is_a_success() -> None:
    results, _ = classify_response(207, b"whatever", {}, 1, batch=False)
    assert outcomes(results) == ["delivered"]


@pytest.mark.parametrize("batch", [False, True])
def test_400_is_permanent_with_the_body_as_reason(batch: bool) -> None:
    body = b'{"errors":[{"reason":"invalid","field":"name","message":"required"}]}'
    n = 2 if batch else 1
    results, _ = classify_response(400, body, {}, n, batch=batch)
    assert outcomes(results) == ["permanent"] * n
    assert results[0].reason == "HTTP 400: " + body.decode()


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_not_found_are_config(status: int) -> None:
    results, _ = classify_response(status, b"", {}, 2, batch=True)
    assert outcomes(results) == ["config", "config"]
    assert results[0].reason == f"HTTP {status}"


@pytest.mark.parametrize("status", [408, 409, 425, 429, 413, 500, 502, 503, 504, 599])
def test_transient_statuses(status: int) -> None:
    results, _ = classify_response(status, b"busy", {}, 1, batch=False)
    assert outcomes(results) == ["transient"]
    assert results[0].reason == f"HTTP {status}: busy"


@pytest.mark.parametrize("status", [400, 405, 415, 422])
def test_other_4xx_are_permanent(status: int) -> None:
    results, _ = classify_response(status, b"", {}, 1, batch=False)
    assert outcomes(results) == ["permanent"]


def test_long_reason_is_capped() -> None:
    results, _ = classify_response(500, b"e" * 5000, {}, 1, batch=False)
    assert len(results[0].reason) <= len("HTTP 500: ") + 300


def test_retry_after_seconds() -> None:
    _, retry_after = classify_response(429, b"", {"Retry-After": "30"}, 1, batch=False)
    assert retry_after == 30.0
    _, retry_after = classify_response(503, b"", None, 1, batch=False)
    assert retry_after is None


def test_retry_after_http_date() -> None:
    future = formatdate(calendar.timegm((2099, 1, 1, 0, 0, 0)), usegmt=True)
    _, retry_after = classify_response(503, b"", {"Retry-After": future}, 1, batch=False)
    assert retry_after is not None
    assert retry_after > 365 * 86400  # far in the future, computed against the real clock


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


@pytest.mark.parametrize("override", [None, "", "   "])
@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us", "https://track.customer.io"),
        ("US", "https://track.customer.io"),
        ("eu", "https://track-eu.customer.io"),
        (" EU ", "https://track-eu.customer.io"),
    ],
)
def test_track_base_url_is_the_regions_without_an_override(region: str, expected: str, override: str | None) -> None:
    assert track_base_url(region, override) == expected


@pytest.mark.parametrize("region", ["us", "eu"])
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("http://localhost:4010/", "http://localhost:4010"),
        (" https://proxy.example.com/cio ", "https://proxy.example.com/cio"),
    ],
)
def test_track_base_url_override_wins_trimmed(region: str, override: str, expected: str) -> None:
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


def test_one_op_goes_to_entity(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/entity", body="", status=200)
    result = client().send([OP_A])
    assert result.delivered
    assert result.status == 200
    assert outcomes(result.results) == ["delivered"]
    assert result.elapsed_ms >= 0
    assert len(mock_http.calls) == 1
    request = mock_http.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{BASE}/api/v2/entity"
    assert json.loads(request.body) == OP_A
    assert request.headers["Content-Type"] == "application/json"
    assert "café ☕".encode() in request.body  # UTF-8 on the wire, not \\u escapes
    assert len(request.body) == request_size([OP_A])


def test_auth_header_is_basic_site_colon_key(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/entity", status=200)
    client().send([OP_A])
    header = mock_http.calls[0].request.headers["Authorization"]
    assert header == "Basic c2l0ZTprZXk="  # base64("site:key")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"site:key"


def test_two_ops_go_to_batch(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/batch", body="{}", status=200)
    result = client(BASE + "/").send([OP_B, OP_A])
    assert result.delivered
    request = mock_http.calls[0].request
    assert request.url == f"{BASE}/api/v2/batch"
    assert json.loads(request.body) == {"batch": [OP_B, OP_A]}
    assert len(request.body) == request_size([OP_B, OP_A])


def test_batch_207(mock_http: Any) -> None:
    body = {"errors": [{"batch_index": 1, "reason": "invalid", "field": "name", "message": "bad"}]}
    mock_http.add(responses.POST, f"{BASE}/api/v2/batch", json=body, status=207)
    result = client().send([OP_B, OP_A, OP_C])
    assert result.status == 207
    assert not result.delivered
    assert outcomes(result.results) == ["delivered", "permanent", "delivered"]
    assert result.failed_indexes() == [1]


def test_429_with_lowercase_retry_after(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/entity", status=429, headers={"retry-after": "12"})
    result = client().send([OP_A])
    assert outcomes(result.results) == ["transient"]
    assert result.status == 429
    assert result.retry_after == 12.0


def test_401_is_config(mock_http: Any) -> None:
    mock_http.add(responses.POST, f"{BASE}/api/v2/batch", status=401, body="Unauthorized")
    result = client().send([OP_A, OP_B])
    assert outcomes(result.results) == ["config", "config"]
    assert result.failed_indexes() == [0, 1]


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


def test_no_ops_no_request(mock_http: Any) -> None:
    result = client().send([])
    assert result == DeliveryResult((), None)
    assert result.delivered
    assert len(mock_http.calls) == 0


# -------------------------------------------------------------------------------------------------
# a fake session: the timeouts and the session's lifecycle


class FakeResponse:
    def __init__(self, status: int = 200, content: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.content = content
        self.headers = headers or {}


class FakeSession:
    def __init__(self, response: FakeResponse | None = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.response = response or FakeResponse()
        self.error = error
        self.closed = False

    def post(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append((url, kwargs))
        if self.error is not None:
            raise self.error
        return self.response

    def close(self) -> None:
        self.closed = True


def test_timeouts_are_passed_to_the_session() -> None:
    session = FakeSession()
    track = TrackClient(BASE, "s", "k", connect_timeout=1.5, read_timeout=4.0, session=session)  # type: ignore[arg-type]
    track.send([OP_A])
    url, kwargs = session.calls[0]
    assert url == f"{BASE}/api/v2/entity"
    assert kwargs["timeout"] == (1.5, 4.0)
    assert json.loads(kwargs["data"]) == OP_A
    assert kwargs["headers"]["Authorization"] == "Basic " + base64.b64encode(b"s:k").decode()
    track.close()
    assert session.closed


def test_timeout_from_fake_session() -> None:
    session = FakeSession(error=requests.Timeout("slow"))
    result = TrackClient(BASE, "s", "k", session=session).send([OP_A])  # type: ignore[arg-type]
    assert result.status is None
    assert outcomes(result.results) == ["transient"]
    assert "timeout" in result.results[0].reason


def test_session_is_reused_across_sends() -> None:
    session = FakeSession()
    track = TrackClient(BASE, "s", "k", session=session)  # type: ignore[arg-type]
    track.send([OP_A])
    track.send([OP_A, OP_B])
    assert [url for url, _ in session.calls] == [f"{BASE}/api/v2/entity", f"{BASE}/api/v2/batch"]


# -------------------------------------------------------------------------------------------------
# results and sizes


def test_delivery_result_helpers() -> None:
    mixed = DeliveryResult((OpResult("delivered"), OpResult("transient", "x"), OpResult("config", "y")), 500)
    assert not mixed.delivered
    assert mixed.failed_indexes() == [1, 2]
    ok = DeliveryResult((OpResult("delivered"),), 200)
    assert ok.delivered
    assert ok.failed_indexes() == []


def test_request_size() -> None:
    single = json.dumps(OP_A, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert request_size([OP_A]) == len(single)
    both = json.dumps({"batch": [OP_A, OP_B]}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert request_size([OP_A, OP_B]) == len(both)
    # "café ☕" is 6 characters but 9 bytes: the size is in bytes
    assert request_size([{"a": "café ☕"}]) == len('{"a":"café ☕"}'.encode())
