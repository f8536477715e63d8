"""`make run`: the real ingest handler behind a local HTTP endpoint, AWS emulated by moto on loopback.

Why not `sam local start-api`: it needs Docker and real (or LocalStack) AWS for SSM and SQS. Here the
same `functions/ingest/app.py:lambda_handler` runs in this process; moto, in server mode on a
loopback port (`local_aws.py`), answers its boto3 calls, so the operator commands can reach the same
queues from another terminal (`dodo-cio dlq --local`); the queues are created with the attributes
template.yaml gives them; Customer.io is the local Track sandbox unless real credentials are given.
Each HTTP request becomes an API Gateway HTTP API v2 event, built as API Gateway builds it (see
`apigw.py`).

Parked deliveries are drained as the deployed stack drains them: `functions/retry/app.py` runs in a
background thread fed by `event_source.SqsEventSource` (Lambda's SQS poller, which moto does not
emulate), with the batch size and partial-batch setting of the template's RetryFunction event. The
backoff runs `--backoff-scale` times the real schedule (default 0.01: waits of 1-9 s instead of up to
15 min; horizons scaled alike), so a demo sees retries in seconds; `--backoff-scale 1` is production.

Only stdlib is imported at module level: `cli.py` imports this to build its argument parser.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, ROUTE_KEY, WEBHOOK_PATH, http_api_event, request_id
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_aws import DEFAULT_AWS_PORT, LocalAws, LocalAwsError, invoke_api
from dodo_cio_local.local_template import (  # noqa: F401 - also re-exported: tests, bench and loadtest use them
    DEFAULT_TEMPLATE,
    REGION,
    REPO_ROOT,
    STACK_NAME,
    STATE_TABLE,
    LocalRunError,
    QueueSpec,
    TemplateSettings,
    create_state_table,
    read_template,
    state_table_spec,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType as QueueAttributeName

    from dodo_cio.backoff import BackoffPolicy
    from dodo_cio_local.event_source import PollResult
    from dodo_cio_local.sandbox import TrackSandbox

INGEST_DIR: Final = REPO_ROOT / "functions" / "ingest"
RETRY_APP: Final = REPO_ROOT / "functions" / "retry" / "app.py"
RETRY_MODULE_NAME: Final = "retry_app"  # both handlers are modules named `app`
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 3000
DEFAULT_SANDBOX_PORT: Final = 4010
# The local run's retry schedule: this fraction of the real one (base, cap and horizons alike).
BACKOFF_SCALE_ENV: Final = "DODO_CIO_BACKOFF_SCALE"
DEFAULT_BACKOFF_SCALE: Final = 0.01
DEFAULT_DRAIN_INTERVAL: Final = 1.0  # seconds between polls of an empty retry queue
# Local sandbox credentials; only the sandbox accepts them.
SANDBOX_SITE_ID: Final = "local-site"
SANDBOX_API_KEY: Final = "local-api-key"
# API Gateway HTTP APIs accept payloads up to 10 MB; anything larger never reaches Lambda.
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
# Environment that would send boto3 somewhere other than moto (or carry real credentials into it).
_AWS_ENV_TO_CLEAR: Final = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)  # and every AWS_ENDPOINT_URL_<SERVICE>
# The ingest function's variables the user may override from the shell, like `sam local --env-vars`.
_USER_OVERRIDABLE: Final = (
    "SSM_PARAMETER_PATH",
    "CUSTOMERIO_REGION",
    "CUSTOMERIO_IDENTIFIER",
    "CUSTOMERIO_CONNECT_TIMEOUT",
    "CUSTOMERIO_READ_TIMEOUT",
    "SECRETS_MAX_AGE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_LOGGER_LOG_EVENT",
    "POWERTOOLS_METRICS_DISABLED",
)


# --- The bridge ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalBridgeInfo:
    webhook_url: str
    status_url: str
    sandbox_url: str | None  # None when real Customer.io credentials are used
    track_url: str
    secret: str
    queue_url: str
    dlq_url: str
    quarantine_url: str = ""
    aws_endpoint: str = ""  # moto's server: SQS, SSM and DynamoDB for other processes
    queue_arns: dict[str, str] = field(default_factory=dict)  # queue URL -> ARN
    ingest_function: str = f"{STACK_NAME}-IngestFunction"  # its Invoke API is at the webhook URL's origin


@dataclass(frozen=True, slots=True)
class Invocation:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float


def _load_ingest_module() -> ModuleType:
    """functions/ingest/app.py itself (it imports its sibling `customize`, so that dir goes on sys.path)."""
    if str(INGEST_DIR) not in sys.path:
        sys.path.insert(0, str(INGEST_DIR))
    target = (INGEST_DIR / "app.py").resolve()
    existing = sys.modules.get("app")
    if existing is None:
        return importlib.import_module("app")
    if Path(getattr(existing, "__file__", "") or "").resolve() == target:
        return existing
    # Another `app` (e.g. functions/retry) is loaded: load ours under a private name.
    name = "dodo_cio_local_ingest_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, target)
    if spec is None or spec.loader is None:
        raise LocalRunError(f"cannot load {target}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_retry_module() -> ModuleType:
    """functions/retry/app.py under its own name (`retry_app`): both handlers are modules named `app`.

    Loaded once per process, like a warm container; import it after setting the environment
    (Powertools reads its service name and namespace at import time).
    """
    target = RETRY_APP.resolve()
    existing = sys.modules.get(RETRY_MODULE_NAME)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == target:
        return existing
    spec = importlib.util.spec_from_file_location(RETRY_MODULE_NAME, target)
    if spec is None or spec.loader is None:
        raise LocalRunError(f"cannot load {target}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[RETRY_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(RETRY_MODULE_NAME, None)
        raise
    return module


def _reset_handler_state(module: ModuleType | None) -> None:
    """Drop the warm container's cached service, AWS clients and Powertools' cached parameters.

    The container's boto3 clients (dodo_cio.aws, and the SSM provider built on them) point at the
    emulator's port: a later run, or a test under mock_aws, must build its own.
    """
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS  # noqa: PLC0415

    from dodo_cio import aws  # noqa: PLC0415

    if module is not None:
        service = getattr(module, "_service", None)
        # IngestService and RetryService keep their TrackClient in a ClientCache (`_clients`).
        cache = getattr(service, "_clients", None)
        for client in (getattr(service, "_client", None), getattr(cache, "_client", None)):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        module._service = None  # type: ignore[attr-defined]
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    DEFAULT_PROVIDERS.pop("ssm", None)
    aws.reset()


def backoff_scale_from_env(env: Mapping[str, str] | None = None) -> float:
    """$DODO_CIO_BACKOFF_SCALE, else the local default; must be in (0, 1]."""
    raw = (os.environ if env is None else env).get(BACKOFF_SCALE_ENV, "").strip()
    if not raw:
        return DEFAULT_BACKOFF_SCALE
    try:
        return _check_scale(float(raw))
    except ValueError:
        raise LocalRunError(f"{BACKOFF_SCALE_ENV} must be a number in (0, 1], not {raw!r}") from None


def _check_scale(scale: float) -> float:
    if not 0 < scale <= 1:  # also rejects nan
        raise ValueError(f"the backoff scale must be in (0, 1], not {scale!r}")
    return scale


def scaled_backoff(scale: float) -> BackoffPolicy:
    """The production BackoffPolicy with base, cap and both horizons multiplied by `scale`.

    Scaling all four keeps the schedule's proportions, including the template's arithmetic that a
    delivery reaches its horizon long before maxReceiveCount (SQS's 1 s minimum visibility aside).
    """
    from dodo_cio.backoff import BackoffPolicy  # noqa: PLC0415

    real = BackoffPolicy()
    if scale == 1:
        return real
    return BackoffPolicy(
        base=real.base * scale,
        cap=real.cap * scale,
        transient_horizon=max(1, round(real.transient_horizon * scale)),
        config_horizon=max(1, round(real.config_horizon * scale)),
    )


def describe_backoff(policy: BackoffPolicy) -> str:
    return (
        f"waits 1-{max(1, int(policy.cap))} s, gives up after {policy.transient_horizon / 3600:.3g} h "
        f"(transient) / {policy.config_horizon / 3600:.3g} h (configuration errors)"
    )


class LocalBridge:
    """moto + queues + SSM + (sandbox) + HTTP endpoint around the real ingest handler.

    `start()` then `stop()`; tests run it on port 0. Environment variables it sets are restored by
    `stop()`, and the handler modules' cached services are reset on both ends. The emulated AWS
    listens on 127.0.0.1:`aws_port` (0: any free port).

    With `drain` (the default) the retry function drains the retry queue in a background thread,
    as its SQS event source would; `backoff_scale` (default: $DODO_CIO_BACKOFF_SCALE, else 0.01)
    shrinks its schedule so retries happen in seconds; `drain_interval` is the pause after a poll
    that found nothing visible.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        sandbox_port: int = DEFAULT_SANDBOX_PORT,
        aws_port: int = 0,
        secret: str = DEV_WEBHOOK_SECRET,
        template: Path = DEFAULT_TEMPLATE,
        customerio_site_id: str | None = None,
        customerio_api_key: str | None = None,
        log: Callable[[str], None] | None = None,
        drain: bool = True,
        backoff_scale: float | None = None,
        drain_interval: float = DEFAULT_DRAIN_INTERVAL,
    ) -> None:
        if bool(customerio_site_id) != bool(customerio_api_key):
            raise LocalRunError("set both CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY, or neither")
        try:
            self.backoff_scale = backoff_scale_from_env() if backoff_scale is None else _check_scale(backoff_scale)
        except ValueError as exc:
            raise LocalRunError(str(exc)) from None
        self.drain = drain
        self.drain_interval = drain_interval
        self.host = host
        self.port = port
        self.sandbox_port = sandbox_port
        self.secret = secret
        self.template = template
        self.real_customerio = bool(customerio_site_id)
        self._site_id = customerio_site_id or SANDBOX_SITE_ID
        self._api_key = customerio_api_key or SANDBOX_API_KEY
        self._log = log
        # One invocation at a time: a single warm Lambda container never runs two events at once,
        # and the handler modules' state is the container's. The status page and the retry drain
        # take the same lock; commands from another terminal reach moto's server concurrently, as
        # operators reach SQS while the functions run.
        self.lock = threading.Lock()
        self.sandbox: TrackSandbox | None = None
        self.info: LocalBridgeInfo | None = None
        self.settings: TemplateSettings | None = None
        self.handler_module: ModuleType | None = None
        self.retry_module: ModuleType | None = None
        self.backoff: BackoffPolicy | None = None
        self._drain_stop = threading.Event()
        self._drain_thread: threading.Thread | None = None
        self.aws = LocalAws(aws_port, REGION)
        self._queue_arns: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.bound_port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalBridgeInfo:
        if self.info is not None:
            raise RuntimeError("the local bridge is already running")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalBridgeInfo:
        from dodo_cio.signature import parse_secrets  # noqa: PLC0415

        try:
            parse_secrets(self.secret)
        except ValueError as exc:
            raise LocalRunError(f"webhook secret: {exc}") from None
        settings = self.settings = read_template(self.template)
        function_env = dict(settings.environment)
        for key in _USER_OVERRIDABLE:
            if os.environ.get(key):
                function_env[key] = os.environ[key]
        ssm_path = (function_env.get("SSM_PARAMETER_PATH") or "/dodo-customerio").rstrip("/")

        queue_url, dlq_url, quarantine_url = self._start_aws(settings, ssm_path)
        track_url, sandbox_url = self._start_customerio(function_env.get("CUSTOMERIO_REGION") or "us")
        function_env.update(
            SSM_PARAMETER_PATH=ssm_path,
            CUSTOMERIO_TRACK_URL=track_url,
            RETRY_QUEUE_URL=queue_url,
            DEAD_LETTER_QUEUE_URL=dlq_url,
            QUARANTINE_QUEUE_URL=quarantine_url,
            STATE_TABLE_NAME=STATE_TABLE,
        )
        function_env.setdefault("POWERTOOLS_SERVICE_NAME", "dodo-customerio-bridge")
        function_env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DodoCustomerioBridge")
        if self.drain:
            self._merge_retry_environment(function_env, settings, queue_url, dlq_url)
        for key, value in function_env.items():
            self._setenv(key, value)
        self._load_handler(function_env["POWERTOOLS_METRICS_NAMESPACE"])
        if self.drain:
            self._load_retry_handler(function_env["POWERTOOLS_METRICS_NAMESPACE"])
        base = self._start_http()
        self.info = LocalBridgeInfo(
            webhook_url=base + WEBHOOK_PATH,
            status_url=base + "/__local",
            sandbox_url=sandbox_url,
            track_url=track_url,
            secret=self.secret,
            queue_url=queue_url,
            dlq_url=dlq_url,
            quarantine_url=quarantine_url,
            aws_endpoint=self.aws.endpoint or "",
            queue_arns=self._queue_arns,
        )
        if self.drain:
            self._start_drain(settings, queue_url)
        return self.info

    def _start_aws(self, settings: TemplateSettings, ssm_path: str) -> tuple[str, str, str]:
        """moto's server on loopback, and only it reachable: no profile, no other endpoint, no real credentials."""
        for key in (*_AWS_ENV_TO_CLEAR, *(k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_"))):
            self._setenv(key, None)
        self._setenv("AWS_DEFAULT_REGION", REGION)
        self._setenv("AWS_REGION", REGION)
        try:
            self.aws.start()
        except LocalAwsError as exc:
            raise LocalRunError(str(exc)) from None
        for key, value in self.aws.environment().items():  # endpoint URL and placeholder credentials
            self._setenv(key, value)
        _reset_handler_state(None)  # no client cached before the endpoint was set
        queue_url, dlq_url, quarantine_url = self._create_queues(settings)
        create_state_table(self.aws.client("dynamodb"), settings.state_table)
        self._seed_ssm(ssm_path)
        return queue_url, dlq_url, quarantine_url

    def _start_customerio(self, region: str) -> tuple[str, str | None]:
        """(Track base URL, sandbox URL or None): the sandbox unless real credentials were given."""
        if self.real_customerio:
            from dodo_cio.customerio import track_base_url  # noqa: PLC0415

            try:
                return track_base_url(region, os.environ.get("CUSTOMERIO_TRACK_URL")), None
            except ValueError as exc:
                raise LocalRunError(str(exc)) from None
        from dodo_cio_local.sandbox import TrackSandbox  # noqa: PLC0415

        sandbox = TrackSandbox(site_id=self._site_id, api_key=self._api_key, host="127.0.0.1", port=self.sandbox_port)
        try:
            url = sandbox.start()
        except OSError as exc:
            raise LocalRunError(
                f"cannot listen on 127.0.0.1:{self.sandbox_port} for the Customer.io sandbox ({exc}); "
                "pass --sandbox-port"
            ) from None
        self.sandbox = sandbox
        return url, url

    def _load_handler(self, metrics_namespace: str) -> None:
        # Imported after the environment is set: Powertools reads its namespace at import time.
        self.handler_module = _load_ingest_module()
        metrics = getattr(self.handler_module, "metrics", None)
        if metrics is not None and not metrics.namespace:
            # Imported earlier (by a test) without the variable: give it what Lambda would have.
            metrics.namespace = metrics_namespace
        _reset_handler_state(self.handler_module)

    # -- the retry drain ------------------------------------------------------------------------

    def _merge_retry_environment(
        self, function_env: dict[str, str], settings: TemplateSettings, queue_url: str, dlq_url: str
    ) -> None:
        """Add the RetryFunction's variables: both handlers live in this process, with one environment."""
        retry_env = dict(settings.retry_environment)
        for key in _USER_OVERRIDABLE:
            if key in retry_env and os.environ.get(key):
                retry_env[key] = os.environ[key]
        for key in ("SSM_PARAMETER_PATH", "CUSTOMERIO_TRACK_URL", "RETRY_QUEUE_URL", "STATE_TABLE_NAME"):
            retry_env[key] = function_env[key]
        retry_env["DEAD_LETTER_QUEUE_URL"] = dlq_url
        for key, value in retry_env.items():
            if function_env.setdefault(key, value) != value:
                raise LocalRunError(
                    f"template.yaml gives IngestFunction and RetryFunction different {key} "
                    f"({function_env[key]!r} / {value!r}); the local run hosts both in one process"
                )

    def _load_retry_handler(self, metrics_namespace: str) -> None:
        """functions/retry/app.py with its service built now, on the (scaled) local backoff."""
        from dodo_cio.config import ConfigError  # noqa: PLC0415

        module = self.retry_module = load_retry_module()
        metrics = getattr(module, "metrics", None)
        if metrics is not None and not metrics.namespace:
            metrics.namespace = metrics_namespace
        _reset_handler_state(module)
        self.backoff = scaled_backoff(self.backoff_scale)
        try:
            service = module.service()  # the handler's own construction, from the environment
        except ConfigError as exc:
            raise LocalRunError(f"retry function: {exc}") from None
        # RetryService.policy is the documented way to choose a schedule; nothing ran with the old one.
        service.policy = self.backoff

    def _start_drain(self, settings: TemplateSettings, queue_url: str) -> None:
        from dodo_cio_local.event_source import SqsEventSource  # noqa: PLC0415

        module = self.retry_module
        assert module is not None

        def context() -> FakeLambdaContext:
            return FakeLambdaContext(
                f"{STACK_NAME}-RetryFunction",
                memory_limit_in_mb=settings.retry_memory_mb,
                timeout_seconds=settings.retry_timeout_seconds,
            )

        source = SqsEventSource(
            self.aws.client("sqs"),
            queue_url,
            module.lambda_handler,
            batch_size=settings.retry_batch_size,
            context_factory=context,
            report_batch_item_failures=settings.retry_reports_batch_item_failures,
            lock=self.lock,
        )
        self._drain_stop.clear()
        self._drain_thread = threading.Thread(
            target=source.run,
            args=(self._drain_stop,),
            kwargs={"idle_sleep": self.drain_interval, "on_poll": self._log_poll},
            name="dodo-cio-retry-drain",
            daemon=True,
        )
        self._drain_thread.start()

    def _stop_drain(self) -> None:
        self._drain_stop.set()
        thread, self._drain_thread = self._drain_thread, None
        if thread is not None:
            # A poll in progress finishes first: at most one retry invocation (Customer.io timeouts).
            thread.join(timeout=30)

    def _log_poll(self, result: PollResult) -> None:
        if result.error is not None and result.received:
            traceback.print_exception(result.error)
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} retry {result.summary()}")

    @property
    def drain_status(self) -> str:
        if not self.drain:
            return "off (--no-drain): parked deliveries stay on the retry queue"
        running = self._drain_thread is not None and self._drain_thread.is_alive()
        settings = self.settings
        batch = settings.retry_batch_size if settings is not None else "?"
        schedule = describe_backoff(self.backoff) if self.backoff is not None else ""
        scale = f"backoff x{self.backoff_scale:g}: {schedule}"
        return f"{'running' if running else 'stopped'}, batch size {batch}, {scale}"

    def _start_http(self) -> str:
        """Serve in a daemon thread; returns the base URL (port 0 resolved)."""
        try:
            server = ThreadingHTTPServer((self.host, self.port), _Handler)
        except OSError as exc:
            raise LocalRunError(f"cannot listen on {self.host}:{self.port} ({exc}); pass --port") from None
        server.daemon_threads = True
        server.bridge = self  # type: ignore[attr-defined]
        self._server = server
        self.bound_port = server.server_port
        shown_host = "127.0.0.1" if self.host in {"0.0.0.0", ""} else self.host
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="dodo-cio-local", daemon=True
        )
        self._thread.start()
        return f"http://{shown_host}:{self.bound_port}"

    def stop(self) -> None:
        """Idempotent; safe after a failed start."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_drain()  # before the sandbox and moto it talks to
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self.handler_module is not None or self.aws.endpoint is not None:
            _reset_handler_state(self.handler_module)
        if self.retry_module is not None:
            _reset_handler_state(self.retry_module)
        self.aws.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self.info = None

    def __enter__(self) -> LocalBridgeInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _setenv(self, key: str, value: str | None) -> None:
        self._saved_env.setdefault(key, os.environ.get(key))
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    # -- AWS (moto) -----------------------------------------------------------------------------

    def _create_queues(self, settings: TemplateSettings) -> tuple[str, str, str]:
        """Retry queue, DLQ and quarantine queue; their ARNs are kept for the status page."""
        sqs = self.aws.client("sqs")
        arns = self._queue_arns = {}

        def create(spec: QueueSpec, attributes: dict[QueueAttributeName, str]) -> str:
            url: str = sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
            arns[url] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            return url

        dlq_url = create(settings.dead_letter_queue, dict(settings.dead_letter_queue.attributes))
        attributes = dict(settings.retry_queue.attributes)
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[dlq_url], "maxReceiveCount": settings.max_receive_count}
        )
        queue_url = create(settings.retry_queue, attributes)
        return queue_url, dlq_url, create(settings.quarantine_queue, dict(settings.quarantine_queue.attributes))

    def _seed_ssm(self, path: str) -> None:
        ssm = self.aws.client("ssm")
        for name, value in (
            ("webhook-secret", self.secret),
            ("customerio-site-id", self._site_id),
            ("customerio-api-key", self._api_key),
        ):
            ssm.put_parameter(Name=f"{path}/{name}", Value=value, Type="SecureString", Overwrite=True)

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """Visible / in-flight / delayed message counts of the retry queue, its DLQ and the quarantine queue."""
        if self.info is None:
            raise RuntimeError("the local bridge is not running")
        names: list[QueueAttributeName] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        sqs = self.aws.client("sqs")
        depths: dict[str, dict[str, int]] = {}
        with self.lock:
            for label, url in (
                ("retry_queue", self.info.queue_url),
                ("dead_letter_queue", self.info.dlq_url),
                ("quarantine_queue", self.info.quarantine_url),
            ):
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                depths[label] = {
                    "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
                    "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                    "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
                }
        return depths

    # -- invoking the handler -------------------------------------------------------------------

    def call_handler(self, event: dict[str, Any]) -> Any:
        """lambda_handler(event) as Lambda runs it, one event at a time; what it raises propagates."""
        module = self.handler_module
        settings = self.settings
        if module is None or settings is None:
            raise RuntimeError("the local bridge is not running")
        context = FakeLambdaContext(
            f"{STACK_NAME}-IngestFunction",
            memory_limit_in_mb=settings.memory_mb,
            timeout_seconds=settings.timeout_seconds,
        )
        with self.lock:
            return module.lambda_handler(event, context)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """Call lambda_handler as Lambda would and turn its answer into HTTP, as API Gateway would."""
        if self.handler_module is None:
            raise RuntimeError("the local bridge is not running")
        start = time.perf_counter()
        try:
            result = self.call_handler(event)
        except Exception:  # noqa: BLE001 - API Gateway answers 500 when the function errors
            traceback.print_exc()
            result = None
            failed = True
        else:
            failed = False
        elapsed = (time.perf_counter() - start) * 1000
        if failed:
            body = b'{"message":"Internal Server Error"}'
            return Invocation(500, {"content-type": "application/json"}, body, elapsed)
        return _integration_response(result, elapsed)


def _integration_response(result: Any, elapsed_ms: float) -> Invocation:
    """HTTP API v2 rules: a dict with statusCode is used as is; anything else is a 200 JSON body."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body")
        text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
        body = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8")
        return Invocation(int(result["statusCode"]), headers, body, elapsed_ms)
    body = json.dumps(result).encode("utf-8")
    return Invocation(200, {"content-type": "application/json"}, body, elapsed_ms)


# --- HTTP ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "dodo-cio-local"
    protocol_version = "HTTP/1.1"

    @property
    def bridge(self) -> LocalBridge:
        bridge: LocalBridge = self.server.bridge  # type: ignore[attr-defined]
        return bridge

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the bridge prints its own one-line summary per request."""

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        start = time.perf_counter()
        path = urlsplit(self.path).path
        body = self._read_body()
        note = ""
        if body is None:
            status = self._json(413, {"message": "Request Entity Too Large"})
        elif path == WEBHOOK_PATH:
            if self.command == "POST":
                status, note = self._webhook(body)
            else:
                status = self._json(405, {"message": "Method Not Allowed"}, {"Allow": "POST"})
        elif path in {"/", "/__local"} and self.command in {"GET", "HEAD"}:
            status = self._json(200, self._status_page())
        elif (answer := self._lambda_api(path, body)) is not None:
            self._send(answer.status, answer.body, answer.headers)
            status = answer.status
            note = " " + answer.body[:200].decode("utf-8", errors="replace") if answer.body else ""
        else:
            status = self._json(404, {"message": "Not Found"})
        elapsed = (time.perf_counter() - start) * 1000
        self._log_line(f"{self.command} {self.path} -> {status} ({elapsed:.0f} ms){note}")

    def _webhook(self, body: bytes) -> tuple[int, str]:
        bridge = self.bridge
        settings = bridge.settings
        parts = urlsplit(self.path)
        req_id = request_id()
        client_ip = self.client_address[0]
        headers = list(self.headers.items())
        # Added by API Gateway in front of every integration.
        headers += [
            ("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"),
            ("x-forwarded-for", client_ip),
            ("x-forwarded-port", str(bridge.bound_port)),
            ("x-forwarded-proto", "http"),
        ]
        event = http_api_event(
            method="POST",
            path=parts.path,
            query=parts.query,
            headers=headers,
            body=body,
            source_ip=client_ip,
            protocol=self.request_version,
            domain=self.headers.get("Host") or None,
            req_id=req_id,
        )
        assert event["routeKey"] == ROUTE_KEY
        result = bridge.invoke(event)
        response_headers = dict(result.headers)
        response_headers["apigw-requestid"] = req_id
        self._send(result.status, result.body, response_headers)
        note = " " + result.body[:200].decode("utf-8", errors="replace") if result.body else ""
        if settings is not None and result.elapsed_ms > settings.timeout_seconds * 1000:
            note += f"  [slower than the {settings.timeout_seconds} s Lambda timeout]"
        return result.status, note

    def _lambda_api(self, path: str, body: bytes) -> Any:
        """The Lambda Invoke API for the ingest function (`dodo-cio reprocess --local`); None for other paths."""
        info = self.bridge.info
        name = info.ingest_function if info is not None else ""
        return invoke_api(
            path,
            method=self.command,
            headers=dict(self.headers.items()),
            body=body,
            client_address=self.client_address[0],
            function_names={name, f"arn:aws:lambda:{REGION}:123456789012:function:{name}"} if name else (),
            call=self.bridge.call_handler,
        )

    def _status_page(self) -> dict[str, Any]:
        bridge = self.bridge
        info = bridge.info
        if info is None:
            return {"status": "stopping"}
        page: dict[str, Any] = {
            "webhook_url": info.webhook_url,
            "customerio": "real Track API" if info.sandbox_url is None else "local sandbox",
            "track_url": info.track_url,
            "queues": bridge.queue_depths(),
            "retry_drain": bridge.drain_status,
            # What `dodo-cio ... --local` reads to find the emulated AWS (see local_target.py).
            "aws": {
                "endpoint": info.aws_endpoint,
                "region": REGION,
                "retry_queue_url": info.queue_url,
                "retry_queue_arn": info.queue_arns.get(info.queue_url, ""),
                "dead_letter_queue_url": info.dlq_url,
                "dead_letter_queue_arn": info.queue_arns.get(info.dlq_url, ""),
                "quarantine_queue_url": info.quarantine_url,
                "ssm_parameter_path": os.environ.get("SSM_PARAMETER_PATH", ""),
                "lambda_endpoint": info.webhook_url.removesuffix(WEBHOOK_PATH),
                "ingest_function": info.ingest_function,
            },
            "send_sample": f"dodo-cio send events/dodo/payment.succeeded.json --url {info.webhook_url} "
            "--secret <printed at start>",
        }
        if info.sandbox_url is not None:
            page["sandbox_url"] = info.sandbox_url
            page["sandbox_requests"] = info.sandbox_url + "/__sandbox/requests"
        return page

    # -- plumbing

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds what API Gateway accepts."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> int:
        body = json.dumps(payload, indent=2 if status == 200 else None).encode("utf-8")
        self._send(status, body, {"content-type": "application/json", **(headers or {})})
        return status

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _log_line(self, text: str) -> None:
        log = self.bridge._log
        if log is not None:
            log(f"{time.strftime('%H:%M:%S')} local {text}")


# --- Command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="webhook port (default %(default)s)")
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=DEFAULT_SANDBOX_PORT,
        help="Customer.io sandbox port (default %(default)s; unused with real credentials)",
    )
    parser.add_argument(
        "--aws-port",
        type=int,
        default=DEFAULT_AWS_PORT,
        help="port of the emulated AWS (moto server) on 127.0.0.1 (default %(default)s; 0 = any free port)",
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="webhook secret (whsec_...); default: $DODO_WEBHOOK_SECRET, else the development secret",
    )
    parser.add_argument(
        "--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template to follow (default: the repo's)"
    )
    parser.add_argument(
        "--no-drain",
        dest="drain",
        action="store_false",
        help="do not run the retry function: parked deliveries stay on the retry queue "
        f"(otherwise it drains them, on the real schedule times ${BACKOFF_SCALE_ENV}, "
        f"default {DEFAULT_BACKOFF_SCALE:g})",
    )


def _banner(info: LocalBridgeInfo, bridge: LocalBridge) -> str:
    settings = bridge.settings
    assert settings is not None
    send = f".venv/bin/dodo-cio send events/dodo/payment.succeeded.json --url {info.webhook_url} --secret {info.secret}"
    lines = [
        "",
        "Dodo -> Customer.io bridge, running locally (AWS emulated by moto)",
        f"  webhook URL     POST {info.webhook_url}",
        f"  webhook secret  {info.secret}",
        f"  status page     {info.status_url}",
    ]
    if info.sandbox_url is not None:
        lines += [
            f"  Customer.io     local sandbox at {info.sandbox_url}  (site id {SANDBOX_SITE_ID!r})",
            f"                  received requests: {info.sandbox_url}/__sandbox/requests",
        ]
    else:
        lines += [
            f"  Customer.io     REAL Track API at {info.track_url}",
            "  WARNING: real data goes to your Customer.io workspace (CUSTOMERIO_SITE_ID/API_KEY are set).",
        ]
    lines += [
        f"  retry queue     {info.queue_url}",
        f"                  visibility {settings.retry_queue.attributes['VisibilityTimeout']} s, "
        f"maxReceiveCount {settings.max_receive_count} -> {info.dlq_url}",
        f"  quarantine      {info.quarantine_url}",
        f"  retry drain     {bridge.drain_status}",
        f"  emulated AWS    {info.aws_endpoint}  (SQS, SSM, DynamoDB on 127.0.0.1;",
        f"                  the ingest function's Lambda Invoke API at {info.webhook_url.removesuffix(WEBHOOK_PATH)})",
        "",
        "The operator commands reach this run with --local (they read the status page):",
        "  .venv/bin/dodo-cio dlq --local | redrive --local | reprocess --local | replay FILE --local",
    ]
    base = info.webhook_url.removesuffix(WEBHOOK_PATH)
    if base != f"http://127.0.0.1:{DEFAULT_PORT}":  # where --local looks unless told otherwise
        lines.append(f"  (not the default port: export DODO_CIO_LOCAL_URL={base} or pass --local-url {base})")
    lines += [
        "",
        "Send a signed sample:",
        f"  {send}",
        "",
        "Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM both end the run cleanly (`make run &` ignores SIGINT)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    """`make run`: start, print how to use it, serve until Ctrl-C or SIGTERM."""
    secret = args.secret or os.environ.get("DODO_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
    site_id = os.environ.get("CUSTOMERIO_SITE_ID") or None
    api_key = os.environ.get("CUSTOMERIO_API_KEY") or None

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        bridge = LocalBridge(
            host=args.host,
            port=args.port,
            sandbox_port=args.sandbox_port,
            aws_port=getattr(args, "aws_port", DEFAULT_AWS_PORT),
            secret=secret,
            template=args.template,
            customerio_site_id=site_id,
            customerio_api_key=api_key,
            log=log,
            drain=getattr(args, "drain", True),
        )
        info = bridge.start()
    except LocalRunError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            print(_banner(info, bridge), flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        print("stopping...", flush=True)
        bridge.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dodo_cio_local", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
