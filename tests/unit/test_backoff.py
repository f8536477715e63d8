"""Retry timing: exponential ceilings, full jitter, Retry-After, config waits and the give-up horizons."""

from __future__ import annotations

import math

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
ODD_ATTEMPTS = {10_000: CAP, 0: BASE, -3: BASE}  # no float overflow; nothing below the base


def test_defaults_match_the_documented_schedule() -> None:
    assert (POLICY.base, POLICY.cap) == (BASE, CAP)
    assert POLICY.transient_horizon == 36 * HOUR
    assert POLICY.config_horizon == 7 * DAY
    assert (POLICY.horizon("config"), POLICY.horizon("permanent")) == (7 * DAY, 36 * HOUR)  # all but config: 36 h


@pytest.mark.parametrize(("attempt", "expected"), sorted({**CEILINGS, **ODD_ATTEMPTS}.items()))
def test_ceiling_doubles_from_base_and_caps(attempt: int, expected: int) -> None:
    assert POLICY.ceiling(attempt) == expected


def test_a_custom_policy_doubles_from_its_base_to_its_cap_and_config_waits_that_cap() -> None:
    policy = BackoffPolicy(base=2, cap=50)
    assert [policy.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 50, 50]
    assert policy.delay(1, kind="config", rng=_no_rng) == 50


# -- delay ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "ceiling"), sorted(CEILINGS.items()))
def test_full_jitter_spans_the_one_second_minimum_to_the_ceiling(attempt: int, ceiling: int) -> None:
    assert POLICY.delay(attempt, rng=_constant(0.0)) == 1
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


@pytest.mark.parametrize(
    ("attempt", "u", "retry_after", "expected"),
    [
        (1, 0.0, 120, 120),  # raises the delay
        (1, 0.999, 120, 120),  # jitter alone would give 30
        (8, 0.5, 120, 450),  # never lowers it
        (1, 0.0, 5000, CAP),  # past the cap: the cap
        (1, 0.0, CAP + 1, CAP),
        (1, 0.0, 120.2, 121),  # fractions round up
        (1, 0.0, 0.3, 1),
        (3, 0.5, 0, 60),  # absent or not positive: ignored
        (3, 0.5, -5, 60),
        (3, 0.5, None, 60),
    ],
)
def test_retry_after_is_a_floor_on_the_delay(attempt: int, u: float, retry_after: float | None, expected: int) -> None:
    assert POLICY.delay(attempt, retry_after=retry_after, rng=_constant(u)) == expected


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


# -- horizons ---------------------------------------------------------------------------------

FIRST_SEEN = 1_792_055_310


@pytest.mark.parametrize(("kind", "horizon"), [("transient", 36 * HOUR), ("config", 7 * DAY)])
def test_expired_at_the_boundary(kind: str, horizon: int) -> None:
    assert not POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN)
    assert not POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN + horizon - 1)
    assert POLICY.expired(kind=kind, first_seen=FIRST_SEEN, now=FIRST_SEEN + horizon + 1)
