"""RetryService and the retry Lambda handler, with the real TrackClient over a fake HTTP session."""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dodo_cio.configuration.settings import Secrets, Settings
from dodo_cio.delivery.destination import Credentials
from dodo_cio.delivery.parking import ParkedDelivery
from dodo_cio.platform.env import ConfigError
from dodo_cio.retry import service as service_module
from dodo_cio.retry.service import RetryService
from dodo_cio_local.lambda_context import FakeLambdaContext
from support.emf import emitted_metrics
from support.fake_sqs import FakeSqs
from support.g3_parked import NOW, lambda_record, parked
from support.g3_track import Answer, TrackSession

ROOT = Path(__file__).resolve().parents[2]
RETRY_APP = ROOT / "functions" / "retry" / "app.py"
TRACK = "https://track.example.test"
RETRY_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bridge-retry-dlq"
CAP = 900
ENV = {
    "POWERTOOLS_SERVICE_NAME": "dodo-customerio-retry-test",
    "POWERTOOLS_METRICS_NAMESPACE": "DodoCustomerioTest",
    "SSM_PARAMETER_PATH": "/dodo-customerio",
    "CUSTOMERIO_REGION": "us",
    "CUSTOMERIO_TRACK_URL": TRACK,
    "RETRY_QUEUE_URL": RETRY_URL,
    "DEAD_LETTER_QUEUE_URL": DLQ_URL,
}


# -- fakes ------------------------------------------------------------------------------------


class FakeSecrets:
    def __init__(self, site_id: str | None = "site-1", api_key: str | None = "key-1") -> None:
        self.value: tuple[str | None, str | None] | ConfigError = (site_id, api_key)

    def delivery_credentials(self) -> Credentials:
        """As `SecretStore.delivery_credentials` for a Track deployment: ConfigError when missing."""
        if isinstance(self.value, ConfigError):
            raise self.value
        return Secrets((), *self.value).delivery_credentials()


class FakeMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, float]] = []

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.calls.append((name, unit, value))

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, unit, value in self.calls:
            assert unit == "Count"
            out[name] = out.get(name, 0) + value
        return out


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


def test_one_request_delivers_the_whole_batch() -> None:
    h = Harness()
    records = [
        lambda_record("a", parked("a", 2)),
        lambda_record("b", parked("b")),
        lambda_record("c", parked("c")),
    ]
    outcomes = h.service.handle(records)
    assert [o.verdict for o in outcomes] == ["delivered"] * 3
    ((path, ops, headers, _),) = h.session.requests
    assert path == "/batch"
    assert [o["id"] for o in ops] == ["op_a0", "op_a1", "op_b0", "op_c0"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"site-1:key-1").decode()
    assert h.metrics.totals() == {"RetryRequests": 1, "RetryDelivered": 3}
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
    assert h.metrics.totals() == {"ConfigError": 1, "RetryRequests": 0, "RetryScheduled": 2}
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
        pytest.param(TrackSession(scripted=[Answer(503, b"down")]), False, "abc", "abc", id="all-failed-no-raise"),
        pytest.param(TrackSession(), False, "ab", "", id="all-delivered"),
        # An unreadable body the DLQ did not take must stay on the queue: named, in its place.
        pytest.param(TrackSession({"op_c0": 503}, max_ops=1), True, "a-c", ["bad", "c"], id="unreadable-dlq-down"),
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
