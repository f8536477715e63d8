"""Deadlines: every call on a request path ends while the function still has time to answer.

Lambda tells each invocation how long it has (`context.get_remaining_time_in_millis()`). Per-call
timeouts alone do not bound the sum: a DynamoDB or SQS endpoint that accepts connections and never
answers costs every attempt its full read timeout, retries included, and then the next call does
the same, until Lambda kills the function mid-answer (issue 10 measured 12.1 s and 12.3 s against
a 12 s timeout). So the time is budgeted from the top:

* the handler sets the invocation's deadline from the context (`per_invocation`);
* each service keeps back what must still happen after a step, for the length of that step
  (`keeping(seconds)`): the answer itself, then parking what failed, then the idempotency record;
  a narrower deadline never widens an enclosing one;
* every AWS client of `dodo_cio.platform.aws` carries an `AttemptGuard`, which refuses to start an attempt
  (the first or a retry) whose worst case, connect plus read timeout, could not end before the
  current deadline; the Customer.io client and the Dodo API lookups read the same deadline
  (`dodo_cio.delivery.track`, `dodo_cio.state.identity`) and their transport (`dodo_cio.platform.http`) caps its
  socket timeouts at the time left.

The deadline lives in a context variable, so invocations on different threads of one process
each see their own, and code run without one (the CLI, tools, most tests) is bounded
by its calls' own timeouts only, as before. Importing this module costs nothing: no boto3.

The slack (`STEP_SLACK`). A step that keeps time for N later AWS calls keeps N x (one attempt +
STEP_SLACK), so its window ends one slack before the last instant at which the next call's first
attempt can still start. When a step runs to its window's edge (a stalled Customer.io or Dodo
API, an AWS attempt that started just in time), what runs between the two calls must fit in that
slack: the code (reading the result, building and logging the parked message, a container's
first SQS client) and the wait to be scheduled again. If it does not, the next call is refused
(DeadlineExceeded) before it is even tried. 0.1 s did not fit on a 2-core host with 4 busy loops:
parking after a stalled Customer.io was refused in 5 runs of 5. Measured there, the gap between
Customer.io's end and parking's check is ~7 ms idle and 15-80 ms busy, above 0.1 s at times. A
256 MB Lambda has about 0.15 vCPU (1,769 MB is one), so the same 7-12 ms of CPU (the code, and
~5 ms more to build a container's first SQS client) take 0.05-0.1 s there before any contention.
0.25 s covers both with margin. 0.5 s would not fit the ingest budget: lookups would keep 3 x 2.5 = 7.5 s of 9.5 s,
and the directory read (one 2 s attempt) would have to start at 0 s, so it would always be refused.

The ingest function (timeout 12 s, ANSWER_RESERVE 2.5 s, AWS attempts of 1 s connect + 1 s read
= 2 s, slack 0.25 s; seconds from the start of the invocation; dodo_cio.ingest.service):

    step                            its window ends at          an attempt in it starts by
    every call (the answer reserve) 12 - 2.5             = 9.5
    lookups (directory, Dodo API)   9.5 - 3 x (2 + 0.25) = 2.75  0.75 (Dodo API: min(now + 2, 2.75))
    Customer.io request             9.5 - 2 x 2.25       = 5.0   (no whole-attempt check: capped)
    parking (SQS)                   9.5 - 1 x 2.25       = 7.25  5.25
    idempotency completion/removal  9.5                          7.5

The worst case runs every step to its edge: lookups to 2.75; the idempotency transaction (under
the reserve only) from 2.75 + 0.25 to 5.0, leaving Customer.io nothing; parking from 5.25 to 7.25;
the completion from 7.5 to 9.5; the answer in the 2.5 s reserve, before the 12 s timeout. Each of
the three boundaries leaves 0.25 s. On a cold container the SSM read and the first DynamoDB
client come before the directory read; if they take more than 0.75 s at 256 MB the read is
refused and the ops that needed it are parked as transient for the retry path (with a 0.1 s
slack they had 1.2 s).

The retry function (timeout 30 s, same reserve and attempts; dodo_cio.retry.service): every call
ends by 27.5 s; a message's verdict keeps 2 SQS calls, 2 x 2.25 = 4.5 s; a Customer.io request
(2 s connect + 5 s read) starts only while it ends by 27.5 - 4.5 = 23.0, so by 16.0 s; the SSM read
and the batch's lookups and state commit keep a request and a verdict, 11.5 s, and end by 16.0 s.

tests/unit/test_deadline_margins.py drives these windows with a fake clock and asserts each of
them exactly; tests/integration/test_deadlines.py runs them, scaled down, against real sockets.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Final, TypeVar

E = TypeVar("E")
C = TypeVar("C")
R = TypeVar("R")
# botocore standard retry mode's cap on one backoff sleep (botocore/retries/standard.py).
MAX_BACKOFF_SECONDS: Final = 20.0
# Kept with each call a step keeps time for: the code between two calls (building a message,
# logging, a first client) and the wait to be scheduled run on the same clock, and a call that
# starts a few ms short of its worst case is refused. Sized in the module docstring.
STEP_SLACK: Final = 0.25


class DeadlineExceeded(Exception):
    """A call was not started because it could not end before the deadline.

    Raised from inside a botocore client call, so every caller's existing handling applies: the
    state table turns it into StateUnavailable, the duplicate check (dodo_cio.state.idempotency) into
    a 503, parking and quarantine into a 500, the secret store into ConfigError.
    """


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on the `time.monotonic()` clock by which a piece of work must have ended."""

    at: float

    @classmethod
    def after(cls, seconds: float, *, now: float | None = None) -> Deadline:
        return cls((time.monotonic() if now is None else now) + seconds)

    def left(self, now: float | None = None) -> float:
        """Seconds until the deadline; negative once it has passed."""
        return self.at - (time.monotonic() if now is None else now)

    def earlier(self, seconds: float) -> Deadline:
        """This deadline with `seconds` kept back for what must follow."""
        return Deadline(self.at - max(0.0, seconds))

    def fits(self, seconds: float, now: float | None = None) -> bool:
        """Whether work that may take `seconds` would still end before the deadline."""
        return self.left(now) >= seconds


_current: ContextVar[Deadline | None] = ContextVar("dodo_cio_deadline", default=None)


def current() -> Deadline | None:
    """The deadline the running code must respect, or None when nothing set one."""
    return _current.get()


def current_at() -> float | None:
    """`current().at`, for transports that take an absolute `time.monotonic()` deadline."""
    limit = _current.get()
    return None if limit is None else limit.at


def from_context(context: Any, *, now: float | None = None) -> Deadline | None:
    """The instant Lambda stops the invocation, or None for a context that cannot say."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        millis = float(remaining())
    except (TypeError, ValueError):
        return None
    if not math.isfinite(millis):  # nan or inf: no usable answer
        return None
    return Deadline.after(millis / 1000.0, now=now)


class _Scope:
    """A `with` block run under a deadline. A plain class: as generator-based context managers, the
    scopes a warm webhook opens were a measurable share of its CPU time (bench/ingest_breakdown.py)."""

    __slots__ = ("_keep", "_limit", "_token")

    def __init__(self, limit: Deadline | None, keep: float | None = None) -> None:
        self._limit = limit
        self._keep = keep
        self._token: Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline | None:
        outer = _current.get()
        limit = self._limit
        if self._keep is not None:
            limit = None if outer is None else outer.earlier(self._keep)
        if limit is None or (outer is not None and outer.at <= limit.at):
            return outer
        self._token = _current.set(limit)
        return limit

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def within(limit: Deadline | None) -> AbstractContextManager[Deadline | None]:
    """Run the block under `limit`, or under the enclosing deadline if that one is earlier."""
    return _Scope(limit)


def keeping(seconds: float) -> AbstractContextManager[Deadline | None]:
    """Run the block with `seconds` kept back from the current deadline (no-op without one)."""
    return _Scope(None, seconds)


def per_invocation(handler: Callable[[E, C], R]) -> Callable[[E, C], R]:
    """Decorate a Lambda handler: each call runs under the deadline its context gives.

    The previous invocation's deadline is replaced, not narrowed: a warm container's next event
    has a fresh budget. The services keep their own reserve to answer (`Settings.answer_reserve`).
    """

    @functools.wraps(handler)
    def run(event: E, context: C) -> R:
        token = _current.set(from_context(context))
        try:
            return handler(event, context)
        finally:
            _current.reset(token)

    return run


class AttemptGuard:
    """botocore hooks for one client: no attempt starts that could not end before the deadline.

    `attempt_seconds` is the client's worst case for one attempt (connect plus read timeout).
    botocore emits `request-created` before every attempt, the first and each retry, and a handler
    that raises there ends the whole call with that exception, before signing and before
    `before-send` (where moto answers, so moto-backed tests pass through this hook too). The
    `needs-retry` hook declines a retry unless botocore's longest backoff sleep before it plus one
    attempt still fit, so the last attempt's own error stands (a read timeout reads better in a
    log than a refusal) and no sleep can carry the call past the deadline. In botocore's standard
    retry mode the sleep before attempt n+1 is at most 2**(n-1) s (1 s base for throttling, 50 ms
    otherwise; botocore/retries/standard.py, ExponentialBackoff), capped at 20 s.
    """

    def __init__(self, attempt_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempt_seconds = attempt_seconds
        self._clock = clock

    def install(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_id.hyphenize()
        # On the service's own node and first: botocore calls more specific handlers first, and
        # its retry handler (a delay) and request signer sit on these same nodes.
        events.register_first(
            f"request-created.{service}", self.before_attempt, unique_id=f"dodo-cio-deadline-attempt-{service}"
        )
        events.register_first(
            f"needs-retry.{service}", self.before_retry, unique_id=f"dodo-cio-deadline-retry-{service}"
        )

    def _short(self, needed: float) -> float | None:
        """The time left when it is less than `needed`, else None (also None without a deadline)."""
        limit = _current.get()
        if limit is None:
            return None
        left = limit.left(self._clock())
        return left if left < needed else None

    def before_attempt(self, operation_name: str = "call", **_: Any) -> None:
        left = self._short(self.attempt_seconds)
        if left is not None:
            raise DeadlineExceeded(
                f"{operation_name} not started: {max(left, 0.0):.2f} s left before the deadline, "
                f"an attempt may take {self.attempt_seconds:.2f} s"
            )

    def before_retry(self, attempts: int = 1, **_: Any) -> bool | None:
        # False is botocore's "do not retry"; None leaves the decision to its own retry handler.
        longest_sleep = min(2.0 ** (max(attempts, 1) - 1), MAX_BACKOFF_SECONDS)
        return False if self._short(longest_sleep + self.attempt_seconds) is not None else None
