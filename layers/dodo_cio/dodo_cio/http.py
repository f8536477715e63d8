"""A kept-alive HTTPS POST on the standard library: the one transport the Track client needs.

`requests` cost about 1.1 ms of CPU per POST here against 0.3 ms for `http.client`, and ~110 ms
of imports at every cold start (bench/RESULTS.md), for features this path does not use (redirects
must not be followed anyway: they would drop the Authorization header). What it did that matters
is kept: separate connect and read timeouts, connection reuse, and one transparent reconnect when
a kept-alive connection turns out to have been closed by the server while idle.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

# A kept-alive connection the server closed while idle fails like this before any answer arrives;
# sending again on a fresh connection is safe (Customer.io deduplicates events by id).
_STALE: Final = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class TransportTimeout(Exception):
    """No answer within the read timeout, or no connection within the connect timeout."""


class TransportError(Exception):
    """The connection failed (refused, reset, TLS, DNS) without a usable answer."""


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
        self._context = ssl.create_default_context() if self._https else None

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        return conn

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        reused = self._conn is not None
        try:
            return self._exchange(path, body, headers)
        except _STALE:
            self.close()
            if not reused:
                raise TransportError("connection closed before an answer") from None
        except (TransportTimeout, TransportError):
            self.close()
            raise
        try:  # once more, on a fresh connection
            return self._exchange(path, body, headers)
        except _STALE:
            self.close()
            raise TransportError("connection closed before an answer") from None
        except (TransportTimeout, TransportError):
            self.close()
            raise

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._conn.request("POST", self._prefix + path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except _STALE:
            raise
        except TimeoutError as exc:
            raise TransportTimeout(type(exc).__name__) from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None
        if response.will_close:
            self.close()
        return Answer(response.status, response.headers, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
