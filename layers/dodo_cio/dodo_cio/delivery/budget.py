"""One container's share of the workspace's Customer.io request budget (README "Renewal day").

Customer.io limits a workspace (Track: about 100 requests per second, fair use), not a function.
The ingest function and the retry function send to the same workspace, from as many containers as
Lambda runs, and they share nothing but the state table, which the budget must not add a round
trip to. So the budget is split ahead of time, by numbers the stack already fixes:

* `CUSTOMERIO_RATE_LIMIT_RPS` (the stack's `CustomerioRequestsPerSecond`) is the whole budget;
* ingest gets `CUSTOMERIO_INGEST_SHARE` of it (default 0.5), divided by the most containers it can
  run (`INGEST_MAX_CONCURRENCY`: its reserved concurrency), so all of them together stay inside
  their share however many Lambda starts;
* the retry drain gets the rest, divided by its event source's maximum concurrency
  (`Settings.rate_per_container`). Its batches carry up to 50 webhooks per request, so on renewal
  day the drain delivers far more events per request than ingest does.

Each ingest container holds a token bucket (`Budget`): a webhook whose delivery finds it empty is
parked on the retry queue instead of being sent (answered 202: Dodo sees success, nothing is lost).
A 429 from Customer.io is the one signal every container sees: it holds the bucket closed for the
`Retry-After` Customer.io gave (or `HOLD_SECONDS`), so a container that met the limit parks rather
than piles on. The trade-off: a container never sends more than its share, so a steady stream above
`share / containers` per second per container, which no workspace limit would refuse, is also
parked and reaches Customer.io a few seconds later through the retry queue. The burst allowance
(`BURST_SECONDS` of the rate, at least one request) lets an ordinary trickle through untouched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

BURST_SECONDS: Final = 2.0  # the bucket holds this many seconds of the container's rate (at least 1)
HOLD_SECONDS: Final = 5.0  # a 429 without Retry-After closes the bucket this long
MAX_HOLD_SECONDS: Final = 60.0  # a Retry-After longer than this is believed only this far


class Budget:
    """A token bucket of `per_second` requests, `burst` deep, that a 429 can close for a while.

    A rate of zero or less means no budget (every request may go). The clock is injectable so
    tests can move time instead of waiting for it.
    """

    def __init__(
        self,
        per_second: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.capacity = max(1.0, burst if burst is not None else per_second * BURST_SECONDS)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """True when one request may go now (and counts it); False when it should wait."""
        if self.per_second <= 0:
            return True
        with self._lock:
            now = self._clock()
            if now < self._held_until:
                return False
            self._tokens, self._at = self._refilled(now), now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def hold(self, retry_after: float | None) -> None:
        """Customer.io answered 429: nothing goes until `retry_after` seconds from now have passed."""
        seconds = HOLD_SECONDS if retry_after is None or retry_after <= 0 else min(retry_after, MAX_HOLD_SECONDS)
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)
            self._tokens = 0.0

    def wait(self) -> float:
        """Seconds until a request may go (0 when one may go now): how long a parked delivery waits."""
        if self.per_second <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            if now < self._held_until:
                return self._held_until - now
            tokens = self._refilled(now)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_second

    def _refilled(self, now: float) -> float:
        """The tokens at `now` (callers hold the lock): what was left plus the rate since, up to the depth."""
        return min(self.capacity, self._tokens + (now - self._at) * self.per_second)
