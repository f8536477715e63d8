"""The request path's Dodo API client: what each answer means, the time budget, and the id escaping.

Most tests run against the local fake of Dodo's API (`support.fake_dodo`) on loopback and are
marked `network`; tests/conftest.py disables sockets for everything under tests/unit, so the
`loopback` fixture lets exactly these tests reach 127.0.0.1 again (and nothing else). The rest use
a scripted transport and open no socket.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import Message
from typing import Any, cast

import pytest
from pytest_socket import enable_socket, socket_allow_hosts

from dodo_cio.dodo_api import (
    DODO_API_HOSTS,
    MAX_ANSWER_BYTES,
    DodoApi,
    DodoApiConfigError,
    DodoApiError,
    DodoApiUnavailable,
    dodo_api_base_url,
)
from dodo_cio.http import Answer, KeepAliveClient, TransportError, TransportTimeout
from support.fake_dodo import FakeDodo, make_customer, make_payment

# -------------------------------------------------------------------------------------------------
# against the fake API on loopback


@pytest.fixture
def loopback() -> None:
    """Undo the unit suite's socket ban for this test, for loopback only (pytest-socket restores it)."""
    enable_socket()
    socket_allow_hosts(["127.0.0.1", "localhost", "::1"], allow_unix_socket=True)


@pytest.fixture
def dodo(loopback: None) -> Iterator[FakeDodo]:
    with FakeDodo.populated(5, n_payments=3) as fake:
        yield fake


@pytest.fixture
def api(dodo: FakeDodo) -> Iterator[DodoApi]:
    client = DodoApi(dodo.base_url, dodo.api_key, connect_timeout=1.0, read_timeout=2.0)
    yield client
    client.close()


@pytest.mark.network
def test_found_customer(api: DodoApi, dodo: FakeDodo) -> None:
    customer = api.customer("cus_00003")
    assert customer == make_customer(3)
    assert customer is not None
    assert (customer["customer_id"], customer["email"], customer["name"]) == (
        "cus_00003",
        "customer3@example.com",
        "Customer 3",
    )
    assert customer["phone_number"] == "+15550000003"
    assert dodo.lookups("customers") == ["cus_00003"]


@pytest.mark.network
def test_found_payment_names_its_customer(api: DodoApi, dodo: FakeDodo) -> None:
    mine = dodo.add_payment({**make_payment(42, make_customer(4)), "payment_id": "pay_dispute"})
    payment = api.payment("pay_dispute")
    assert payment == mine
    assert payment is not None
    assert payment["customer"]["customer_id"] == "cus_00004"
    assert payment["customer"]["email"] == "customer4@example.com"
    assert payment["customer"]["metadata"] == {"app_user_id": "user-4"}
    assert dodo.lookups("payments") == ["pay_dispute"]


@pytest.mark.network
def test_unknown_ids_are_none(api: DodoApi, dodo: FakeDodo) -> None:
    assert api.customer("cus_nobody") is None
    assert api.payment("pay_nobody") is None
    assert [(r.path, r.status) for r in dodo.requests] == [
        ("/customers/cus_nobody", 404),
        ("/payments/pay_nobody", 404),
    ]


@pytest.mark.network
def test_the_connection_is_kept_between_calls(api: DodoApi, dodo: FakeDodo) -> None:
    assert api.customer("cus_00000") is not None
    transport = cast(Any, api)._transport
    first = transport._conn.sock.getsockname()
    assert api.payment("pay_00000") is not None
    assert transport._conn.sock.getsockname() == first


@pytest.mark.network
def test_wrong_key_is_a_config_error_without_the_key(dodo: FakeDodo) -> None:
    key = "sk_test_wrong_0123456789"
    client = DodoApi(dodo.base_url, key)
    with pytest.raises(DodoApiConfigError) as caught:
        client.customer("cus_00001")
    client.close()
    assert caught.value.status == 401
    message = str(caught.value)
    assert key not in message
    assert "other mode" in message and "test_mode" in message
    assert not isinstance(caught.value, DodoApiUnavailable)


@pytest.mark.network
def test_403_is_a_config_error(api: DodoApi, dodo: FakeDodo) -> None:
    dodo.fail("/payments/pay_00001", status=403)
    with pytest.raises(DodoApiConfigError, match="HTTP 403"):
        api.payment("pay_00001")


@pytest.mark.network
def test_500_is_unavailable_and_the_next_call_works(api: DodoApi, dodo: FakeDodo) -> None:
    dodo.fail("/payments/pay_00001", status=500)
    with pytest.raises(DodoApiUnavailable, match="HTTP 500: injected failure") as caught:
        api.payment("pay_00001")
    assert caught.value.status == 500
    assert api.payment("pay_00001") is not None  # transient: the injected failure was used up


@pytest.mark.network
@pytest.mark.parametrize("status", [429, 502, 503])
def test_throttling_and_gateway_errors_are_unavailable(api: DodoApi, dodo: FakeDodo, status: int) -> None:
    dodo.fail("/customers/*", status=status)  # any customer lookup
    with pytest.raises(DodoApiUnavailable, match=f"HTTP {status}"):
        api.customer("cus_00002")


@pytest.mark.network
def test_slow_answer_is_unavailable_at_the_read_timeout(dodo: FakeDodo) -> None:
    client = DodoApi(dodo.base_url, dodo.api_key, read_timeout=0.3)
    dodo.stall("/customers/cus_00001", 5.0)
    start = time.monotonic()
    with pytest.raises(DodoApiUnavailable, match="no answer in time"):
        client.customer("cus_00001")
    assert time.monotonic() - start < 1.5
    assert client.customer("cus_00001") is not None  # a fresh connection; the stall was used up
    client.close()


@pytest.mark.network
def test_deadline_shortens_the_read_timeout(api: DodoApi, dodo: FakeDodo) -> None:
    dodo.stall("/payments/*", 5.0)
    start = time.monotonic()
    with pytest.raises(DodoApiUnavailable):
        api.payment("pay_00002", deadline=start + 0.3)  # read_timeout is 2 s
    assert time.monotonic() - start < 1.2


@pytest.mark.network
def test_deadline_with_time_left_changes_nothing(api: DodoApi) -> None:
    assert api.customer("cus_00001", deadline=time.monotonic() + 5) == make_customer(1)


@pytest.mark.network
@pytest.mark.parametrize("left", [-1.0, 0.0, 0.01])
def test_deadline_passed_or_too_close_sends_nothing(api: DodoApi, dodo: FakeDodo, left: float) -> None:
    with pytest.raises(DodoApiUnavailable, match="not sent"):
        api.customer("cus_00001", deadline=time.monotonic() + left)
    with pytest.raises(DodoApiUnavailable, match="not sent"):
        api.payment("pay_00001", deadline=time.monotonic() + left)
    assert dodo.requests == []


@pytest.mark.network
def test_id_with_slash_stays_one_path_segment(api: DodoApi, dodo: FakeDodo) -> None:
    odd = dodo.add_customer({**make_customer(9), "customer_id": "cus/../9?x=1#f"})
    assert api.customer("cus/../9?x=1#f") == odd
    assert dodo.requests[-1].path == "/customers/cus%2F..%2F9%3Fx%3D1%23f"
    # an id cannot climb out of its collection: this asks for a customer with that odd id
    assert api.customer("../payments/pay_00001") is None
    assert dodo.requests[-1].path == "/customers/..%2Fpayments%2Fpay_00001"
    assert dodo.lookups("payments") == []


@pytest.mark.network
@pytest.mark.parametrize("nothing", ["", ".", ".."])
def test_ids_naming_nothing_are_never_sent(api: DodoApi, dodo: FakeDodo, nothing: str) -> None:
    assert api.customer(nothing) is None  # an empty id would list customers; dots would climb the path
    assert api.payment(nothing) is None
    assert dodo.requests == []


@pytest.mark.network
def test_transport_caps_the_answer_size(dodo: FakeDodo) -> None:
    transport = KeepAliveClient(dodo.base_url, connect_timeout=1.0, read_timeout=1.0)
    headers = {"Authorization": f"Bearer {dodo.api_key}"}
    with pytest.raises(TransportError, match="larger than 50 bytes"):
        transport.get("/customers/cus_00001", headers, max_bytes=50)
    answer = transport.get("/customers/cus_00001", headers, deadline=time.monotonic() + 2, max_bytes=10_000)
    assert answer.status == 200
    assert json.loads(answer.body) == make_customer(1)
    transport.close()


@pytest.mark.network
def test_nothing_listening_is_unavailable(loopback: None) -> None:
    with FakeDodo() as gone:
        url = gone.base_url  # a port that was just free, now closed again
    client = DodoApi(url, "k", connect_timeout=0.5)
    with pytest.raises(DodoApiUnavailable, match="connection error"):
        client.customer("cus_00001")


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


def test_request_shape() -> None:
    api, transport = scripted_api(answer(200, {"customer_id": "cus_1"}))
    deadline = time.monotonic() + 3
    assert api.customer("cus_1", deadline=deadline) == {"customer_id": "cus_1"}
    path, headers, options = transport.calls[0]
    assert path == "/customers/cus_1"
    assert headers["Authorization"] == "Bearer sk_live_abc"
    assert headers["Accept"] == "application/json"
    assert options == {"deadline": deadline, "max_bytes": MAX_ANSWER_BYTES}
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


def test_key_is_stripped() -> None:
    api, transport = scripted_api(answer(404), key=" sk_live_abc\n")
    assert api.customer("cus_1") is None
    assert transport.calls[0][1]["Authorization"] == "Bearer sk_live_abc"


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
        "import sys, dodo_cio.dodo_api; "
        "print(','.join(m for m in ('dodopayments', 'httpx', 'requests', 'urllib3', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.strip() == ""
