"""dodo_cio.retry.pacing: each container's share of Customer.io's rate, on a fake clock."""

from __future__ import annotations

import pytest

from dodo_cio.retry.pacing import RateLimiter


class FakeTime:
    """A clock that only moves when the limiter sleeps (requests themselves take no time)."""

    def __init__(self, start: float = 5000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


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
