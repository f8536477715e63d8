"""A local stand-in for Customer.io's Track API (v2 entity/batch plus the region probe) and Pipelines API.

Why it exists: the bridge must be exercised end to end (``make run``, integration and load
tests) without real credentials or network access, and the failure modes that matter most for
a webhook relay -- validation errors, partial batch failures (207), oversize bodies, 5xx bursts,
dropped connections and slow answers -- are exactly the ones a real workspace will not produce
on demand. The sandbox answers like the real API where the public spec and limits say what the
real API does, and lets a test script the rest.

What it enforces (numbers from Customer.io's published Track API reference; see
``tests/contract/README.md``):

* HTTP Basic auth ``site_id:api_key`` on every API endpoint (401 otherwise).
* ``POST /api/v2/entity``: body < 32 KiB (413), JSON (400), the derived OpenAPI schema plus the
  limits the schema cannot express (400 with ``{"errors": [...]}``), else 200 ``{}``.
* ``POST /api/v2/batch``: body < 500 kB (413), each op <= 32 KiB (413 naming the op), a
  ``{"batch": [...]}`` shape (400), then per-op validation: 207 listing only the bad ops
  (the others count as accepted), else 200 ``{}``.
* ``GET /api/v1/accounts/region``: 200 ``{"url", "region", "environment_id"}``.
* The Data Pipelines API under ``/v1`` on the same server (:attr:`TrackSandbox.pipelines_url`):
  ``POST /v1/identify``, ``/track``, ``/page``, ``/screen``, ``/group``, ``/alias``, ``/batch``,
  Basic auth with ``pipelines_key`` and an empty password, checked against Customer.io's published
  Pipelines spec; strict mode refuses with 400, otherwise 200 and the call is recorded as dropped
  (``sandbox_pipelines.py`` says how; :meth:`TrackSandbox.accepted_calls` is what was kept).

Sandbox-only strictness (the real API's behaviour is undocumented here, and being strict catches
bridge bugs early): event ``id`` must be a ULID, ``timestamp`` must be an ``int`` (not ``1.0``)
and must look like seconds rather than milliseconds, identifier values must be non-empty.

Test hooks: :meth:`TrackSandbox.script` queues canned answers (including dropped connections and
stalls), ``fail_rate`` answers a seeded random fraction of requests with 503, and the
unauthenticated ``/__sandbox/*`` endpoints expose the same controls over HTTP for a sandbox
running in another process (``make run``).

Rate limit (off by default): ``rate_limit`` requests per second over all API requests, as a token
bucket holding ``rate_limit_burst`` tokens (default: one second's worth); a request that finds
the bucket empty is answered 429 with a ``Retry-After`` (whole seconds until the next token,
at least 1) and is recorded with ``scripted == "rate_limit"``. Customer.io asks Track API
clients to stay near 100 requests per second; the benchmarks use this to check the retry path
keeps to it. ``validate=False`` skips the schema and limit checks of each op (auth, JSON, body
sizes and the batch shape are still checked) for load tests where validation would cost more
than the client under test.

Where the pieces live: the Track API's limits and error shapes in ``track_v2.py``, the request
validator in ``track_validator.py``, the Pipelines side in ``pipelines_v1.py``,
``pipelines_validator.py`` and ``sandbox_pipelines.py``, scripted faults and the rate limit's bucket in
``sandbox_faults.py``, recorded requests and their summaries in ``sandbox_records.py``, the HTTP
handling and ``/__sandbox/*`` controls in ``sandbox_http.py``. The names in ``__all__`` are the
public surface and stay importable from here.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import sys
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dodo_cio_local.http_base import BackgroundServer, basic_auth_is
from dodo_cio_local.pipelines_v1 import PREFIX, PipelinesValidationError, is_pipelines_path
from dodo_cio_local.pipelines_validator import PipelinesValidator
from dodo_cio_local.sandbox_faults import ScriptedResponse, TokenBucket, checked_burst, checked_fail_rate
from dodo_cio_local.sandbox_http import SandboxHandler, SandboxServer
from dodo_cio_local.sandbox_pipelines import PipelinesEndpoints
from dodo_cio_local.sandbox_records import (
    ReceivedRequest,
    accepted_calls,
    accepted_ops,
    dropped_calls,
    log_line,
    mask_email,
    summarise,
)
from dodo_cio_local.track_v2 import (
    ATTRIBUTE_NAME_MAX_BYTES,
    ATTRIBUTE_VALUE_MAX_BYTES,
    BATCH_MAX_BYTES,
    BATCH_PATH,
    ENTITY_MAX_BYTES,
    ENTITY_PATH,
    EVENT_NAME_MAX_BYTES,
    IDENTIFIER_MAX_BYTES,
    MAX_ATTRIBUTES,
    OP_MAX_BYTES,
    REGION_PATH,
    OpError,
    TrackV2ValidationError,
    body_limit,
    default_schema_path,
    op_size,
    too_large_body,
)
from dodo_cio_local.track_validator import TrackV2Validator

__all__ = [
    "ATTRIBUTE_NAME_MAX_BYTES",
    "ATTRIBUTE_VALUE_MAX_BYTES",
    "BATCH_MAX_BYTES",
    "ENTITY_MAX_BYTES",
    "EVENT_NAME_MAX_BYTES",
    "IDENTIFIER_MAX_BYTES",
    "MAX_ATTRIBUTES",
    "OP_MAX_BYTES",
    "OpError",
    "PipelinesValidationError",
    "PipelinesValidator",
    "ReceivedRequest",
    "ScriptedResponse",
    "TrackSandbox",
    "TrackV2ValidationError",
    "TrackV2Validator",
    "default_schema_path",
    "mask_email",
    "op_size",
    "summarise",
]

log = logging.getLogger(__name__)

_UNAUTHORIZED = {"meta": {"error": "Unauthorized request"}}
_EXPECTED_BODY = {
    ENTITY_PATH: "the body must be a JSON object",
    BATCH_PATH: 'the body must be a JSON object {"batch": [...]}',
}


# --- The sandbox --------------------------------------------------------------------------------
class TrackSandbox:
    """A Customer.io Track API look-alike on loopback, run in a background thread.

    Use as a context manager (``with TrackSandbox() as sb: ...``) or call :meth:`start` and
    :meth:`stop`. Point the bridge's Track base URL at :attr:`base_url` and use
    :attr:`site_id`/:attr:`api_key` as its credentials; for the Pipelines API, its base URL at
    :attr:`pipelines_url` and :attr:`pipelines_key` as its key.
    """

    def __init__(
        self,
        *,
        site_id: str = "sandbox-site",
        api_key: str = "sandbox-key",
        schema_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us",
        fail_rate: float = 0.0,
        seed: int | None = None,
        rate_limit: float | None = None,
        rate_limit_burst: int | None = None,
        validate: bool = True,
        pipelines_key: str = "sandbox-pipelines-key",
        pipelines_spec_path: Path | None = None,
    ) -> None:
        if region not in {"us", "eu"}:
            raise ValueError("region must be 'us' or 'eu'")
        self.site_id = site_id
        self.api_key = api_key
        self.host = host
        self.port = port
        self.region = region
        self.fail_rate = checked_fail_rate(fail_rate)
        self.seed = seed
        self.rate_limit = rate_limit
        self.rate_limit_burst = checked_burst(rate_limit, rate_limit_burst)
        self.validate = validate
        self._bucket = TokenBucket(rate_limit, self.rate_limit_burst) if rate_limit is not None else None
        self.schema_path = schema_path if schema_path is not None else default_schema_path()
        self.validator = TrackV2Validator.from_path(self.schema_path)
        self.pipelines_key = pipelines_key
        self.pipelines = PipelinesEndpoints(
            pipelines_key, PipelinesValidator.from_path(pipelines_spec_path), validate=validate
        )
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._script: deque[ScriptedResponse] = deque()
        self._rng = random.Random(seed)  # noqa: S311 - simulated outages, not security
        self._serving: BackgroundServer | None = None
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._base_url: str | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running sandbox (no trailing slash)."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._base_url

    @property
    def pipelines_url(self) -> str:
        """``http://host:port/v1``: the Pipelines base URL (``CUSTOMERIO_PIPELINES_URL``), same server."""
        return self.base_url + PREFIX

    def start(self) -> str:
        """Bind, serve in a daemon thread and return the base URL."""
        if self._serving is not None:
            raise RuntimeError("the sandbox is already running")
        _ensure_log_output()
        self.stopping.clear()
        server = SandboxServer((self.host, self.port), SandboxHandler)
        server.sandbox = self
        self.port = server.server_address[1]
        self._base_url = f"http://{self.host}:{self.port}"
        self._serving = BackgroundServer(server, name="track-sandbox", poll_interval=0.05)
        log.info(
            "Customer.io sandbox listening: Track on %s (site_id=%s), Pipelines on %s",
            self._base_url,
            self.site_id,
            self.pipelines_url,
        )
        return self._base_url

    def stop(self) -> None:
        """Stop serving, drop open connections (stalled handlers return at once). Idempotent."""
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self.stopping.set()
        serving.stop()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._base_url = None

    def __enter__(self) -> TrackSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls
    def script(self, *responses: int | ScriptedResponse) -> None:
        """Queue answers for the next requests, in order, ahead of auth and validation."""
        items = [r if isinstance(r, ScriptedResponse) else ScriptedResponse(status=r) for r in responses]
        with self._lock:
            self._script.extend(items)

    def accepted_ops(self) -> list[dict[str, Any]]:
        """Every op Customer.io would now hold (see :func:`sandbox_records.accepted_ops`)."""
        return accepted_ops(self._snapshot())

    def accepted_calls(self) -> list[dict[str, Any]]:
        """Every Pipelines call the workspace would now hold (see :func:`sandbox_records.accepted_calls`)."""
        return accepted_calls(self._snapshot())

    def dropped_calls(self) -> list[tuple[Any, list[OpError]]]:
        """Each Pipelines call answered 200 without strict mode but not kept, with why."""
        return dropped_calls(self._snapshot())

    def reset(self) -> None:
        """Forget recorded requests and queued scripts; re-seed so fail_rate repeats its sequence;
        refill the rate limit's bucket."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._rng.seed(self.seed)
            if self.rate_limit is not None:
                self._bucket = TokenBucket(self.rate_limit, self.rate_limit_burst)

    def summaries(self) -> list[dict[str, Any]]:
        """The ``/__sandbox/requests`` view: no bodies or headers, emails masked."""
        return [summarise(rec) for rec in self._snapshot()]

    # -- internals used by the handler
    def _snapshot(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    def record(self, rec: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def next_scripted(self) -> ScriptedResponse | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def script_depth(self) -> int:
        with self._lock:
            return len(self._script)

    def rate_limited(self) -> float | None:
        """``None`` when the request may proceed, else the seconds until the rate limit allows one."""
        if self._bucket is None:
            return None
        with self._lock:
            return self._bucket.take()

    def roll_failure(self) -> bool:
        with self._lock:
            return self.fail_rate > 0 and self._rng.random() < self.fail_rate

    def configure(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(doc) - {"fail_rate", "seed"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        with self._lock:
            if "fail_rate" in doc:
                self.fail_rate = checked_fail_rate(doc["fail_rate"])
            if "seed" in doc:
                seed = doc["seed"]
                if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                    raise ValueError("seed must be an integer or null")
                self.seed = seed
                self._rng.seed(seed)
            return {"fail_rate": self.fail_rate, "seed": self.seed}

    def process(self, rec: ReceivedRequest) -> tuple[int, Any]:
        if is_pipelines_path(rec.path):
            return self.pipelines.process(rec)
        if not basic_auth_is(rec.headers, self.site_id, self.api_key):
            return 401, _UNAUTHORIZED
        routes = {ENTITY_PATH: "POST", BATCH_PATH: "POST", REGION_PATH: "GET"}
        if rec.path not in routes:
            return 404, {"meta": {"error": "Not Found"}}
        if rec.method != routes[rec.path]:
            return 405, {"meta": {"error": "Method Not Allowed"}}
        if rec.path == REGION_PATH:
            return 200, {"url": self.base_url, "region": self.region, "environment_id": 1}
        # Both op endpoints: the size limit before anything is parsed, then the body must be JSON.
        if len(rec.body) >= body_limit(rec.path):
            return 413, too_large_body(len(rec.body), rec.path)
        if rec.json is None:
            return _bad_request("invalid_json", "", _EXPECTED_BODY[rec.path])
        return self._entity(rec.json) if rec.path == ENTITY_PATH else self._batch(rec.json)

    def _entity(self, op: Any) -> tuple[int, Any]:
        if not self.validate:
            return 200, {}
        errors = self.validator.entity_errors(op)
        if errors:
            return 400, {"errors": [e.as_json() for e in errors]}
        return 200, {}

    def _batch(self, body: Any) -> tuple[int, Any]:
        if not self.validate:
            if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
                return _bad_request("invalid_type", "batch", _EXPECTED_BODY[BATCH_PATH])
            return 200, {}
        errors = self.validator.batch_errors(body)
        if any(e.batch_index is None for e in errors):
            return 400, {"errors": [e.as_json() for e in errors]}
        too_large = [e for e in errors if e.reason == "payload_too_large"]
        if too_large:
            return 413, {"errors": [e.as_json() for e in too_large]}
        if errors:
            return 207, {"errors": [e.as_json() for e in errors]}
        return 200, {}

    def log_request(self, rec: ReceivedRequest, elapsed_ms: float) -> None:
        level = logging.INFO if rec.status < 500 or rec.scripted else logging.WARNING
        log.log(level, "%s", log_line(rec, elapsed_ms))


def _bad_request(reason: str, field_name: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"errors": [{"reason": reason, "field": field_name, "message": message}]}


def _ensure_log_output() -> None:
    """Make the one-line request summaries visible on stderr when nobody configured logging."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s track-sandbox %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
