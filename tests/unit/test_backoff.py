"""Retry timing: exponential ceilings, full jitter, Retry-After, config waits and the give-up horizons."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dodo_cio.delivery.backoff import BackoffPolicy

POLICY = BackoffPolicy()
BASE = 30
CAP = 900
HOUR = 3600
DAY = 24 * HOUR


def _constant(value: float):
    return lambda: value


def _no_rng() -> float:
    raise AssertionError("rng must not be consulted")


# -- ceiling ----------------------------------------------------------------------------------

# Written out by hand: 30 s doubling per attempt, capped at 15 minutes from attempt 6 on.
CEILINGS = {1: 30, 2: 60, 3: 120, 4: 240, 5: 480, 6: 900, 7: 900, 8: 900, 9: 900, 10: 900, 11: 900, 12: 900}


def test_defaults_match_the_documented_schedule() -> None:
    assert (POLICY.base, POLICY.cap) == (BASE, CAP)
    assert POLICY.transient_horizon == 36 * HOUR
    assert POLICY.config_horizon == 7 * DAY


@pytest.mark.parametrize(("attempt", "expected"), sorted(CEILINGS.items()))
def test_ceiling_doubles_from_base_and_caps(attempt: int, expected: int) -> None:
    assert POLICY.ceiling(attempt) == expected


def test_ceiling_of_huge_and_nonpositive_attempts() -> None:
    assert POLICY.ceiling(10_000) == CAP  # no float overflow
    assert POLICY.ceiling(0) == BASE
    assert POLICY.ceiling(-3) == BASE


def test_ceiling_with_a_custom_policy() -> None:
    policy = BackoffPolicy(base=2, cap=50)
    assert [policy.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 50, 50]


# -- delay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", sorted(CEILINGS))
def test_rng_zero_waits_the_one_second_minimum(attempt: int) -> None:
    assert POLICY.delay(attempt, rng=_constant(0.0)) == 1


@pytest.mark.parametrize(("attempt", "ceiling"), sorted(CEILINGS.items()))
def test_rng_near_one_waits_the_ceiling(attempt: int, ceiling: int) -> None:
    # 0.999 * ceiling is within a second of the ceiling for every ceiling <= 900, so it rounds up to it.
    delay = POLICY.delay(attempt, rng=_constant(0.999))
    assert delay == ceiling
    assert isinstance(delay, int)


@pytest.mark.parametrize(
    ("attempt", "u", "expected"),
    [
        (1, 0.5, 15),  # 0.5 * 30
        (3, 0.5, 60),  # 0.5 * 120
        (5, 0.1, 48),  # 0.1 * 480
        (2, 0.01, 1),  # 0.6 s rounds up to 1
        (12, 0.25, 225),  # 0.25 * 900
        (4, 0.3, 72),  # 0.3 * 240
    ],
)
def test_delay_is_the_jittered_fraction_rounded_up(attempt: int, u: float, expected: int) -> None:
    assert POLICY.delay(attempt, rng=_constant(u)) == expected


@settings(max_examples=300, deadline=None)
@given(
    attempt=st.integers(min_value=-3, max_value=500),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_full_jitter_stays_within_one_second_and_the_ceiling(attempt: int, u: float) -> None:
    ceiling = min(CAP, BASE * 2 ** max(0, attempt - 1))  # exact integer arithmetic
    delay = POLICY.delay(attempt, rng=_constant(u))
    assert type(delay) is int
    assert 1 <= delay <= ceiling <= CAP


def test_delay_uses_the_default_rng_within_bounds() -> None:
    delays = {POLICY.delay(6) for _ in range(200)}
    assert all(1 <= d <= CAP for d in delays)
    assert len(delays) > 20, "full jitter spreads the waits"


# -- Retry-After ------------------------------------------------------------------------------


def test_retry_after_raises_the_delay() -> None:
    assert POLICY.delay(1, retry_after=120, rng=_constant(0.0)) == 120
    assert POLICY.delay(1, retry_after=120, rng=_constant(0.999)) == 120  # jitter alone would give 30


def test_retry_after_never_lowers_the_delay() -> None:
    assert POLICY.delay(8, retry_after=120, rng=_constant(0.5)) == 450


def test_retry_after_past_the_cap_waits_the_cap() -> None:
    assert POLICY.delay(1, retry_after=5000, rng=_constant(0.0)) == CAP
    assert POLICY.delay(1, retry_after=CAP + 1, rng=_constant(0.0)) == CAP


def test_fractional_retry_after_rounds_up() -> None:
    assert POLICY.delay(1, retry_after=120.2, rng=_constant(0.0)) == 121
    assert POLICY.delay(1, retry_after=0.3, rng=_constant(0.0)) == 1


@pytest.mark.parametrize("retry_after", [0, -5, None])
def test_absent_or_nonpositive_retry_after_is_ignored(retry_after: float | None) -> None:
    assert POLICY.delay(3, retry_after=retry_after, rng=_constant(0.5)) == 60


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=40),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    retry_after=st.floats(min_value=0.001, max_value=100_000, allow_nan=False),
)
def test_retry_after_is_a_floor_up_to_the_cap(attempt: int, u: float, retry_after: float) -> None:
    delay = POLICY.delay(attempt, retry_after=retry_after, rng=_constant(u))
    assert math.ceil(min(retry_after, CAP)) <= delay <= CAP


# -- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 6, 50])
def test_config_errors_always_wait_the_full_cap(attempt: int) -> None:
    assert POLICY.delay(attempt, kind="config", rng=_no_rng) == CAP
    assert POLICY.delay(attempt, kind="config", retry_after=30, rng=_no_rng) == CAP


def test_config_wait_follows_a_custom_cap() -> None:
    assert BackoffPolicy(cap=600).delay(1, kind="config", rng=_no_rng) == 600


# -- horizons ---------------------------------------------------------------------------------

FIRST_SEEN = 1_792_055_310


def test_horizon_per_kind() -> None:
    assert POLICY.horizon("transient") == 36 * HOUR
    assert POLICY.horizon("config") == 7 * DAY
    assert POLICY.horizon("permanent") == 36 * HOUR  # anything but config gets the transient horizon


@pytest.mark.parametrize(("kind", "horizon"), [("transient", 36 * HOUR), ("config", 7 * DAY)])
def test_expired_at_the_boundary(kind: str, horizon: int) -> None:
    assert not POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN)
    assert not POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN + horizon - 1)
    assert POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN + horizon + 1)


def test_config_errors_outlive_the_transient_horizon() -> None:
    now = FIRST_SEEN + 37 * HOUR
    assert POLICY.expired(kind="transient", first_seen=FIRST_SEEN, now=now)
    assert not POLICY.expired(kind="config", first_seen=FIRST_SEEN, now=now)


# -- a whole outage ---------------------------------------------------------------------------


def _attempts_during_outage(seed: int, kind: str = "transient") -> int:
    """Attempts a message gets while Customer.io keeps failing for longer than the horizon."""
    rng = random.Random(seed)
    elapsed = 0  # seconds since first_seen
    attempts = 1  # the ingest attempt that parked it
    while True:
        elapsed += POLICY.delay(attempts, kind=kind, rng=rng.random)
        if POLICY.expired(kind=kind, first_seen=0, now=elapsed):
            return attempts  # this receive dead-letters it instead of trying again
        attempts += 1


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_a_36_hour_outage_costs_a_few_hundred_attempts(seed: int) -> None:
    attempts = _attempts_during_outage(seed)
    print(f"seed {seed}: {attempts} attempts in 36 h")
    # Mean wait at the cap is 450 s, so about 129600 / 450 = 288 attempts; the template's
    # maxReceiveCount backstop must never be the thing that ends a delivery.
    assert 50 < attempts < 1000
    assert 200 < attempts < 400


def test_a_week_of_config_errors_stays_under_the_receive_backstop() -> None:
    # Every wait is the full 900 s cap, so the 7-day horizon is reached after 604800 / 900 = 672 waits.
    attempts = _attempts_during_outage(0, kind="config")
    print(f"config: {attempts} attempts in 7 days")
    assert attempts == 672
    assert attempts < 1000
