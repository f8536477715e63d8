"""Stalled dependencies against the handlers' deadlines (issue 10, "Deadlines"), with real sockets.

A loopback endpoint that accepts connections and never answers (support.blackhole) stands in for DynamoDB, SQS
or Customer.io; moto and the sandbox answer everything else. Scaled down: 4.5 s (ingest) or 5 s (retry) left,
0.2 s to connect and 0.3 s to read per AWS attempt, 0.5 s kept to answer; the 0.25 s between two steps
(`dodo_cio.platform.deadline.STEP_SLACK`) is not scaled, hence 4.5 s (the ledger read must end by 1.75 s).
What is asserted is the deadline the context gave, not a speed: without the budget the stalled-Customer.io
and retry cases run past it. The exact budget of every step: tests/unit/test_deadline_margins.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from dodo_cio.delivery.parking import LastError, ParkedDelivery, park
from dodo_cio.platform import aws
from dodo_cio.platform.http import KeepAliveClient
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio_local.event_source import SqsEventSource
from dodo_cio_local.lambda_context import FakeLambdaContext
from support.apigw import signed_event
from support.blackhole import BlackHole
from support.bodies import PAYMENT
from support.emf import emitted_metrics

pytestmark = pytest.mark.network

INGEST_LEFT_MS = 4_500  # the ingest function's 12 s, scaled down (module docstring)
RETRY_LEFT_MS = 5_000


def _reset_clients() -> None:
    """New boto3 clients on the next call, so they read the endpoint and timeout variables again."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    aws.reset()
    DEFAULT_PROVIDERS.pop("ssm", None)  # holds the previous SSM client
    parameters.clear_caches()


@pytest.fixture
def stall(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Short per-attempt timeouts and reserve; `stall(service, url)` points that service's client at `url`."""
    monkeypatch.setenv("BOTO_CONNECT_TIMEOUT", "0.2")
    monkeypatch.setenv("BOTO_READ_TIMEOUT", "0.3")
    monkeypatch.setenv("ANSWER_RESERVE", "0.5")
    _reset_clients()

    def point(service: str, url: str) -> None:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", url)
        _reset_clients()

    yield point
    monkeypatch.undo()  # the endpoint variables go before the next test builds its clients
    _reset_clients()


def ingest(bridge: Any, body: bytes, *, webhook_id: str) -> tuple[int, dict[str, Any], float]:
    """One invocation with INGEST_LEFT_MS left; the answer and the seconds it took."""
    event = signed_event(body, bridge.secret, webhook_id=webhook_id)
    start = time.monotonic()
    response = bridge.app.lambda_handler(event, FakeLambdaContext(remaining_ms=INGEST_LEFT_MS))
    elapsed = time.monotonic() - start
    print(f"answered {response['statusCode']} in {elapsed:.2f} s of {INGEST_LEFT_MS / 1000:.1f} s")
    return response["statusCode"], json.loads(response["body"]), elapsed


def test_a_stalled_dynamodb_is_answered_503_before_the_deadline(bridge: Any, stall: Any) -> None:
    with BlackHole() as hole:
        stall("dynamodb", hole.url)
        status, body, elapsed = ingest(bridge, PAYMENT, webhook_id="msg_dynamodb_stalled")
    assert (status, body) == (503, {"error": "duplicate check unavailable; retry later"})
    assert hole.connections >= 1, "the idempotency transaction reached the stalled endpoint"
    assert elapsed < INGEST_LEFT_MS / 1000
    assert bridge.sandbox.accepted_ops() == [], "nothing is delivered without the duplicate check"


def test_a_stalled_customerio_and_a_stalled_sqs_are_answered_500_before_the_deadline(
    bridge: Any, stall: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customer.io takes its share of the budget; parking still gets its own. (Customer.io failing at once
    with SQS down is the fault matrix's "SQS SendMessage down" row.)"""
    with BlackHole() as hole, BlackHole() as track:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", track.url)
        monkeypatch.setenv("CUSTOMERIO_READ_TIMEOUT", "5")
        stall("sqs", hole.url)
        status, body, elapsed = ingest(bridge, PAYMENT, webhook_id="msg_sqs_stalled")
    assert (status, body) == (500, {"error": "delivery failed and could not be queued"})
    assert hole.connections >= 1, "parking reached the stalled endpoint"
    assert elapsed < INGEST_LEFT_MS / 1000
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", bridge.sandbox.base_url)
    monkeypatch.setattr(bridge.app, "_service", None)

    # Time was kept for removing the idempotency record: Dodo's next attempt is processed, not a 409.
    stall("sqs", "")  # an empty variable: the default (moto's) endpoint again
    status, body, _ = ingest(bridge, PAYMENT, webhook_id="msg_sqs_stalled")
    assert (status, body) == (200, {"status": "delivered"})


def test_a_stalled_customerio_is_parked_before_the_deadline(
    bridge: Any, stall: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with BlackHole() as hole:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", hole.url)
        monkeypatch.setenv("CUSTOMERIO_READ_TIMEOUT", "5")  # longer than the whole budget: only the deadline ends it
        status, body, elapsed = ingest(bridge, PAYMENT, webhook_id="msg_cio_stalled")
    assert (status, body) == (202, {"status": "queued"})
    assert hole.connections == 1
    assert elapsed < INGEST_LEFT_MS / 1000
    (message,) = bridge.parked()
    assert message["body"]["webhook_id"] == "msg_cio_stalled"
    assert message["body"]["last_error"]["reason"].startswith("timeout")


# -- the retry function ------------------------------------------------------------------------


def parked(tag: str, n_ops: int) -> ParkedDelivery:
    """A parked delivery of `n_ops` events; above 500 ops, two of them never share a request (1000 at most)."""
    now = int(time.time())
    ops = [
        {
            "type": "person",
            "identifiers": {"id": f"cus_{tag}"},
            "action": "event",
            "name": "payment.succeeded",
            "id": deterministic_ulid(f"msg_{tag}#{i}", 1_700_000_000_000),
            "timestamp": 1_700_000_000,
        }
        for i in range(n_ops)
    ]
    error = LastError(kind="transient", reason="HTTP 503", status=503, at=now)
    return ParkedDelivery(f"msg_{tag}", "payment.succeeded", 1_700_000_000, now, 1, ops, error, f"cus_{tag}")


def test_the_retry_function_returns_before_its_deadline_reporting_what_it_did_not_finish(
    bridge: Any, retry: Any, stall: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [park(bridge.sqs, bridge.queue_url, parked(tag, 501)) for tag in "abcde"]
    module = retry.module  # cold: built from the environment below
    timings: list[float] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        start = time.monotonic()
        try:
            return module.lambda_handler(event, context)
        finally:
            timings.append(time.monotonic() - start)

    with BlackHole() as hole:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", hole.url)
        monkeypatch.setenv("CUSTOMERIO_CONNECT_TIMEOUT", "0.2")
        monkeypatch.setenv("CUSTOMERIO_READ_TIMEOUT", "1")  # one request may take 1.2 s
        source = SqsEventSource(
            bridge.sqs,
            bridge.queue_url,
            handler,
            batch_size=10,
            context_factory=lambda: FakeLambdaContext(
                function_name="dodo-customerio-retry", remaining_ms=RETRY_LEFT_MS
            ),
        )
        capsys.readouterr()
        result = source.poll_once()
        started = hole.connections
    (elapsed,) = timings
    metrics = emitted_metrics(capsys.readouterr().out)
    print(f"retry answered in {elapsed:.2f} s of {RETRY_LEFT_MS / 1000:.1f} s, {started} requests started")
    assert elapsed < RETRY_LEFT_MS / 1000
    assert result.error is None and result.received == 5 and result.deleted == 0
    assert sorted(result.failed) == sorted(ids), "every message comes back: none lost, none deleted"
    assert 1 <= started < 5, "some requests started, not all: the deadline stopped the rest"
    assert metrics["RetryRequests"] == started
    # A request's message is retried with its backoff when its verdict still fits, else deferred like
    # the rest; which of the two depends on how busy the machine is (the exact budget of each step is
    # asserted on an injected clock in tests/unit/test_deadline_margins.py). Each is counted once.
    scheduled = metrics.get("RetryScheduled", 0)
    assert scheduled <= started and scheduled + metrics["RetryDeferred"] == 5, "each message counted once"
    assert not {"RetryDelivered", "RetryReparked", "DeadLettered"} & set(metrics)
    assert bridge.dead_lettered() == []


# -- the kept-alive connection: a server that closed it while idle costs one reconnect, not a failure ------
# A raw socket server on loopback, so the test controls exactly when a connection is closed.

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Server:
    port: int  # it answers one request per connection, then hangs up (as an idle timeout would)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


@contextmanager
def raw_server() -> Iterator[Server]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = Server(listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            server.connections += 1
            with conn:
                request = _read_request(conn)
                if request:
                    server.requests.append(request)
                    conn.sendall(OK)  # an answer that promised keep-alive; the connection is closed now

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_connection_closed_while_idle_is_reopened_and_the_request_sent_once() -> None:
    with raw_server() as server:
        client = KeepAliveClient(f"http://127.0.0.1:{server.port}", connect_timeout=1, read_timeout=2)
        first = client.post("/api/v2/batch", b'{"batch":[]}', {"Content-Type": "application/json"})
        second = client.post("/api/v2/batch", b'{"batch":[1]}', {"Content-Type": "application/json"})
        client.close()
    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2, "the second request went out on a fresh connection"
    assert [r.endswith(b'{"batch":[1]}') for r in server.requests] == [False, True]
