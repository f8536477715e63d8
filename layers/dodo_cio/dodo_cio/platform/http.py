"""A kept-alive HTTPS client on the standard library: POST for the Track client, GET for Dodo's API.

`requests` cost about 1.1 ms of CPU per POST here against 0.3 ms for `http.client`, and ~110 ms
of imports at every cold start (bench/RESULTS.md), for features this path does not use (redirects
must not be followed anyway: they would drop the Authorization header). What it did that matters
is kept: separate connect and read timeouts, connection reuse, and one transparent reconnect when
a kept-alive connection turns out to have been closed by the server while idle.

Both methods take an optional absolute deadline (`time.monotonic()`, normally the invocation's:
dodo_cio.platform.deadline) that caps the connect timeout and every wait for bytes at the time left, so a
server that accepts the connection and never answers costs no more than the caller can spare;
`get` also takes an optional cap on the size of the answer (a lookup on the request path).
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

# A kept-alive connection the server closed while idle fails like this before any answer arrives;
# sending again on a fresh connection is safe (Customer.io deduplicates events by id).
_STALE: Final = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_CHUNK: Final = 64 * 1024


class TransportTimeout(Exception):
    """No answer within the read timeout, or no connection within the connect timeout."""


class TransportError(Exception):
    """The connection failed (refused, reset, TLS, DNS) without a usable answer."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as the caller asked for it; sent again as is on a fresh connection if need be."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    deadline: float | None  # absolute time.monotonic() value, or None
    max_bytes: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class KeepAliveClient:
    """One persistent connection to one origin; not thread-safe (one per Lambda container)."""

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._conn: http.client.HTTPConnection | None = None
        self._sock_timeout: float | None = None
        self._context = ssl.create_default_context() if self._https else None

    def _connect(self, deadline: float | None) -> http.client.HTTPConnection:
        timeout = self._connect_timeout if deadline is None else _bounded(self._connect_timeout, deadline)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        self._sock_timeout = self._read_timeout
        return conn

    def post(self, path: str, body: bytes, headers: dict[str, str], *, deadline: float | None = None) -> Answer:
        """POST `body`; `deadline` bounds the whole exchange as for `get`, reconnect included."""
        return self._request(_Call("POST", path, body, headers, deadline, None))

    def get(
        self, path: str, headers: dict[str, str], *, deadline: float | None = None, max_bytes: int | None = None
    ) -> Answer:
        """GET `path`; safe to send twice, so a stale kept-alive connection is retried like a POST.

        `deadline` is an absolute `time.monotonic()` value: the connect timeout and each wait for
        bytes are at most the time left, and :class:`TransportTimeout` is raised once it has passed
        (before connecting, if it already has). Name resolution is not bounded by it. An answer
        whose body is larger than `max_bytes` is a :class:`TransportError`.
        """
        return self._request(_Call("GET", path, None, headers, deadline, max_bytes))

    def _request(self, call: _Call) -> Answer:
        may_retry = self._conn is not None  # only a kept-alive connection can have gone stale
        while True:
            try:
                return self._exchange(call)
            except _STALE:
                self.close()
                if not may_retry:
                    raise TransportError("connection closed before an answer") from None
                may_retry = False  # once more, on a fresh connection
            except (TransportTimeout, TransportError):
                self.close()
                raise

    def _exchange(self, call: _Call) -> Answer:
        deadline, max_bytes = call.deadline, call.max_bytes
        try:
            if self._conn is None:
                self._conn = self._connect(deadline)
            conn = self._conn
            self._arm(conn, self._read_timeout if deadline is None else _bounded(self._read_timeout, deadline))
            conn.request(call.method, self._prefix + call.path, body=call.body, headers=call.headers)
            response = conn.getresponse()
            if deadline is None and max_bytes is None:
                data = response.read()
            else:
                data = self._read_bounded(conn, response, deadline, max_bytes)
        except _STALE:
            raise
        except TimeoutError as exc:
            raise TransportTimeout(type(exc).__name__) from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None
        if response.will_close:
            self.close()
        return Answer(response.status, response.headers, data)

    def _arm(self, conn: http.client.HTTPConnection, timeout: float) -> None:
        """Set the socket's timeout for the next waits, skipping the call when it is already so."""
        if conn.sock is not None and timeout != self._sock_timeout:
            conn.sock.settimeout(timeout)
            self._sock_timeout = timeout

    def _read_bounded(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        deadline: float | None,
        max_bytes: int | None,
    ) -> bytes:
        if max_bytes is not None and response.length is not None and response.length > max_bytes:
            raise TransportError(f"answer larger than {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            if deadline is not None:
                self._arm(conn, _bounded(self._read_timeout, deadline))
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise TransportError(f"answer larger than {max_bytes} bytes")
            chunks.append(chunk)
        if response.length:  # read1 ends quietly where read() raises: the server hung up mid-body
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        return b"".join(chunks)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _bounded(limit: float, deadline: float) -> float:
    """`limit`, or the time left before `deadline` if that is shorter; TransportTimeout once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransportTimeout("deadline reached")
    return min(limit, left)
