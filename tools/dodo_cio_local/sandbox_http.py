"""The sandbox's HTTP side: its server, the Track API request handling and the ``/__sandbox/*`` controls.

Why apart from ``sandbox.py``: this is the wire -- reading bodies no larger than the real API
would take, playing scripted faults (dropped connections, truncated answers, stalls), the rate
limit and ``fail_rate`` ahead of auth -- while ``TrackSandbox`` decides what the API answers.
The controls are unauthenticated and unrecorded, so a sandbox running in another process
(``make run``) can be scripted and inspected over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from dodo_cio_local.http_base import LocalRequestHandler
from dodo_cio_local.sandbox_faults import ScriptedResponse
from dodo_cio_local.sandbox_records import ReceivedRequest, try_json
from dodo_cio_local.track_v2 import too_large_body


class SandboxCore(Protocol):
    """What the HTTP side asks of the sandbox (`TrackSandbox`), so this module need not import it."""

    stopping: threading.Event

    def record(self, rec: ReceivedRequest) -> None: ...
    def track_connection(self, conn: socket.socket, *, add: bool) -> None: ...
    def next_scripted(self) -> ScriptedResponse | None: ...
    def script_depth(self) -> int: ...
    def rate_limited(self) -> float | None: ...
    def roll_failure(self) -> bool: ...
    def configure(self, doc: Mapping[str, Any]) -> dict[str, Any]: ...
    def process(self, rec: ReceivedRequest) -> tuple[int, Any]: ...
    def log_request(self, rec: ReceivedRequest, elapsed_ms: float) -> None: ...
    def script(self, *responses: int | ScriptedResponse) -> None: ...
    def reset(self) -> None: ...
    def summaries(self) -> list[dict[str, Any]]: ...


CONTROL_PREFIX = "/__sandbox/"
# Bodies larger than this are not even read: the answer is 413 and the connection is closed.
MAX_READ_BYTES = 8 * 1024 * 1024


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # load tests open many connections at once
    sandbox: SandboxCore


class SandboxHandler(LocalRequestHandler):
    # HTTP/1.1 keep-alive (the base's), like the real API; clients pool connections.
    dispatched_methods = ("GET", "POST", "PUT", "DELETE")
    max_body_bytes = MAX_READ_BYTES
    default_content_type = "application/json"  # as the real API's answers are, unless a script says otherwise
    server: SandboxServer
    timeout = 60  # idle keep-alive connections give their thread back eventually
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid 40 ms stalls
    _started = 0.0
    server_version = "dodo-cio-track-sandbox/1"

    def setup(self) -> None:
        super().setup()
        self.server.sandbox.track_connection(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.sandbox.track_connection(self.connection, add=False)

    # -- request handling
    def _dispatch(self) -> None:
        self._started = time.monotonic()
        sandbox = self.server.sandbox
        try:
            path = urlsplit(self.path).path
            body = self._read_body()
            if path.startswith(CONTROL_PREFIX):
                self._control(path, body or b"")
                return
            rec = ReceivedRequest(
                method=self.command,
                path=path,
                headers=dict(self.headers.items()),
                body=body or b"",
                json=try_json(body or b""),
                status=0,
                response=None,
                received_at=time.time(),
            )
            sandbox.record(rec)
            if body is None:  # too large to read: answered without reading, connection dropped
                self._finish(rec, 413, too_large_body(int(self.headers["Content-Length"] or 0), path))
            else:
                self._answer(rec)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def _answer(self, rec: ReceivedRequest) -> None:
        sandbox = self.server.sandbox
        scripted = sandbox.next_scripted()
        if scripted is not None:
            self._play(rec, scripted)
            return
        wait = sandbox.rate_limited()
        if wait is not None:
            rec.scripted = "rate_limit"
            retry_after = str(max(1, math.ceil(wait)))
            body = {"meta": {"error": "Too Many Requests (sandbox rate_limit)"}}
            self._finish(rec, 429, body, {"Retry-After": retry_after})
            return
        if sandbox.roll_failure():
            rec.scripted = "fail_rate"
            self._finish(rec, 503, {"meta": {"error": "Service Unavailable (sandbox fail_rate)"}})
            return
        status, payload = sandbox.process(rec)
        self._finish(rec, status, payload)

    def _play(self, rec: ReceivedRequest, scripted: ScriptedResponse) -> None:
        sandbox = self.server.sandbox
        rec.scripted = scripted.action
        if scripted.action == "close":
            rec.status = 0
            self._log(rec)
            self._drop()
            return
        if scripted.delay and sandbox.stopping.wait(scripted.delay):
            self._drop()  # shutting down: don't keep the caller waiting
            return
        body = scripted.body_bytes()
        rec.status = scripted.status
        rec.response = try_json(body)
        self._log(rec)
        if scripted.action == "reset":
            body = body if len(body) >= 2 else b'{"meta":{"error":"sandbox reset"}}'
            self._send(scripted.status, body[: len(body) // 2], scripted.headers, content_length=len(body))
            self._drop()
            return
        self._send(scripted.status, body, scripted.headers)

    def _finish(
        self, rec: ReceivedRequest, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        rec.status = status
        rec.response = payload
        self._log(rec)
        self._send(status, json.dumps(payload).encode(), headers)

    def _log(self, rec: ReceivedRequest) -> None:
        # Logged before the answer is written, so the line exists by the time the client has it.
        self.server.sandbox.log_request(rec, (time.monotonic() - self._started) * 1000)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- control endpoints (no auth, not recorded)
    def _control(self, path: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        route = (self.command, path.removeprefix(CONTROL_PREFIX).rstrip("/"))
        status: int = 200
        payload: Any = {}
        try:
            if route == ("GET", "requests"):
                payload = sandbox.summaries()
            elif route == ("POST", "reset"):
                sandbox.reset()
            elif route == ("POST", "script"):
                doc = json.loads(body or b"{}")
                items = doc.get("responses") if isinstance(doc, dict) else None
                if not isinstance(items, list):
                    raise ValueError('expected {"responses": [...]}')
                sandbox.script(*(ScriptedResponse.from_json(item) for item in items))
                payload = {"queued": sandbox.script_depth()}
            elif route == ("POST", "config"):
                doc = json.loads(body or b"{}")
                if not isinstance(doc, dict):
                    raise ValueError("expected a JSON object")
                payload = sandbox.configure(doc)
            else:
                status, payload = 404, {"meta": {"error": f"unknown sandbox control {self.command} {path}"}}
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"meta": {"error": str(exc)}}
        self._send(status, json.dumps(payload).encode())
