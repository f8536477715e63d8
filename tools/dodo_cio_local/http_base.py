"""What the emulator's HTTP servers share: one dispatch for every method, bounded bodies, answers, threads.

Why one base: the local run's API Gateway front (`http_front.py`) and the Customer.io sandbox
(`sandbox_http.py`) are both `http.server` handlers that route each method they accept through a
single `_dispatch`, refuse a body larger than the service they stand in for would take without
buffering it, and frame their answers for keep-alive clients. Written once, the two cannot drift
apart on those framing rules. The moto endpoint (`local_aws.py`) is a werkzeug server, but it is
started and stopped in a daemon thread the same way, so it uses `BackgroundServer` too.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Final

# Framing is the server's to decide (it knows the length it sends and whether it keeps the
# connection); a copy from a handler's or a script's headers would contradict it.
_FRAMING_HEADERS: Final = frozenset({"content-length", "connection", "transfer-encoding"})


class LocalRequestHandler(BaseHTTPRequestHandler):
    """A keep-alive handler that sends each of `dispatched_methods` to `_dispatch`.

    Methods not listed keep `http.server`'s 501, so a subclass answers exactly the methods its
    real counterpart routes. `max_body_bytes` is the largest body `_read_body` reads;
    `default_content_type`, when set, is sent with every answer whose headers name none.
    """

    protocol_version = "HTTP/1.1"
    dispatched_methods: ClassVar[tuple[str, ...]] = ()
    max_body_bytes: ClassVar[int] = 0
    default_content_type: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.dispatched_methods:
            setattr(cls, f"do_{method}", LocalRequestHandler._route)

    def _route(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: each server logs its own one-line summary per request instead."""

    def _read_body(self) -> bytes | None:
        """The request body, or None (and the connection marked to close) when it exceeds `max_body_bytes`.

        An oversized body is not read to the end, so what is left of it could not be told from
        a next request on the same connection.
        """
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        body = self._read_chunked() if chunked else self._read_sized()
        if body is None:
            self.close_connection = True
        return body

    def _read_sized(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > self.max_body_bytes:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        content_length: int | None = None,
    ) -> None:
        """Answer `status` with `body`; `content_length` may claim more than is sent (a truncated answer)."""
        fields = dict(headers or {})
        if self.default_content_type and not any(k.lower() == "content-type" for k in fields):
            fields = {"Content-Type": self.default_content_type, **fields}
        self.send_response(status)
        for key, value in fields.items():
            if key.lower() not in _FRAMING_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class BackgroundServer:
    """`server.serve_forever()` in a daemon thread, so the caller keeps its own; `stop()` ends both.

    `stop()` returns once the serving thread has: a stopped emulator leaves no thread behind
    to answer a later test on the same port.
    """

    def __init__(self, server: socketserver.BaseServer, *, name: str, poll_interval: float) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def basic_auth_is(headers: Mapping[str, str], user: str, password: str) -> bool:
    """Whether `headers` carry HTTP Basic auth for exactly `user`:`password` (compared in constant time).

    One check for both sandbox APIs: Track's site id and key, Pipelines' key with an empty password.
    """
    given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(decoded, f"{user}:{password}".encode())
