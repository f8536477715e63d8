"""The sandbox's scripted faults: canned answers queued by a test, and the rate limit's bucket.

Why they exist: the failures that matter most to a webhook relay (5xx bursts, 429 with
Retry-After, dropped connections, truncated answers, stalls past the client's read timeout) are
the ones a real workspace will not produce on demand. A test queues them with
``TrackSandbox.script`` (or ``POST /__sandbox/script`` from another process) and they are played
ahead of auth and validation, in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

Action = Literal["respond", "close", "reset", "stall"]
_ACTIONS: tuple[str, ...] = get_args(Action)


@dataclass
class ScriptedResponse:
    """A canned answer for the next request, used to force error paths deterministically.

    ``action``: ``respond`` answers ``status``/``body`` after ``delay`` seconds; ``close`` drops
    the connection without a byte of answer; ``reset`` sends the headers and half the body,
    then closes (a truncated response); ``stall`` waits ``delay`` seconds (to outlast the
    client's read timeout) and then answers like ``respond``.
    """

    status: int
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: Action = "respond"

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValueError(f"action must be one of {_ACTIONS}, got {self.action!r}")
        if self.action in {"respond", "stall", "reset"} and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    def body_bytes(self) -> bytes:
        """The body to send; a JSON placeholder when none was given, so clients can parse it."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode()
        if 200 <= self.status < 300:
            return b"{}"
        return json.dumps({"meta": {"error": f"sandbox scripted {self.status}"}}).encode()

    @classmethod
    def from_json(cls, item: Any) -> ScriptedResponse:
        """Build from the ``/__sandbox/script`` wire form: an int or an object of the fields."""
        if isinstance(item, int) and not isinstance(item, bool):
            return cls(status=item)
        if not isinstance(item, dict):
            raise ValueError(f"a scripted response must be an int or an object, got {item!r}")
        unknown = set(item) - {"status", "body", "headers", "delay", "action"}
        if unknown:
            raise ValueError(f"unknown scripted response fields: {sorted(unknown)}")
        body = item.get("body")
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, dict):
            raise ValueError("body must be an object, a string or null")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must be an object of strings")
        status = item.get("status", 0 if item.get("action") == "close" else None)
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("status is required and must be an int")
        delay = item.get("delay", 0.0)
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise ValueError("delay must be a number")
        return cls(
            status=status,
            body=body,
            headers=dict(headers),
            delay=float(delay),
            action=cast(Action, item.get("action", "respond")),
        )


def checked_fail_rate(value: Any) -> float:
    """`value` as a ``fail_rate``: a number from 0 (no request fails) to 1 (every one does).

    One check for the constructor and ``POST /__sandbox/config``, so both refuse the same values.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("fail_rate must be a number between 0 and 1")
    return float(value)


def checked_burst(rate_limit: float | None, burst: int | None) -> int:
    """The rate limit's bucket size: ``burst``, else one second's worth of requests (at least 1)."""
    if rate_limit is not None and not 0 < rate_limit < float("inf"):
        raise ValueError("rate_limit must be a positive number of requests per second, or None")
    if burst is not None and (rate_limit is None or burst < 1):
        raise ValueError("rate_limit_burst needs a rate_limit and must be at least 1")
    return burst if burst is not None else max(1, round(rate_limit or 1))


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; each request takes one or is refused."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> float | None:
        """``None`` when a token was taken, else the seconds until the next one. Caller holds the lock."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rate
