"""Deadlines (dodo_cio.platform.deadline): the machinery, then the budget each step leaves for the calls
after it, exactly, on a clock the test drives (issue 16).

tests/integration/test_deadlines.py shows with real sockets that every answer comes before
Lambda's timeout; it cannot tell 3 kept calls from 0, nor a 2 s Dodo API budget from 60 s. Here
the ingest and retry services run on fakes that record the deadline each ran under, asserted to
the last bit (every number below is exact in binary floating point; dodo_cio.platform.deadline's
docstring derives them):

    outer deadline 1000, ANSWER_RESERVE 2.5, one AWS attempt 1 s + 1 s = 2 s, STEP_SLACK 0.25
    every call            1000 - 2.5             = 997.5
    lookups               997.5 - 3 x (2 + 0.25) = 990.75
    Customer.io           997.5 - 2 x 2.25       = 993.0
    parking               997.5 - 1 x 2.25       = 995.25
    Dodo API lookups      min(clock + 2, 990.75)
    retry: verdicts keep 2 x 2.25 = 4.5, a Customer.io request 2 + 5 = 7

The literals are deliberate: an expectation computed from the constants would follow a wrong
constant. Where time must pass, the fakes move the clock that the services and the AttemptGuard
read (`Resolver(clock=)`, `RetryService(monotonic=)`, `AttemptGuard(clock=)`). Where the guard is
installed on a real botocore client, an attempt it did not refuse would hit pytest-socket's guard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from dodo_cio.configuration.settings import Secrets, Settings
from dodo_cio.delivery.destination import Credentials, DeliveryClients
from dodo_cio.delivery.track import DeliveryResult, OpResult, TrackClient
from dodo_cio.ingest.service import IngestService
from dodo_cio.mapping.mapper import IdentifierStrategy
from dodo_cio.platform import aws, deadline
from dodo_cio.platform.aws import AWS_ATTEMPTS, aws_config
from dodo_cio.platform.deadline import AttemptGuard, Deadline, DeadlineExceeded
from dodo_cio.receiving.http_api import HttpResponse, WebhookRequest
from dodo_cio.receiving.signature import signature_headers
from dodo_cio.retry.service import RetryProcessor, RetryService
from dodo_cio.retry.verdicts import DEFERRED_REASON, failed_message_ids, summarise
from dodo_cio.state.identity import Resolver
from dodo_cio.state.table import Lookup, StatePlan
from dodo_cio_local.lambda_context import FakeLambdaContext
from support.aws import fake_credentials
from support.fake_sqs import FakeSqs
from support.parked import lambda_record, parked, record
from support.samples import SAMPLES
from support.track_session import TrackSession

OUTER = 1000.0  # the invocation's deadline, on the fake monotonic clock
START = 500.0  # the fake monotonic clock when a test starts: far from every window's edge
NOW = 1_800_000_000  # wall clock (signatures, parked messages)
SECRET = b"margins-test-secret"
RETRY_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
ENV = {
    "CUSTOMERIO_IDENTIFIER": "email",  # so a dunning webhook's person must be looked up
    "RETRY_QUEUE_URL": RETRY_URL,
    "DEAD_LETTER_QUEUE_URL": DLQ_URL,
}
DUNNING = (SAMPLES / "dunning.started.json").read_bytes()  # names its customer by id only
CUSTOMER = json.loads(DUNNING)["data"]["customer_id"]

# What the default settings give (dodo_cio.platform.deadline's docstring).
EVERY_CALL = 997.5
LOOKUPS = 990.75
CUSTOMERIO = 993.0
PARKING = 995.25


class Clock:
    """A monotonic clock the test (and the fakes) move by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Trace = list[tuple[Any, ...]]


def at() -> float | None:
    return deadline.current_at()


class Steps:
    """Every fake of one run, each appending (step, the deadline it ran under, ...) to `trace`.

    `guard`, when set, is the AttemptGuard a real boto3 client would carry: the fakes of AWS calls
    (SSM aside) run its check first, as botocore does before every attempt.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.trace: Trace = []
        self.guard: AttemptGuard | None = None
        self.customerio_takes: Callable[[], None] = lambda: None  # moves the clock during a send
        self.parking_takes: Callable[[], None] = lambda: None

    def _attempt(self, operation: str) -> None:
        if self.guard is not None:
            self.guard.before_attempt(operation_name=operation)

    # SecretStore
    def load(self, *, force: bool = False) -> Secrets:
        self.trace.append(("ssm", at()))
        return Secrets((SECRET,), "site-1", "key-1")

    def delivery_credentials(self) -> Credentials:
        self.trace.append(("ssm", at()))
        return Secrets((SECRET,), "site-1", "key-1").delivery_credentials()

    # the identity directory (DirectoryReader) and Dodo's API (DodoLookup)
    def lookup(self, customer_ids: Iterable[str], payment_ids: Iterable[str]) -> Lookup:
        self.trace.append(("directory", at()))
        return Lookup({}, {})

    def customer(self, customer_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        self.trace.append(("dodo api", at(), deadline))
        return {"customer_id": customer_id, "email": "ada@example.com"}

    def payment(self, payment_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        raise AssertionError("no payment is looked up here")

    # the duplicate check (ingest.Dedupe): its transaction, the work, then completing the record
    def __call__(
        self, webhook_id: str, work: Callable[[], HttpResponse], plan: StatePlan | None = None
    ) -> HttpResponse:
        self._attempt("TransactWriteItems")
        self.trace.append(("transaction", at()))
        response = work()
        self._attempt("UpdateItem" if response.status < 500 else "DeleteItem")
        self.trace.append(("completion", at()))
        return response

    # a Customer.io client (destination.DeliveryClient): every op fails, so what failed is parked
    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        self.trace.append(("customer.io", at()))
        self.customerio_takes()
        return DeliveryResult(tuple(OpResult("transient", "timeout: deadline reached") for _ in ops), None)

    def close(self) -> None:
        pass

    # SQS: parking on the ingest path, verdicts on the retry path
    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self._attempt("SendMessage")
        self.trace.append(("sqs", at()))
        self.parking_takes()
        return {"MessageId": "m-1"}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        self._attempt("ChangeMessageVisibility")
        self.trace.append(("sqs", at()))
        return {}

    # Metrics and Log
    def add_metric(self, name: str, unit: Any, value: float) -> None:
        pass

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        pass

    warning = error = exception = info

    def append_keys(self, **additional_keys: object) -> None:
        pass


def resolver(steps: Steps) -> Resolver:
    """The real resolver, with the default Dodo API budget, on the test's clock."""
    return Resolver(IdentifierStrategy.parse("email"), steps, lambda: steps, clock=steps.clock)


def ingest_service(steps: Steps, **env: str) -> IngestService:
    service = IngestService(
        settings=Settings.from_env({**ENV, **env}),
        secrets=steps,  # type: ignore[arg-type]
        clock=lambda: float(NOW),
        mapping=Settings.from_env(ENV).mapping(),
        metrics=steps,
        logger=steps,
        sqs_factory=lambda: steps,
        dedupe=steps,
        resolver=resolver(steps),
    )
    service._clients = DeliveryClients(lambda credentials: steps)
    return service


def webhook(webhook_id: str = "msg_margins") -> WebhookRequest:
    return WebhookRequest(signature_headers(SECRET, DUNNING, webhook_id=webhook_id, timestamp=NOW), DUNNING)


def run_ingest(steps: Steps, **env: str) -> HttpResponse:
    with deadline.within(Deadline(OUTER)):
        return ingest_service(steps, **env).handle(webhook())


# -- the ingest function ----------------------------------------------------------------------


def test_each_ingest_step_keeps_exactly_the_time_of_the_calls_after_it() -> None:
    steps = Steps(Clock())
    response = run_ingest(steps)
    assert response == HttpResponse(202, {"status": "queued"})
    assert steps.trace == [
        ("ssm", EVERY_CALL),  # 2.5 s kept to answer, from the very first call
        ("directory", LOOKUPS),  # 3 calls kept: the transaction, parking, the completion
        ("dodo api", LOOKUPS, START + 2.0),  # the lookup budget: 2 s from the clock's reading
        ("transaction", EVERY_CALL),
        ("customer.io", CUSTOMERIO),  # 2 calls kept: parking, the completion
        ("sqs", PARKING),  # 1 call kept: the completion
        ("completion", EVERY_CALL),
    ]


def test_the_answer_reserve_is_the_setting() -> None:
    steps = Steps(Clock())
    run_ingest(steps, ANSWER_RESERVE="4", BOTO_CONNECT_TIMEOUT="0.5", BOTO_READ_TIMEOUT="1.25")
    # 1000 - 4 = 996; one attempt 1.75 s, so each kept call is 2 s
    assert [t[1] for t in steps.trace] == [996.0, 990.0, 990.0, 996.0, 992.0, 994.0, 996.0]


def test_the_dodo_api_lookups_end_by_the_lookup_window_when_it_comes_first_and_by_their_budget_without_one() -> None:
    steps = Steps(Clock(LOOKUPS - 1.25))  # 2 s from now would be past the lookups' window
    run_ingest(steps)
    assert [t for t in steps.trace if t[0] == "dodo api"] == [("dodo api", LOOKUPS, LOOKUPS)]
    steps = Steps(Clock())
    ingest_service(steps).handle(webhook())  # no deadline
    assert [t for t in steps.trace if t[0] == "dodo api"] == [("dodo api", None, START + 2.0)]
    assert {t[1] for t in steps.trace} == {None}, "no deadline, nothing narrowed"


def test_a_customerio_request_that_runs_to_its_edge_leaves_parking_an_attempt_and_the_slack() -> None:
    """The margin between two steps is STEP_SLACK: 0.25 s of code and scheduling, not a ms more."""

    def stalled_then(gap: float) -> tuple[HttpResponse, Trace]:
        clock = Clock()
        steps = Steps(clock)
        steps.guard = AttemptGuard(2.0, clock=clock)  # as on every AWS client (dodo_cio.platform.aws)

        def stalls() -> None:
            limit = deadline.current()
            assert limit is not None
            clock.now = limit.at + gap  # the read timed out at the window's edge; `gap` passes before SQS

        steps.customerio_takes = stalls
        steps.parking_takes = stalls  # SQS too answers at its edge: the completion must still fit
        return run_ingest(steps), steps.trace

    response, trace = stalled_then(0.25)
    assert response == HttpResponse(202, {"status": "queued"})
    assert [t[0] for t in trace][-3:] == ["customer.io", "sqs", "completion"]

    response, trace = stalled_then(0.251)
    assert response.status == 500, "parking refused: its attempt could no longer end in its window"
    assert "sqs" not in [t[0] for t in trace]
    assert trace[-1] == ("completion", EVERY_CALL), "the record's removal still had its own call kept"


# -- the retry function -----------------------------------------------------------------------


def parked_for_lookup(tag: str = "a") -> dict[str, Any]:
    """A Lambda SQS record of a parked op whose person was not known yet: it needs a lookup."""
    op = {"type": "person", "action": "event", "name": "dunning.started", "_customer_id": CUSTOMER, "id": tag}
    return lambda_record(tag, replace(parked(tag, first_seen=NOW - 60), ops=[op]))


def retry_service(steps: Steps) -> RetryService:
    service = RetryService(
        settings=Settings.from_env(ENV),
        secrets=steps,  # type: ignore[arg-type]
        metrics=steps,
        logger=steps,
        sqs_factory=lambda: steps,
        clock=lambda: float(NOW),
        rng=lambda: 0.5,
        resolver=resolver(steps),
        monotonic=steps.clock,
    )
    service._clients = DeliveryClients(lambda credentials: steps)
    return service


def run_retry(steps: Steps) -> list[tuple[str, bool]]:
    with deadline.within(Deadline(OUTER)):
        outcomes = retry_service(steps).handle([parked_for_lookup()])
    return [(o.verdict, o.deferred) for o in outcomes]


def test_each_retry_step_keeps_exactly_the_time_of_the_calls_after_it() -> None:
    steps = Steps(Clock())
    assert run_retry(steps) == [("retry", False)]
    before_request = EVERY_CALL - 4.5 - 7.0  # a verdict's 2 SQS calls and one 7 s request
    assert steps.trace == [
        ("ssm", before_request),
        ("directory", before_request),
        ("dodo api", before_request, START + 2.0),
        ("customer.io", EVERY_CALL - 4.5),
        ("sqs", EVERY_CALL),  # the verdict: 2.5 s kept to answer
    ]


def test_a_retry_request_that_exactly_fits_is_sent_and_one_a_millisecond_short_is_deferred() -> None:
    last_start = EVERY_CALL - 4.5 - 7.0
    steps = Steps(Clock(last_start))
    assert run_retry(steps) == [("retry", False)]
    assert "customer.io" in [t[0] for t in steps.trace]

    steps = Steps(Clock(last_start + 0.001))
    assert run_retry(steps) == [("retry", True)], "deferred: back whole after the visibility timeout"
    assert [t[0] for t in steps.trace] == ["ssm", "directory", "dodo api"], "no request, no SQS call"


# -- the AttemptGuard at its margins ----------------------------------------------------------


def test_an_attempt_that_exactly_fits_starts_and_one_a_millisecond_short_is_refused() -> None:
    clock = Clock()
    guard = AttemptGuard(2.0, clock=clock)
    guard.before_attempt(operation_name="SendMessage")  # no deadline: nothing is refused
    with deadline.within(Deadline(OUTER)):
        clock.now = OUTER - 2.0
        guard.before_attempt(operation_name="SendMessage")
        clock.now = OUTER - 1.999
        with pytest.raises(DeadlineExceeded, match=r"SendMessage not started: 2\.00 s left.*2\.00 s"):
            guard.before_attempt(operation_name="SendMessage")
        clock.now = OUTER + 2.0
        with pytest.raises(DeadlineExceeded, match=r"0\.00 s left"):
            guard.before_attempt(operation_name="SendMessage")


@pytest.mark.parametrize(
    ("attempts", "longest_sleep"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 20.0), (40, 20.0)],  # 2**(n-1) s, capped at 20 s
)
def test_a_retry_is_made_only_if_the_longest_backoff_and_an_attempt_exactly_fit(
    attempts: int, longest_sleep: float
) -> None:
    clock = Clock()
    guard = AttemptGuard(2.0, clock=clock)
    assert guard.before_retry(attempts=attempts) is None, "no deadline: botocore decides"
    with deadline.within(Deadline(OUTER)):
        clock.now = OUTER - longest_sleep - 2.0
        assert guard.before_retry(attempts=attempts) is None, "fits: botocore's own handler decides"
        clock.now += 0.001
        assert guard.before_retry(attempts=attempts) is False, "a millisecond short: no retry"


# -- the machinery: arithmetic, scopes, per-invocation deadlines, real botocore clients -------------


def test_a_deadline_counts_down_and_keeps_time_back() -> None:
    limit = Deadline.after(10.0, now=100.0)
    assert limit.at == 110.0
    assert limit.left(now=104.0) == 6.0
    assert limit.left(now=111.0) == -1.0
    assert limit.earlier(2.5).at == 107.5
    assert limit.earlier(-3.0) == limit, "keeping back a negative time never extends a deadline"
    assert limit.fits(6.0, now=104.0) and not limit.fits(6.01, now=104.0)


def test_the_lambda_context_gives_the_invocations_end() -> None:
    limit = deadline.from_context(FakeLambdaContext(remaining_ms=12_000), now=50.0)
    assert limit == Deadline(62.0)
    assert deadline.from_context(object()) is None, "a context that cannot say gives no deadline"
    assert deadline.from_context(FakeLambdaContext(remaining_ms="soon")) is None  # type: ignore[arg-type]
    assert deadline.from_context(FakeLambdaContext(remaining_ms=float("nan"))) is None  # type: ignore[arg-type]


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
    def handler(event: str, context: FakeLambdaContext) -> str:
        seen.append(deadline.current_at())
        if event == "fail":
            raise RuntimeError("handler failed")
        return event

    start = time.monotonic()
    with deadline.within(Deadline(start + 1.0)):  # a stale deadline, as a warm container might keep
        assert handler("ok", FakeLambdaContext(remaining_ms=30_000)) == "ok"
        assert deadline.current_at() == start + 1.0, "the decorator restores what was there"
    with pytest.raises(RuntimeError):
        handler("fail", FakeLambdaContext(remaining_ms=5_000))
    assert deadline.current() is None
    first, second = seen
    assert first is not None and start + 2.0 < first <= time.monotonic() + 30.0, (
        "replaced, not narrowed to the stale start + 1.0 (a margin for a busy machine)"
    )
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
        client.send_message(QueueUrl=RETRY_URL, MessageBody="{}")  # 0.45 s left < 0.2 + 0.3


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
        sqs,
        RETRY_URL,
        DLQ_URL,
        clock=lambda: 1_700_000_100.0,
        request_seconds=3.0,
        verdict_seconds=2.0,
        monotonic=clock,
    )


def test_the_retry_path_starts_no_request_its_timeout_could_carry_past_the_time_kept() -> None:
    clock, sqs = Clock(0.0), FakeSqs()
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
    clock, sqs = Clock(0.0), FakeSqs()
    sender = SlowSender(clock, 8.5, failing=["op_b0"])
    with deadline.within(Deadline(10.0)):
        outcomes = processor(sqs, clock).process([record("a", parked("a")), record("b", parked("b"))], sender)
    assert sender.requests == [2]
    assert [(o.verdict, o.deferred) for o in outcomes] == [("delivered", False), ("retry", True)]
    assert sqs.sent == sqs.visibility == [], "1.5 s left: no visibility change or re-park was started"
