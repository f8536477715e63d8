"""Pacing: each retry container's share of Customer.io's request rate.

Customer.io's Track API has a fair-use rate for the whole workspace, and the retry function runs up
to `RetryMaxConcurrency` containers at once, so each container spaces its own requests to
`CUSTOMERIO_RATE_LIMIT_RPS / RETRY_MAX_CONCURRENCY` (`Settings.rate_per_container`). Spacing
(rather than a token bucket) is deliberate: a drain after an outage must not start with a burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces requests evenly so a container never exceeds its share of Customer.io's rate.

    A rate of zero or less means no pacing. The clock and sleep are injectable so tests can see
    the exact waits without waiting.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until this request's slot; the slot is reserved under the lock, the wait is not."""
        with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            self._sleep(wait)
