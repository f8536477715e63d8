"""The request path's Dodo API client: what each answer means, the time budget, and the id escaping.

Here with a scripted transport (no socket); the same client against the local fake of Dodo's API
on loopback is in tests/integration/test_dodo_api_server.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from email.message import Message
from typing import Any, cast

import pytest

from dodo_cio.platform.http import Answer, TransportError, TransportTimeout
from dodo_cio.state.dodo_api import (
    DODO_API_HOSTS,
    MAX_ANSWER_BYTES,
    DodoApi,
    DodoApiConfigError,
    DodoApiError,
    DodoApiUnavailable,
    dodo_api_base_url,
)

# -------------------------------------------------------------------------------------------------
# a scripted transport: no sockets


class Scripted:
    """Answers (or raises) in order and records each call."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.closed = False

    def get(
        self, path: str, headers: dict[str, str], *, deadline: float | None = None, max_bytes: int | None = None
    ) -> Answer:
        self.calls.append((path, headers, {"deadline": deadline, "max_bytes": max_bytes}))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def answer(status: int, body: bytes | dict[str, Any] | list[Any] = b"") -> Answer:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, cast(Any, Message()), data)


def scripted_api(*answers: Answer | Exception, key: str = "sk_live_abc") -> tuple[DodoApi, Scripted]:
    transport = Scripted(*answers)
    return DodoApi("https://live.dodopayments.com", key, transport=transport), transport


def test_request_shape_and_404_is_none() -> None:
    api, transport = scripted_api(answer(200, {"customer_id": "cus_1"}), answer(404), key=" sk_live_abc\n")
    deadline = time.monotonic() + 3
    assert api.customer("cus_1", deadline=deadline) == {"customer_id": "cus_1"}
    path, headers, options = transport.calls[0]
    assert path == "/customers/cus_1"
    assert headers["Authorization"] == "Bearer sk_live_abc"  # the key stripped
    assert headers["Accept"] == "application/json"
    assert options == {"deadline": deadline, "max_bytes": MAX_ANSWER_BYTES}
    assert api.payment("pay_gone") is None
    api.close()
    assert transport.closed


@pytest.mark.parametrize(
    "error",
    [TransportTimeout("TimeoutError"), TransportTimeout("deadline reached"), TransportError("ConnectionRefusedError")],
)
def test_transport_failures_are_unavailable(error: Exception) -> None:
    api, _ = scripted_api(error)
    with pytest.raises(DodoApiUnavailable) as caught:
        api.payment("pay_1")
    assert caught.value.status is None
    assert str(error) in str(caught.value)


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", b"\xff\xfe", b"[1, 2]", b'"pay_1"', b"null"])
def test_200_without_a_json_object_is_unavailable(body: bytes) -> None:
    api, _ = scripted_api(answer(200, body))
    with pytest.raises(DodoApiUnavailable, match="HTTP 200"):
        api.payment("pay_1")


@pytest.mark.parametrize("status", [400, 409, 422, 302])
def test_other_statuses_are_neither_config_nor_transient(status: int) -> None:
    api, _ = scripted_api(answer(status, {"code": "INVALID_REQUEST", "message": "bad id"}))
    with pytest.raises(DodoApiError, match=f"HTTP {status}: bad id") as caught:
        api.customer("cus_1")
    assert type(caught.value) is DodoApiError
    assert caught.value.status == status


@pytest.mark.parametrize("status", [401, 403])
def test_config_error_never_echoes_the_body(status: int) -> None:
    api, _ = scripted_api(answer(status, {"message": "key sk_live_abc revoked"}))
    with pytest.raises(DodoApiConfigError) as caught:
        api.customer("cus_1")
    assert "sk_live_abc" not in str(caught.value)


def test_error_detail_redacts_the_key_and_is_short() -> None:
    api, _ = scripted_api(answer(500, {"message": "upstream saw Bearer sk_live_abc " + "x" * 1000}))
    with pytest.raises(DodoApiUnavailable) as caught:
        api.customer("cus_1")
    message = str(caught.value)
    assert "sk_live_abc" not in message and "[redacted]" in message
    assert len(message) < 300


def test_passed_deadline_calls_no_transport() -> None:
    api, transport = scripted_api()
    with pytest.raises(DodoApiUnavailable, match="not sent"):
        api.customer("cus_1", deadline=time.monotonic() - 0.001)
    assert transport.calls == []


@pytest.mark.parametrize("key", ["", "   ", "sk live", "sk_live\r\nX-Evil: 1", "sk_livé"])
def test_unusable_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(ValueError, match="API key") as caught:
        DodoApi("https://live.dodopayments.com", key, transport=Scripted())
    if key.strip():
        assert key.strip() not in str(caught.value)


# -------------------------------------------------------------------------------------------------
# base URL, hosts, cold start


def test_hosts_match_the_sdk() -> None:
    from dodopayments import ENVIRONMENTS

    assert dict(ENVIRONMENTS) == DODO_API_HOSTS


@pytest.mark.parametrize(
    ("mode", "override", "expected"),
    [
        ("live_mode", None, "https://live.dodopayments.com"),
        ("test_mode", None, "https://test.dodopayments.com"),
        (" TEST_MODE ", "", "https://test.dodopayments.com"),
        ("live_mode", "   ", "https://live.dodopayments.com"),
        ("test_mode", "http://127.0.0.1:4020/", "http://127.0.0.1:4020"),
        ("live_mode", " https://proxy.example.com/dodo ", "https://proxy.example.com/dodo"),
    ],
)
def test_dodo_api_base_url(mode: str, override: str | None, expected: str) -> None:
    assert dodo_api_base_url(mode, override) == expected


@pytest.mark.parametrize("mode", ["", "live", "test", "production", "sandbox"])
def test_unknown_mode_names_the_allowed_ones(mode: str) -> None:
    with pytest.raises(ValueError, match="'live_mode' or 'test_mode'"):
        dodo_api_base_url(mode, "http://127.0.0.1:4020")  # checked even with an override


def test_import_pulls_in_no_http_library() -> None:
    code = (
        "import sys, dodo_cio.state.dodo_api; "
        "print(','.join(m for m in ('dodopayments', 'httpx', 'requests', 'urllib3', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.strip() == ""
