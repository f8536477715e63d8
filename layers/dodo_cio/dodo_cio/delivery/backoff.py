"""Retry timing for parked deliveries: exponential backoff with full jitter, and when to give up.

The schedule (stated in the README, "Retry schedule"):
  attempt n waits a random time in [0, min(cap, base * 2**(n-1))] -- full jitter, so a backlog
  released by a recovering Customer.io does not come back as one synchronised wave;
  a `Retry-After` from Customer.io raises the wait to at least that (capped);
  configuration errors (401/403/404) wait the full cap every time: nothing will change until a
  person fixes the key, and slow retries keep the alarm honest without burning attempts;
  a delivery is dead-lettered once it has been failing for longer than the horizon of its kind,
  measured from when the bridge first saw it -- not by receive count, so that jitter and Lambda
  scaling cannot shorten the horizon.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# SQS limits: a visibility timeout is at most 12 h; we stay far below.
BASE_SECONDS: Final = 30.0
CAP_SECONDS: Final = 900.0
TRANSIENT_HORIZON_SECONDS: Final = 36 * 3600
CONFIG_HORIZON_SECONDS: Final = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base: float = BASE_SECONDS
    cap: float = CAP_SECONDS
    transient_horizon: int = TRANSIENT_HORIZON_SECONDS
    config_horizon: int = CONFIG_HORIZON_SECONDS

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait before attempt `attempt + 1` (attempt counts from 1)."""
        exponent = max(0, attempt - 1)
        if exponent > 30:  # 2**30 * base is far past any cap; avoid huge floats
            return self.cap
        return min(self.cap, self.base * 2.0**exponent)

    def delay(
        self,
        attempt: int,
        *,
        kind: str = "transient",
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> int:
        """Whole seconds to keep the message invisible before the next attempt (>= 1)."""
        wait = self.cap if kind == "config" else rng() * self.ceiling(attempt)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.cap))
        return max(1, min(math.ceil(wait), int(self.cap)))

    def horizon(self, kind: str) -> int:
        return self.config_horizon if kind == "config" else self.transient_horizon

    def expired(self, *, kind: str, first_seen: int, now: float) -> bool:
        return now - first_seen >= self.horizon(kind)
