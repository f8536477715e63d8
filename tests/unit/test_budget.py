"""One container's part of the Customer.io budget: the ingest path's (dodo_cio.delivery.budget) and the retry
path's pacing (dodo_cio.retry.pacing), on clocks the tests move."""

from __future__ import annotations

import pytest

from dodo_cio.configuration.settings import Settings
from dodo_cio.delivery.budget import HOLD_SECONDS, MAX_HOLD_SECONDS, Budget
from dodo_cio.retry.pacing import RateLimiter


class FakeTime:
    """A clock the test moves, which also moves when the code under test sleeps."""

    def __init__(self, start: float = 5000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_burst_then_the_rate_and_never_more() -> None:
    clock = FakeTime()
    budget = Budget(2.0, clock=clock.clock)  # 2 a second, 2 seconds deep
    assert [budget.take() for _ in range(5)] == [True, True, True, True, False]
    assert budget.wait() == pytest.approx(0.5)
    clock.now += 0.5
    assert budget.take() and not budget.take()
    clock.now += 100  # an idle container refills only to its depth
    assert sum(budget.take() for _ in range(10)) == 4
    no_rate = Budget(0.0)  # no rate means no budget
    assert all(no_rate.take() for _ in range(1000)) and no_rate.wait() == 0.0


def test_a_429_closes_it_for_the_retry_after_or_the_default_and_empties_it() -> None:
    clock = FakeTime()
    budget = Budget(10.0, clock=clock.clock)
    budget.hold(3.0)
    assert not budget.take() and budget.wait() == pytest.approx(3.0)
    clock.now += 3.0
    assert budget.take()  # refilled from the moment of the hold, not before
    assert budget.wait() == 0.0
    budget.hold(None)
    assert budget.wait() == pytest.approx(HOLD_SECONDS)
    budget.hold(10_000)  # a Retry-After that would stall a container for hours is capped
    assert budget.wait() == pytest.approx(MAX_HOLD_SECONDS)


@pytest.mark.parametrize(
    ("env", "ingest", "retry"),
    [
        ({}, 0.0, 25.0),  # no concurrency known: ingest not paced; retry 100 x 0.5 / 2
        ({"INGEST_MAX_CONCURRENCY": "50"}, 1.0, 25.0),
        ({"INGEST_MAX_CONCURRENCY": "0", "API_BURST_LIMIT": "100"}, 0.5, 25.0),
        ({"INGEST_MAX_CONCURRENCY": "10", "CUSTOMERIO_INGEST_SHARE": "0.2", "RETRY_MAX_CONCURRENCY": "4"}, 2.0, 20.0),
    ],
)
def test_both_functions_together_stay_inside_the_workspace_budget(
    env: dict[str, str], ingest: float, retry: float
) -> None:
    settings = Settings.from_env({"SSM_PARAMETER_PATH": "/x", **env})
    assert settings.ingest_rate_per_container == pytest.approx(ingest)
    assert settings.rate_per_container == pytest.approx(retry)
    containers = settings.ingest_max_concurrency
    total = (
        settings.ingest_rate_per_container * containers + settings.rate_per_container * settings.retry_max_concurrency
    )
    assert total <= settings.rate_limit_rps + 1e-9


# -- the retry path's pacing -------------------------------------------------------------------


def test_n_acquires_are_spaced_by_the_interval() -> None:
    fake = FakeTime()
    limiter = RateLimiter(4.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(9):
        limiter.acquire()
        starts.append(fake.now)
    # 4 per second: the first goes at once, each next one 0.25 s after the previous.
    assert sum(fake.sleeps) == pytest.approx(8 * 0.25)
    assert starts == pytest.approx([5000.0 + 0.25 * i for i in range(9)])


def test_time_already_spent_counts_towards_the_interval() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    limiter.acquire()
    fake.now += 0.2  # the request took 0.2 s
    limiter.acquire()
    assert fake.sleeps == [pytest.approx(0.3)]
    fake.now += 10  # idle for a while: no debt, no burst credit beyond one request
    limiter.acquire()
    limiter.acquire()
    assert fake.sleeps[1:] == [pytest.approx(0.5)]


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_zero_never_sleeps(rate: float) -> None:
    sleeps: list[float] = []
    limiter = RateLimiter(rate, clock=lambda: 0.0, sleep=sleeps.append)
    for _ in range(50):
        limiter.acquire()
    assert sleeps == []
