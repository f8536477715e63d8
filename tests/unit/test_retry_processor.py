"""dodo_cio.retry.service: RetryProcessor (one verdict per parked message, and what reaches SQS for each
verdict), then RetryService and the retry Lambda handler with the real TrackClient over a fake session."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from dodo_cio.configuration.settings import Secrets, Settings
from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.destination import Credentials
from dodo_cio.delivery.parking import ParkedDelivery
from dodo_cio.delivery.track import TrackClient
from dodo_cio.platform.env import ConfigError
from dodo_cio.retry import service as service_module
from dodo_cio.retry.service import RetryProcessor, RetryService
from dodo_cio.retry.verdicts import SqsRecord, failed_message_ids
from dodo_cio_local.lambda_context import FakeLambdaContext
from support.emf import emitted_metrics
from support.fake_sqs import FakeSqs
from support.parked import lambda_record, parked, record
from support.track_session import Answer as TrackAnswer
from support.track_session import TrackSession

RETRY_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
NOW = 1_800_000_000.75
HOUR = 3600
CAP = 900
ROOT = Path(__file__).resolve().parents[2]
RETRY_APP = ROOT / "functions" / "retry" / "app.py"
TRACK = "https://track.example.test"
ENV = {
    "POWERTOOLS_SERVICE_NAME": "dodo-customerio-retry-test",
    "POWERTOOLS_METRICS_NAMESPACE": "DodoCustomerioTest",
    "SSM_PARAMETER_PATH": "/dodo-customerio",
    "CUSTOMERIO_REGION": "us",
    "CUSTOMERIO_TRACK_URL": TRACK,
    "RETRY_QUEUE_URL": RETRY_URL,
    "DEAD_LETTER_QUEUE_URL": DLQ_URL,
}


# -- the sender: the real Track client over support.track_session's session -------------------------


def track(session: TrackSession) -> TrackClient:
    return TrackClient(TRACK, "site-1", "key-1", session=session)


def refused_207(*indexes: int) -> TrackAnswer:
    """A 207 naming the items at `indexes` as refused (reason "HTTP 207: bad <index>"), the rest accepted."""
    errors = [{"batch_index": i, "message": f"bad {i}"} for i in indexes]
    return TrackAnswer(207, json.dumps({"errors": errors}).encode())


def retry_after(seconds: int) -> TrackAnswer:
    return TrackAnswer(429, headers={"Retry-After": str(seconds)})


def sent(session: TrackSession) -> list[list[dict[str, Any]]]:
    """The ops of each request, in order."""
    return [ops for _, ops, *_ in session.requests]


# -- builders ---------------------------------------------------------------------------------


def wire_bytes(ops: Sequence[dict[str, Any]]) -> int:
    return len(json.dumps({"batch": list(ops)}, separators=(",", ":"), ensure_ascii=False).encode())


def processor(sqs: FakeSqs, rng: float = 0.5, clock: float = NOW) -> RetryProcessor:
    return RetryProcessor(sqs, RETRY_URL, DLQ_URL, BackoffPolicy(), clock=lambda: clock, rng=lambda: rng)


def outcome_of(outcomes: Sequence[Any], message_id: str) -> Any:
    (found,) = [o for o in outcomes if o.record.message_id == message_id]
    return found


def dlq_bodies(sqs: FakeSqs) -> list[ParkedDelivery]:
    return [ParkedDelivery.from_json(m["MessageBody"]) for m in sqs.sent_to(DLQ_URL)]


# -- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"ApproximateReceiveCount": "5"}, 5),
        ({}, 1),
        ({"ApproximateReceiveCount": "x"}, 1),
        ({"ApproximateReceiveCount": "0"}, 1),
        (None, 1),
    ],
)
def test_sqs_record_from_lambda(attributes: dict[str, str] | None, expected: int) -> None:
    raw = {"messageId": "m-1", "receiptHandle": "rh-1", "body": "{}", "attributes": attributes}
    assert SqsRecord.from_lambda(raw) == SqsRecord("m-1", "rh-1", "{}", expected)


# -- permanent failures -----------------------------------------------------------------------


def test_207_dead_letters_the_named_messages_with_only_their_failed_ops() -> None:
    sqs = FakeSqs()
    a, b, c = parked("a", attempts=1), parked("b", 2, attempts=3), parked("c")
    # Request order: a0, b0, b1, c0. Index 2 is b's second op.
    session = TrackSession(scripted=[refused_207(2)])
    records = [record("a", a), record("b", b, receive_count=4), record("c", c)]
    outcomes = processor(sqs).process(records, track(session))

    assert len(session.requests) == 1
    assert [o.verdict for o in outcomes] == ["delivered", "dead_letter", "delivered"]
    dead = outcome_of(outcomes, "id-b")
    assert dead.reason == "HTTP 207: bad 2"
    assert dead.delivered_ops == 1

    (message,) = sqs.sent_to(DLQ_URL)
    body = ParkedDelivery.from_json(message["MessageBody"])
    assert body.ops == [b.ops[1]], "only the failed op"
    assert body.last_error.kind == "permanent"
    assert body.last_error.reason == "HTTP 207: bad 2"
    assert body.last_error.status == 207
    assert body.last_error.at == 1_800_000_000
    assert body.attempts == 3 + 4
    assert (body.webhook_id, body.first_seen, body.event_time) == (b.webhook_id, b.first_seen, b.event_time)
    assert json.loads(message["MessageBody"])["last_error"]["permanent"] is True
    assert message["MessageAttributes"]["error_kind"]["StringValue"] == "permanent"
    assert message["MessageAttributes"]["event_type"]["StringValue"] == "payment.succeeded"
    assert sqs.sent_to(RETRY_URL) == [] and sqs.visibility == []
    assert failed_message_ids(outcomes) == set()


@pytest.mark.parametrize(
    ("answer", "reason", "status"),
    [
        pytest.param(refused_207(0, 1), "HTTP 207: bad 0", 207, id="207-every-op"),
        pytest.param(TrackAnswer(400), "HTTP 400", 400, id="400"),
    ],
)
def test_a_message_refused_whole_is_dead_lettered_whole(answer: TrackAnswer, reason: str, status: int) -> None:
    sqs = FakeSqs()
    p = parked("a", 2, attempts=1)
    outcomes = processor(sqs).process([record("a", p, 2)], track(TrackSession(scripted=[answer])))
    assert outcomes[0].verdict == "dead_letter"
    (body,) = dlq_bodies(sqs)
    assert (body.ops, body.attempts, body.last_error.reason, body.last_error.status) == (p.ops, 3, reason, status)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(parked("a"), 400, id="permanent"),
        pytest.param(parked("a", first_seen=NOW - 40 * HOUR), 503, id="expired"),
        pytest.param("{", 200, id="unreadable"),
    ],
)
def test_a_message_the_dlq_did_not_take_stays_for_retry(body: ParkedDelivery | str, status: int) -> None:
    sqs = FakeSqs(failing_queues=[DLQ_URL])
    outcomes = processor(sqs).process([record("a", body)], track(TrackSession(default=status)))
    assert outcomes[0].verdict == "retry"
    assert failed_message_ids(outcomes) == {"id-a"}
    assert sqs.sent == []
    assert len(sqs.visibility) == (0 if isinstance(body, str) else 1)


# -- transient and config failures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (TrackAnswer(500), "HTTP 500"),
        (TrackAnswer(503, b"busy"), "HTTP 503: busy"),
        (TrackAnswer(429), "HTTP 429"),
        (requests.ReadTimeout("read timed out"), "timeout: ReadTimeout"),
    ],
    ids=["500", "503", "429", "timeout"],
)
def test_transient_failures_are_retried_with_the_backoff_of_each_message(answer: Any, reason: str) -> None:
    sqs = FakeSqs()
    # attempts + receive count: a -> 1 + 1 = 2 (ceiling 60), b -> 4 + 3 = 7 (ceiling 900),
    # c -> 2 + 2 = 4 (ceiling 240). rng() = 0.5 waits half the ceiling.
    a, b, c = parked("a", attempts=1), parked("b", attempts=4), parked("c", 2, attempts=2)
    records = [record("a", a, 1), record("b", b, 3), record("c", c, 2)]
    outcomes = processor(sqs, rng=0.5).process(records, track(TrackSession(scripted=[answer])))
    assert [o.verdict for o in outcomes] == ["retry"] * 3
    assert [sqs.delay_for(f"rh-{t}", RETRY_URL) for t in "abc"] == [30, 450, 120]
    assert [o.delay for o in outcomes] == [30, 450, 120]
    assert all(o.reason == reason for o in outcomes)
    assert failed_message_ids(outcomes) == {"id-a", "id-b", "id-c"}
    assert sqs.sent == [], "a retried message is neither re-sent nor dead-lettered"


WAITS_60_AND_300 = TrackSession(scripted=[TrackAnswer(413), retry_after(60), retry_after(300)])  # one op each
CONFIG_AND_503 = TrackSession({"op_a0": 401, "op_a1": 503}, max_ops=1)


@pytest.mark.parametrize(
    ("n_ops", "attempts", "rng", "session", "delay"),
    [
        pytest.param(1, 1, 0.5, TrackSession(scripted=[retry_after(120)]), 120, id="retry-after-raises-a-jittered-30"),
        pytest.param(1, 9, 0.5, TrackSession(scripted=[retry_after(120)]), 450, id="retry-after-never-shortens"),
        pytest.param(2, 1, 0.0, WAITS_60_AND_300, 300, id="the-longest-retry-after-of-a-message-wins"),
        pytest.param(2, 1, 0.5, CONFIG_AND_503, 30, id="config-beside-transient-backs-off-as-transient-not-the-cap"),
    ],
)
def test_the_delay_of_a_retried_message(
    n_ops: int, attempts: int, rng: float, session: TrackSession, delay: int
) -> None:
    sqs = FakeSqs()
    outcomes = processor(sqs, rng=rng).process([record("a", parked("a", n_ops, attempts=attempts))], track(session))
    assert outcomes[0].verdict == "retry"
    assert sqs.delay_for("rh-a", RETRY_URL) == delay


def test_visibility_change_failing_still_retries() -> None:
    sqs = FakeSqs(visibility_fails=True)
    outcomes = processor(sqs).process([record("a", parked("a"))], track(TrackSession(default=503)))
    assert outcomes[0].verdict == "retry"
    assert outcomes[0].delay is None  # the queue's own visibility timeout brings it back
    assert failed_message_ids(outcomes) == {"id-a"}
    assert sqs.sent == []


# -- horizons ---------------------------------------------------------------------------------


KIND = {503: "transient", 401: "config"}


@pytest.mark.parametrize(
    ("status", "age", "delay", "gave_up"),
    [
        pytest.param(503, 35 * HOUR, 450, None, id="transient-inside-36h"),
        pytest.param(503, 37 * HOUR, None, "gave up after 37.0 h: HTTP 503: status 503", id="transient-past-36h"),
        pytest.param(401, 6 * 24 * HOUR, CAP, None, id="config-past-36h-inside-7d"),
        pytest.param(401, 7 * 24 * HOUR + 60, None, "gave up after 168.0 h: HTTP 401: status 401", id="config-past-7d"),
    ],
)
def test_the_horizon_is_36_hours_or_7_days_for_config_errors(
    status: int, age: int, delay: int | None, gave_up: str | None
) -> None:
    sqs = FakeSqs()
    p = parked("a", 2, attempts=100, first_seen=NOW - age)
    outcomes = processor(sqs, rng=0.5).process([record("a", p, 2)], track(TrackSession(default=status)))
    if gave_up is None:
        assert outcomes[0].verdict == "retry" and sqs.sent == []
        assert sqs.delay_for("rh-a", RETRY_URL) == delay
    else:
        assert (outcomes[0].verdict, outcomes[0].reason) == ("dead_letter", gave_up)
        (body,) = dlq_bodies(sqs)
        assert (body.ops, body.attempts, body.last_error.at) == (p.ops, 102, int(NOW))
        assert (body.last_error.kind, body.last_error.reason) == (KIND[status], gave_up)
        assert sqs.visibility == []


# -- unreadable bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "this is not json",
        json.dumps({**json.loads(parked("x").to_json()), "version": 2}),
        json.dumps([1, 2, 3]),
        json.dumps({**json.loads(parked("x").to_json()), "ops": []}),
        "",
    ],
    ids=["not-json", "version-2", "not-an-object", "no-ops", "empty"],
)
def test_unreadable_body_goes_to_the_dlq_untouched(body: str) -> None:
    sqs = FakeSqs()
    session = TrackSession()
    good = parked("good")
    outcomes = processor(sqs).process([record("bad", body), record("good", good)], track(session))
    assert outcome_of(outcomes, "id-bad").verdict == "dead_letter"
    assert outcome_of(outcomes, "id-good").verdict == "delivered"
    assert sent(session) == [good.ops], "the unreadable message sends nothing"
    (message,) = sqs.sent_to(DLQ_URL)
    assert message["MessageBody"] == (body or "(empty)")
    attributes = message["MessageAttributes"]
    assert attributes["error_kind"] == {"DataType": "String", "StringValue": "unreadable"}
    assert attributes["reason"]["StringValue"].startswith("unreadable parked message")
    assert attributes["dead_lettered_at"]["StringValue"] == str(int(NOW))
    assert outcome_of(outcomes, "id-bad").reason == attributes["reason"]["StringValue"]


# -- partial deliveries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waiting", "kind", "status", "attempts", "delay"),
    [
        pytest.param(1, "transient", 503, 2, 240, id="transient-attempt-5"),  # + receive count 3: ceiling 480, 0.5
        pytest.param(0, "config", 401, 20, CAP, id="config-waits-the-cap-no-more"),  # SQS's maximum delay
    ],
)
def test_half_delivered_message_is_reparked_with_the_remaining_ops(
    waiting: int, kind: str, status: int, attempts: int, delay: int
) -> None:
    sqs = FakeSqs()
    p = parked("a", 2, attempts=attempts)
    session = TrackSession({f"op_a{waiting}": status}, max_ops=1)
    outcomes = processor(sqs, rng=0.5).process([record("a", p, 3)], track(session))
    assert [len(ops) for ops in sent(session)] == [2, 1, 1]  # 413, then each half
    (outcome,) = outcomes
    assert outcome.verdict == "repark"
    assert outcome.delivered_ops == 1
    assert failed_message_ids(outcomes) == set(), "the original is deleted, not retried"
    assert sqs.visibility == []
    (message,) = sqs.sent_to(RETRY_URL)
    assert message["DelaySeconds"] == delay
    body = ParkedDelivery.from_json(message["MessageBody"])
    assert body.ops == [p.ops[waiting]]
    assert body.attempts == attempts + 3
    assert body.first_seen == p.first_seen, "the horizon still counts from the first sighting"
    assert (body.last_error.kind, body.last_error.status) == (kind, status)
    assert message["MessageAttributes"]["error_kind"]["StringValue"] == kind
    assert sqs.sent_to(DLQ_URL) == []


@pytest.mark.parametrize(
    ("ops", "waiting", "delivered"),
    [
        pytest.param(3, "op_a2", 1, id="permanent, delivered and waiting ops split between DLQ and retry queue"),
        # Nothing delivered, one op rejected for good: it goes to the DLQ once, and only the waiting
        # op is re-parked, so the next attempt does not dead-letter it a second time.
        pytest.param(2, "op_a1", 0, id="a permanent op beside a waiting one is not resent"),
    ],
)
def test_permanent_and_waiting_ops_part_ways(ops: int, waiting: str, delivered: int) -> None:
    sqs = FakeSqs()
    p = parked("a", ops, attempts=1)
    session = TrackSession({"op_a0": 400, waiting: 503}, max_ops=1)
    outcomes = processor(sqs, rng=0.5).process([record("a", p)], track(session))
    assert [(o.verdict, o.delivered_ops) for o in outcomes] == [("repark", delivered)]
    (dead,) = dlq_bodies(sqs)
    assert dead.ops == [p.ops[0]] and dead.last_error.kind == "permanent"
    (retry,) = sqs.sent_to(RETRY_URL)
    assert ParkedDelivery.from_json(retry["MessageBody"]).ops == [p.ops[-1]]
    assert retry["DelaySeconds"] == 30
    assert failed_message_ids(outcomes) == set()


def test_repark_failing_falls_back_to_retrying_the_whole_message() -> None:
    sqs = FakeSqs(failing_queues=[RETRY_URL])
    p = parked("a", 2, attempts=1)
    outcomes = processor(sqs, rng=0.5).process([record("a", p)], track(TrackSession({"op_a1": 503}, max_ops=1)))
    assert outcomes[0].verdict == "retry"
    assert sqs.delay_for("rh-a", RETRY_URL) == 30
    assert failed_message_ids(outcomes) == {"id-a"}


def test_a_message_spread_over_two_requests_is_reparked_with_the_undelivered_part() -> None:
    sqs = FakeSqs()
    big = parked("big", 20, attempts=1)
    for i, o in enumerate(big.ops):
        o["attributes"] = {"blob": f"{i:02d}" + "x" * 29_998}  # ~30 kB per op: 20 ops exceed 500 kB
    # The largest prefix of ops that fits in one request, found independently of the planner.
    fits = max(k for k in range(1, 21) if wire_bytes(big.ops[:k]) < 500_000)
    assert 1 < fits < 20
    session = TrackSession(scripted=[TrackAnswer(200)], default=503)
    outcomes = processor(sqs, rng=0.5).process([record("big", big)], track(session))
    assert [len(ops) for ops in sent(session)] == [fits, 20 - fits]
    (outcome,) = outcomes
    assert outcome.verdict == "repark"
    assert outcome.delivered_ops == fits
    (message,) = sqs.sent_to(RETRY_URL)
    assert ParkedDelivery.from_json(message["MessageBody"]).ops == big.ops[fits:]


def test_207_indexes_are_relative_to_each_half_after_a_413() -> None:
    sqs = FakeSqs()
    a, b, c = parked("a"), parked("b"), parked("c", 2)
    session = TrackSession(scripted=[TrackAnswer(413), refused_207(1), refused_207(1)])
    outcomes = processor(sqs).process([record("a", a), record("b", b), record("c", c)], track(session))
    # [a0 b0 c0 c1] -> 413 -> [a0 b0] and [c0 c1]; index 1 of each half is b0 and c1.
    assert [[o["id"] for o in ops] for ops in sent(session)] == [
        ["op_a0", "op_b0", "op_c0", "op_c1"],
        ["op_a0", "op_b0"],
        ["op_c0", "op_c1"],
    ]
    assert [o.verdict for o in outcomes] == ["delivered", "dead_letter", "dead_letter"]
    assert [body.ops for body in dlq_bodies(sqs)] == [b.ops, [c.ops[1]]]


# -- a whole outage, driven through the processor ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "horizon", "fewest", "most"),
    [
        # Mean wait at the cap is 450 s: about 129600 / 450 = 288 receives.
        pytest.param(503, 36 * HOUR, 201, 399, id="transient-36h"),
        # Every wait is the full 900 s cap (+ 1 s for the run): after 672 waits 604800 s have passed.
        pytest.param(401, 7 * 24 * HOUR, 673, 673, id="config-7d"),
    ],
)
def test_outage_longer_than_the_horizon_ends_in_the_dlq_well_before_the_receive_backstop(
    status: int, horizon: int, fewest: int, most: int
) -> None:
    """Redeliver one message after each visibility delay until the processor gives up on it; the template's
    maxReceiveCount backstop (1000) must never be what ends a delivery."""
    rng = random.Random(42)
    clock = {"now": NOW}
    sqs = FakeSqs()
    proc = RetryProcessor(sqs, RETRY_URL, DLQ_URL, clock=lambda: clock["now"], rng=rng.random)
    p = parked("a", attempts=1, first_seen=NOW)
    sender = track(TrackSession(default=status))
    receives = 0
    while True:
        receives += 1
        (outcome,) = proc.process([record("a", p, receives)], sender)
        if outcome.verdict != "retry":
            break
        clock["now"] += sqs.visibility[-1]["VisibilityTimeout"] + 1  # + 1 s for the Lambda run
        assert receives < 1000
    print(f"dead-lettered after {receives} receives, {(clock['now'] - NOW) / HOUR:.1f} h")
    assert outcome.verdict == "dead_letter"
    assert horizon <= clock["now"] - NOW <= horizon + CAP + 1
    (body,) = dlq_bodies(sqs)
    assert body.attempts == 1 + receives
    assert fewest <= receives <= most


# -- RetryService and the retry Lambda handler: fakes ------------------------------------------


class FakeSecrets:
    value: tuple[str | None, str | None] | ConfigError = ("site-1", "key-1")  # a test may set its own

    def delivery_credentials(self) -> Credentials:
        """As `SecretStore.delivery_credentials` for a Track deployment: ConfigError when missing."""
        if isinstance(self.value, ConfigError):
            raise self.value
        return Secrets((), *self.value).delivery_credentials()


class FakeMetrics(dict[str, float]):
    """Each metric's total (every one a count)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        assert unit == "Count"
        self[name] = self.get(name, 0) + value


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, object, dict[str, Any]]] = []

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("info", msg, kwargs))

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("warning", msg, kwargs))

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("error", msg % args if args else msg, kwargs))


class CountingLimiter:
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self) -> None:
        self.acquired += 1


# -- builders ---------------------------------------------------------------------------------


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**ENV, **overrides})


class Harness:
    def __init__(
        self,
        session: TrackSession | None = None,
        secrets: FakeSecrets | None = None,
        settings_: Settings | None = None,
        rng: float = 0.5,
    ) -> None:
        self.sqs = FakeSqs()
        self.session = session or TrackSession()
        self.secrets = secrets or FakeSecrets()
        self.metrics = FakeMetrics()
        self.logger = FakeLogger()
        self.limiter = CountingLimiter()
        self.sessions_made = 0

        def session_factory() -> TrackSession:
            self.sessions_made += 1
            return self.session

        self.service = RetryService(
            settings=settings_ or settings(),
            secrets=self.secrets,  # type: ignore[arg-type]
            metrics=self.metrics,
            logger=self.logger,
            sqs_factory=lambda: self.sqs,
            session_factory=session_factory,
            clock=lambda: float(NOW),
            rng=lambda: rng,
            limiter=self.limiter,  # type: ignore[arg-type]
        )


# -- RetryService -----------------------------------------------------------------------------


def test_one_paced_request_delivers_the_whole_batch_without_touching_sqs() -> None:
    h = Harness()
    outcomes = h.service.handle([lambda_record(t, parked(t, n)) for t, n in (("a", 2), ("b", 1), ("c", 3))])
    assert [(o.verdict, o.delivered_ops) for o in outcomes] == [("delivered", 2), ("delivered", 1), ("delivered", 3)]
    ((path, ops, headers, _),) = h.session.requests
    assert path == "/batch"
    assert [o["id"] for o in ops] == ["op_a0", "op_a1", "op_b0", "op_c0", "op_c1", "op_c2"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"site-1:key-1").decode()
    assert h.metrics == {"RetryRequests": 1, "RetryDelivered": 3}
    assert h.limiter.acquired == 1
    assert h.sqs.sent == [] and h.sqs.visibility == []


@pytest.mark.parametrize(
    "secret",
    [(None, None), ("site-1", None), (None, "key-1"), ConfigError("could not read SSM parameters: Boom")],
    ids=["both-missing", "no-key", "no-site", "ssm-error"],
)
def test_missing_credentials_retry_everything_with_the_cap(secret: Any) -> None:
    secrets = FakeSecrets()
    secrets.value = secret
    h = Harness(secrets=secrets, rng=0.0)
    outcomes = h.service.handle([lambda_record("a", parked("a")), lambda_record("b", parked("b", 2))])
    assert [o.verdict for o in outcomes] == ["retry", "retry"]
    assert [h.sqs.delay_for("rh-a", RETRY_URL), h.sqs.delay_for("rh-b", RETRY_URL)] == [CAP, CAP]
    assert h.session.requests == [] and h.sessions_made == 0
    assert h.metrics == {"ConfigError": 1, "RetryRequests": 0, "RetryScheduled": 2}
    missing = "Customer.io credentials are missing in SSM (customerio-site-id, customerio-api-key)"
    expected = str(secret) if isinstance(secret, ConfigError) else missing
    assert {o.reason for o in outcomes} == {expected}
    assert any(level == "error" and expected in str(msg) for level, msg, _ in h.logger.lines)


@pytest.mark.parametrize("missing", ["DEAD_LETTER_QUEUE_URL", "RETRY_QUEUE_URL"])
def test_missing_queue_urls_raise_config_error(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    h = Harness(settings_=Settings.from_env(env))
    with pytest.raises(ConfigError, match="DEAD_LETTER_QUEUE_URL"):
        h.service.handle([lambda_record("a", parked("a"))])
    assert h.session.requests == []


def test_the_client_is_kept_across_invocations_and_rebuilt_on_rotation() -> None:
    h = Harness()
    h.service.handle([lambda_record("a", parked("a"))])
    h.service.handle([lambda_record("b", parked("b"))])
    assert h.sessions_made == 1
    h.secrets.value = ("site-1", "key-2")
    h.service.handle([lambda_record("c", parked("c"))])
    assert h.sessions_made == 2
    assert h.session.requests[-1][2]["Authorization"] == "Basic " + base64.b64encode(b"site-1:key-2").decode()


def test_the_default_limiter_paces_to_the_container_share(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real = service_module.RateLimiter

    def frozen_clock_limiter(per_second: float) -> Any:
        # The real limiter, on a clock that does not move: each sleep is the pacing it imposes.
        return real(per_second, clock=lambda: 0.0, sleep=sleeps.append)

    monkeypatch.setattr(service_module, "RateLimiter", frozen_clock_limiter)
    session = TrackSession(max_ops=1)
    h = Harness(session, settings_=settings(CUSTOMERIO_RATE_LIMIT_RPS="10", RETRY_MAX_CONCURRENCY="4"))
    h.service.limiter = None
    h.service.handle([lambda_record(t, parked(t)) for t in "ab"])  # 3 requests: 413, then one each
    assert len(session.requests) == 3
    # 10 rps, half of it ingest's (dodo_cio.delivery.budget), the rest shared by 4 containers: one per 0.8 s.
    assert sleeps == [pytest.approx(0.8), pytest.approx(1.6)]


# -- the Lambda handler -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def retry_app() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)
        spec = importlib.util.spec_from_file_location("retry_app", RETRY_APP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def install(retry_app: ModuleType, session: TrackSession) -> Harness:
    h = Harness(session)
    h.service.metrics = retry_app.metrics  # the handler's own Metrics: flushed by @log_metrics
    retry_app._service = h.service
    return h


@pytest.fixture(autouse=True)
def _reset_service(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "retry_app" in request.fixturenames:
        request.getfixturevalue("retry_app")._service = None


def test_mixed_fates_count_every_request_and_verdict(retry_app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    # One op per request: the 4-message batch (d has 2 ops) is split by 413s into 9 requests.
    session = TrackSession({"op_b0": 503, "op_c0": 400, "op_d1": 503}, max_ops=1)
    h = install(retry_app, session)
    event = {"Records": [lambda_record(t, parked(t, 2 if t == "d" else 1)) for t in "abcd"]}
    response = retry_app.lambda_handler(event, FakeLambdaContext(function_name="dodo-customerio-retry"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "id-b"}]}, "only the retried message stays"
    assert [len(ops) for _, ops, _, _ in session.requests] == [5, 2, 1, 1, 3, 1, 2, 1, 1]
    assert emitted_metrics(capsys.readouterr().out) == {
        "RetryRequests": 9,
        "RetryDelivered": 1,
        "RetryScheduled": 1,
        "DeadLettered": 1,
        "RetryReparked": 1,
    }
    assert h.limiter.acquired == 9
    assert [c["ReceiptHandle"] for c in h.sqs.visibility] == ["rh-b"]
    assert h.sqs.delay_for("rh-b", RETRY_URL) == 30  # attempt 1 + 1 = 2: ceiling 60, rng 0.5
    assert len(h.sqs.sent_to(DLQ_URL)) == 1
    (message,) = h.sqs.sent_to(RETRY_URL)
    assert [o["id"] for o in ParkedDelivery.from_json(message["MessageBody"]).ops] == ["op_d1"]
    warned = [kw["extra"] for level, _, kw in h.logger.lines if level == "warning"]
    assert {(w["message_id"], w["verdict"]) for w in warned} == {
        ("id-b", "retry"),
        ("id-c", "dead_letter"),
        ("id-d", "repark"),
    }


@pytest.mark.parametrize(
    ("session", "dlq_down", "records", "failed"),
    [
        pytest.param(TrackSession(scripted=[TrackAnswer(503, b"down")]), False, "abc", "abc", id="all-failed-no-raise"),
        pytest.param(TrackSession(), False, "ab", "", id="all-delivered"),
        # An unreadable body (judged first) the DLQ did not take must stay on the queue: named, in its place.
        pytest.param(TrackSession({"op_c0": 503}, max_ops=1), True, "ac-d", ["c", "bad"], id="unreadable-dlq-down"),
        pytest.param(TrackSession(), False, "-a", "", id="unreadable-dead-lettered"),
        pytest.param(TrackSession(), False, "", "", id="no-records"),
    ],
)
def test_handler_names_exactly_the_messages_that_must_stay(
    retry_app: ModuleType, session: TrackSession, dlq_down: bool, records: str, failed: Sequence[str]
) -> None:
    h = install(retry_app, session)
    if dlq_down:
        h.sqs.failing_queues.add(DLQ_URL)
    event = {"Records": [lambda_record("bad", "{") if t == "-" else lambda_record(t, parked(t)) for t in records]}
    response = retry_app.lambda_handler(event, FakeLambdaContext(function_name="dodo-customerio-retry"))
    assert response == {"batchItemFailures": [{"itemIdentifier": f"id-{t}"} for t in failed]}
    if not records:
        assert retry_app.lambda_handler({}, FakeLambdaContext(function_name="x")) == response
        assert h.session.requests == []


def test_handler_builds_its_service_from_the_environment(
    retry_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    retry_app._service = None
    service = retry_app.service()
    assert service is retry_app.service(), "one service per container"
    assert (service.settings.retry_queue_url, service.settings.dead_letter_queue_url) == (RETRY_URL, DLQ_URL)
    assert service.settings.track_url == TRACK


def test_handler_reports_messages_it_had_no_time_for(retry_app: ModuleType) -> None:
    # 9 s left: 2.5 s kept to answer and 4.5 s for verdicts leave no room for a 7 s request.
    h = install(retry_app, TrackSession())
    event = {"Records": [lambda_record(t, parked(t)) for t in "ab"]}
    context = FakeLambdaContext(function_name="dodo-customerio-retry", remaining_ms=9_000)
    response = retry_app.lambda_handler(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "id-a"}, {"itemIdentifier": "id-b"}]}
    assert h.session.requests == [] and h.sqs.sent == [] and h.sqs.visibility == []


def test_importing_the_handler_leaves_out_what_the_first_record_does_not_need() -> None:
    # Cold start: Powertools' batch utility (asyncio and every event source's data classes, about
    # 45 ms) is not used, and boto3 is imported by the first AWS call, not by the import.
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('retry_app', {str(RETRY_APP)!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "names = ('aws_lambda_powertools.utilities.batch', 'aws_lambda_powertools.utilities.data_classes', "
        "'asyncio', 'boto3'); "
        "print(','.join(n for n in names if n in sys.modules))"
    )
    env = {**os.environ, **ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env)
    assert done.stdout.strip() == ""
