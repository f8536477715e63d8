"""Deadlines (dodo_cio.platform.deadline) and the pieces that obey them, without a socket.

The arithmetic and the botocore hooks run on fake clocks; the hooks are also installed on real
botocore clients here, where a refused attempt shows as DeadlineExceeded and an attempt that was
not refused would hit pytest-socket's guard instead. The stalled-endpoint cases with real sockets
are in tests/integration/test_deadlines.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from dodo_cio.configuration.settings import Settings
from dodo_cio.delivery.track import DeliveryResult, OpResult, TrackClient
from dodo_cio.platform import aws, deadline
from dodo_cio.platform.aws import AWS_ATTEMPTS, aws_config, aws_timeouts
from dodo_cio.platform.deadline import AttemptGuard, Deadline, DeadlineExceeded
from dodo_cio.platform.env import ConfigError
from dodo_cio.retry.service import RetryProcessor
from dodo_cio.retry.verdicts import DEFERRED_REASON, failed_message_ids, summarise
from support.aws import fake_credentials
from support.fake_sqs import FakeSqs
from support.g3_parked import parked, record
from support.g3_track import TrackSession

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"
DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the arithmetic ---------------------------------------------------------------------------


def test_a_deadline_counts_down_and_keeps_time_back() -> None:
    limit = Deadline.after(10.0, now=100.0)
    assert limit.at == 110.0
    assert limit.left(now=104.0) == 6.0
    assert limit.left(now=111.0) == -1.0
    assert limit.earlier(2.5).at == 107.5
    assert limit.earlier(-3.0) == limit, "keeping back a negative time never extends a deadline"
    assert limit.fits(6.0, now=104.0) and not limit.fits(6.01, now=104.0)


class Context:
    def __init__(self, remaining: Any) -> None:
        self.remaining = remaining

    def get_remaining_time_in_millis(self) -> Any:
        return self.remaining


def test_the_lambda_context_gives_the_invocations_end() -> None:
    limit = deadline.from_context(Context(12_000), now=50.0)
    assert limit == Deadline(62.0)
    assert deadline.from_context(object()) is None, "a context that cannot say gives no deadline"
    assert deadline.from_context(Context("soon")) is None
    assert deadline.from_context(Context(float("nan"))) is None


def test_a_narrower_deadline_applies_inside_its_block_and_never_widens() -> None:
    assert deadline.current() is None
    with deadline.within(Deadline(100.0)) as outer:
        assert outer == Deadline(100.0) and deadline.current_at() == 100.0
        with deadline.within(Deadline(200.0)) as wider:
            assert wider == Deadline(100.0), "an inner deadline later than the enclosing one is ignored"
        with deadline.keeping(30.0) as kept:
            assert kept == Deadline(70.0) and deadline.current() == Deadline(70.0)
            with deadline.keeping(5.0):
                assert deadline.current() == Deadline(65.0), "reserves add up"
        assert deadline.current() == Deadline(100.0)
    assert deadline.current() is None
    with deadline.keeping(30.0) as nothing:
        assert nothing is None and deadline.current() is None, "without a deadline nothing is bounded"


def test_each_invocation_gets_the_time_its_own_context_gives() -> None:
    seen: list[float | None] = []

    @deadline.per_invocation
    def handler(event: str, context: Context) -> str:
        seen.append(deadline.current_at())
        if event == "fail":
            raise RuntimeError("handler failed")
        return event

    start = time.monotonic()
    with deadline.within(Deadline(start + 1.0)):  # a stale deadline, as a warm container might keep
        assert handler("ok", Context(30_000)) == "ok"
        assert deadline.current_at() == start + 1.0, "the decorator restores what was there"
    with pytest.raises(RuntimeError):
        handler("fail", Context(5_000))
    assert deadline.current() is None
    first, second = seen
    assert first is not None and start + 29.0 < first <= time.monotonic() + 30.0, "replaced, not narrowed"
    assert second is not None and second <= time.monotonic() + 5.0


# -- the botocore hooks -----------------------------------------------------------------------


def offline_client(service: str, connect: float = 0.2, read: float = 0.3) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=aws_config(connect, read),
    )


class Unreachable:
    """A before-send hook that fails every attempt the way an unreachable endpoint does, and counts them."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, request: Any, **_: Any) -> None:
        self.attempts += 1
        raise EndpointConnectionError(endpoint_url=request.url)


@pytest.mark.parametrize(("budget", "attempts"), [(60.0, AWS_ATTEMPTS), (2.0, 1)])
def test_attempts_are_total_attempts_and_a_retry_that_cannot_fit_is_not_made(budget: float, attempts: int) -> None:
    client = offline_client("dynamodb", connect=0.5, read=1.0)
    AttemptGuard(1.5).install(client)
    unreachable = Unreachable()
    client.meta.events.register("before-send.dynamodb", unreachable)
    with deadline.within(Deadline.after(budget)), pytest.raises(EndpointConnectionError):
        client.list_tables()  # the last attempt's own error, not a refusal
    assert unreachable.attempts == attempts


@pytest.fixture
def fresh_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_credentials(monkeypatch)
    aws.reset()
    yield
    aws.reset()


def test_every_container_client_gets_the_configured_timeouts_and_the_guard(
    fresh_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTO_CONNECT_TIMEOUT", "0.2")
    monkeypatch.setenv("BOTO_READ_TIMEOUT", "0.3")
    client = aws.client("sqs")
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (0.2, 0.3)
    assert client.meta.config.retries == {"total_max_attempts": AWS_ATTEMPTS, "mode": "standard"}
    with deadline.within(Deadline.after(0.45)), pytest.raises(DeadlineExceeded):
        client.send_message(QueueUrl=QUEUE, MessageBody="{}")  # 0.45 s left < 0.2 + 0.3


def test_timeouts_and_reserve_come_from_the_environment() -> None:
    assert aws_timeouts({}) == (1.0, 1.0)
    settings = Settings.from_env({"BOTO_CONNECT_TIMEOUT": "0.5", "BOTO_READ_TIMEOUT": "1.5", "ANSWER_RESERVE": "3"})
    assert settings.aws_attempt_seconds == 2.0 and settings.answer_reserve == 3.0
    assert Settings.from_env({}).answer_reserve == 2.5
    with pytest.raises(ConfigError, match="BOTO_READ_TIMEOUT"):
        Settings.from_env({"BOTO_READ_TIMEOUT": "0"})


# -- Customer.io and the Dodo API -------------------------------------------------------------


EVENT = {"type": "person", "identifiers": {"id": "cus_1"}, "action": "event", "name": "x", "id": "01J"}


def test_a_track_request_runs_to_the_current_deadline() -> None:
    session = TrackSession()
    track = TrackClient("https://track.example", "s", "k", connect_timeout=2.0, read_timeout=5.0, session=session)
    assert track.send([EVENT]).delivered
    with deadline.within(Deadline.after(0.5)):
        assert track.send([EVENT]).delivered
    with deadline.within(Deadline.after(-0.1)):
        late = track.send([EVENT])
    timeouts = [timeout for *_, timeout in session.requests]
    assert timeouts[0] == (2.0, 5.0)
    assert all(0 < t <= 0.5 for t in timeouts[1]), "both timeouts capped at the time left"
    assert len(timeouts) == 2, "past the deadline nothing is sent"
    assert [r.outcome for r in late.results] == ["transient"] and "deadline" in late.results[0].reason


# -- the retry function under a deadline -------------------------------------------------------


class SlowSender:
    """Each request takes `seconds` of the fake clock; ops whose id is in `failing` get a 503."""

    def __init__(self, clock: Clock, seconds: float, failing: Sequence[str] = ()) -> None:
        self.clock, self.seconds, self.failing = clock, seconds, set(failing)
        self.requests: list[int] = []

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        self.requests.append(len(ops))
        self.clock.now += self.seconds
        results = tuple(
            OpResult("transient", "HTTP 503") if o["id"] in self.failing else OpResult("delivered") for o in ops
        )
        return DeliveryResult(results, 503 if self.failing else 200)


def processor(sqs: FakeSqs, clock: Clock) -> RetryProcessor:
    return RetryProcessor(
        sqs, QUEUE, DLQ, clock=lambda: 1_700_000_100.0, request_seconds=3.0, verdict_seconds=2.0, monotonic=clock
    )


def test_the_retry_path_starts_no_request_its_timeout_could_carry_past_the_time_kept() -> None:
    clock, sqs = Clock(), FakeSqs()
    sender = SlowSender(clock, 4.0, failing=[f"op_{t}{i}" for t in "ab" for i in range(600)])
    records = [record(tag, parked(tag, 600)) for tag in "abc"]  # 600 ops each: one request per message
    with deadline.within(Deadline(10.0)):  # requests may run until 8 (2 s kept), each needs 3
        outcomes = processor(sqs, clock).process(records, sender)
    assert sender.requests == [600, 600], "the third request would have started at 8 s"
    verdicts = {o.record.message_id: (o.verdict, o.deferred) for o in outcomes}
    assert verdicts == {"id-a": ("retry", False), "id-b": ("retry", False), "id-c": ("retry", True)}
    assert failed_message_ids(outcomes) == {"id-a", "id-b", "id-c"}, "all three come back"
    assert summarise(outcomes) == {"retry": 2, "deferred": 1}, "a deferred message is counted once"
    assert [c["ReceiptHandle"] for c in sqs.visibility] == ["rh-a", "rh-b"], "nothing is sent for c"
    assert sqs.sent == []
    assert outcomes[2].reason == DEFERRED_REASON


def test_a_verdict_whose_sqs_calls_may_not_end_in_time_is_deferred_but_a_delivery_stands() -> None:
    clock, sqs = Clock(), FakeSqs()
    sender = SlowSender(clock, 8.5, failing=["op_b0"])
    with deadline.within(Deadline(10.0)):
        outcomes = processor(sqs, clock).process([record("a", parked("a")), record("b", parked("b"))], sender)
    assert sender.requests == [2]
    assert [(o.verdict, o.deferred) for o in outcomes] == [("delivered", False), ("retry", True)]
    assert sqs.sent == sqs.visibility == [], "1.5 s left: no visibility change or re-park was started"
