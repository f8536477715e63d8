"""One boto3 session and one client per service for the whole container.

Every `boto3.session.Session()` loads the service models again: the first event used to create
three sessions (Powertools Parameters, Powertools Idempotency, the freshness check), about 140 ms
more than one shared session at a cold start (bench/RESULTS.md). Clients are thread-safe.

Each client gets short per-attempt timeouts and a bounded number of attempts (config.aws_config)
and an AttemptGuard (dodo_cio.deadline): within an invocation, no attempt starts that could not
end before its deadline, so a stalled endpoint costs a 5xx answer, not a Lambda timeout.
"""

from __future__ import annotations

import threading
from typing import Any

from dodo_cio.config import aws_config, aws_timeouts
from dodo_cio.deadline import AttemptGuard

_lock = threading.Lock()
_session: Any = None
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    global _session  # noqa: PLW0603 - one per container, created on first use
    with _lock:
        if service not in _clients:
            import boto3  # noqa: PLC0415 - the first AWS call pays for it, not the import of the handler

            if _session is None:
                _session = boto3.session.Session()
            connect, read = aws_timeouts()
            made = _session.client(service, config=aws_config(connect, read))
            AttemptGuard(connect + read).install(made)
            _clients[service] = made
        return _clients[service]


def reset() -> None:
    """Forget the session and clients (tests that change credentials or endpoints)."""
    global _session  # noqa: PLW0603
    with _lock:
        _session = None
        _clients.clear()
