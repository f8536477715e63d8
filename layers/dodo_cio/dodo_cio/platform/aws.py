"""One boto3 session and one client per service for the whole container.

Every `boto3.session.Session()` loads the service models again: the first event used to create
three sessions (Powertools Parameters, Powertools Idempotency, the freshness check), about 140 ms
more than one shared session at a cold start (bench/RESULTS.md). Clients are thread-safe.

Each client gets short per-attempt timeouts and a bounded number of attempts (`aws_config`)
and an AttemptGuard (dodo_cio.platform.deadline): within an invocation, no attempt starts that could not
end before its deadline, so a stalled endpoint costs a 5xx answer, not a Lambda timeout.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Final

from dodo_cio.platform.deadline import AttemptGuard
from dodo_cio.platform.env import env_number

# Every AWS call on a request path: at most this many attempts (botocore's `total_max_attempts`;
# its `max_attempts` counts retries), each bounded by the BOTO_* timeouts and by the deadline.
AWS_ATTEMPTS: Final = 3
AWS_CONNECT_TIMEOUT: Final = 1.0
AWS_READ_TIMEOUT: Final = 1.0


def aws_timeouts(env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(connect, read) seconds for one attempt of an AWS call: BOTO_CONNECT_TIMEOUT, BOTO_READ_TIMEOUT.

    One second each is many times what DynamoDB, SQS or SSM take inside a region, and small enough
    that a retry still fits when one attempt meets a stalled endpoint. Tests shrink them to run
    their stalled-endpoint cases in a fraction of a second.
    """
    env = os.environ if env is None else env
    return env_number(env, "BOTO_CONNECT_TIMEOUT", AWS_CONNECT_TIMEOUT), env_number(
        env, "BOTO_READ_TIMEOUT", AWS_READ_TIMEOUT
    )


def aws_config(connect_timeout: float = AWS_CONNECT_TIMEOUT, read_timeout: float = AWS_READ_TIMEOUT) -> Any:
    """Short per-attempt timeouts and a bounded number of attempts for every AWS call.

    botocore's defaults (60 s timeouts) would let one unreachable service eat the whole 12 s the
    ingest function has, turning a clean 5xx into a Lambda timeout; and its `max_attempts`
    counts retries, so `total_max_attempts` is what bounds the attempts. The invocation's deadline
    (dodo_cio.platform.deadline.AttemptGuard, installed by dodo_cio.platform.aws) bounds their sum.
    """
    from botocore.config import Config  # noqa: PLC0415

    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": AWS_ATTEMPTS, "mode": "standard"},
    )


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
