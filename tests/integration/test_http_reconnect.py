"""The kept-alive connection to Customer.io: a server that closed it while idle costs one reconnect, not a failure.

A raw socket server on loopback, so the test controls exactly when a connection is closed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from dodo_cio.platform.http import KeepAliveClient, TransportError

pytestmark = pytest.mark.network

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Server:
    port: int
    answer_then_close: bool  # answer one request per connection, then hang up (as an idle timeout would)
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
def raw_server(*, answer_then_close: bool) -> Iterator[Server]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = Server(listener.getsockname()[1], answer_then_close)
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
                    if server.answer_then_close:
                        conn.sendall(OK)
                # Either way the connection is closed now: after an answer that promised keep-alive,
                # or before any answer at all.

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_connection_closed_while_idle_is_reopened_and_the_request_sent_once() -> None:
    with raw_server(answer_then_close=True) as server:
        client = KeepAliveClient(f"http://127.0.0.1:{server.port}", connect_timeout=1, read_timeout=2)
        first = client.post("/api/v2/batch", b'{"batch":[]}', {"Content-Type": "application/json"})
        second = client.post("/api/v2/batch", b'{"batch":[1]}', {"Content-Type": "application/json"})
        client.close()
    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2, "the second request went out on a fresh connection"
    assert [r.endswith(b'{"batch":[1]}') for r in server.requests] == [False, True]


def test_a_fresh_connection_closed_before_an_answer_is_a_failure_not_a_loop() -> None:
    with raw_server(answer_then_close=False) as server:
        client = KeepAliveClient(f"http://127.0.0.1:{server.port}", connect_timeout=1, read_timeout=2)
        with pytest.raises(TransportError):
            client.post("/api/v2/batch", b"{}", {"Content-Type": "application/json"})
    assert server.connections == 1, "a connection that was never idle is not retried"
