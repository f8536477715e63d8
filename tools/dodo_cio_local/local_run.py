"""`make run`: the real ingest handler behind a local HTTP endpoint, AWS emulated by moto on loopback.

Why not `sam local start-api`: it needs Docker and real (or LocalStack) AWS for SSM and SQS. Here the
same `functions/ingest/app.py:lambda_handler` runs in this process; moto, in server mode on a
loopback port (`local_aws.py`), answers its boto3 calls, so the operator commands can reach the same
queues from another terminal (`dodo-cio dlq --local`); the queues are created with the attributes
template.yaml gives them; Customer.io is the local Track sandbox unless real credentials are given.

This module holds the bridge's lifecycle: what `start()` sets up (environment, emulated AWS,
queues, SSM parameters, Customer.io, the handler) and what `stop()` undoes. The rest of the run
lives beside it: the HTTP front, which turns each request into an API Gateway HTTP API v2 event
(`http_front.py`); the retry function drained as its SQS event source would drain it
(`retry_drain.py`); how the handler modules are loaded and reset (`handler_modules.py`); and the
command line behind `python -m dodo_cio_local` (`command_line.py`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, WEBHOOK_PATH
from dodo_cio_local.handler_modules import load_ingest_module, reset_handler_state
from dodo_cio_local.http_base import BackgroundServer
from dodo_cio_local.http_front import FrontHandler, Invocation, LocalBridgeInfo, integration_response
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_aws import LocalAws, LocalAwsError
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
from dodo_cio_local.log_keeper import LogKeeper
from dodo_cio_local.retry_drain import DEFAULT_DRAIN_INTERVAL, RetryDrain, backoff_scale_from_env, check_scale

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType as QueueAttributeName

    from dodo_cio.delivery.backoff import BackoffPolicy
    from dodo_cio_local.dodo_standin import DodoStandIn
    from dodo_cio_local.sandbox import TrackSandbox

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 3000
DEFAULT_SANDBOX_PORT: Final = 4010
DEFAULT_DODO_PORT: Final = 4030  # `make run`'s stand-in for Dodo's API (LocalBridge itself takes any free port)
LOCAL_CONTAINERS: Final = 1  # one warm container per function: invocations take turns (`self.lock`)
# Local sandbox credentials; only the sandbox accepts them.
SANDBOX_SITE_ID: Final = "local-site"
SANDBOX_API_KEY: Final = "local-api-key"
SANDBOX_PIPELINES_KEY: Final = "local-pipelines-key"
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
    "CUSTOMERIO_API",  # track (the template's default) or pipelines: the sandbox serves both
    "CUSTOMERIO_IDENTIFIER",
    "CUSTOMERIO_CONTACT_FIELDS",
    "CUSTOMERIO_CONNECT_TIMEOUT",
    "CUSTOMERIO_READ_TIMEOUT",
    "SECRETS_MAX_AGE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_LOGGER_LOG_EVENT",
    "POWERTOOLS_METRICS_DISABLED",
)


class _FrontServer(ThreadingHTTPServer):
    """The webhook front. Dodo's renewal burst opens many connections at once: the default listen
    backlog of 5 refused them under 50 senders before the handler ever saw them."""

    request_queue_size = 128


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
        sandbox_rate_limit: float | None = None,
        dodo_port: int = 0,
    ) -> None:
        if bool(customerio_site_id) != bool(customerio_api_key):
            raise LocalRunError("set both CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY, or neither")
        try:
            self.backoff_scale = backoff_scale_from_env() if backoff_scale is None else check_scale(backoff_scale)
        except ValueError as exc:
            raise LocalRunError(str(exc)) from None
        if sandbox_rate_limit is not None and not sandbox_rate_limit > 0:
            raise LocalRunError(
                f"--sandbox-rate-limit must be a positive number of requests a second, not {sandbox_rate_limit:g}"
            )
        self.sandbox_rate_limit = sandbox_rate_limit
        self.drain = drain
        self.host = host
        self.port = port
        self.sandbox_port = sandbox_port
        self.secret = secret
        self.template = template
        self.real_customerio = bool(customerio_site_id)
        self._site_id = customerio_site_id or SANDBOX_SITE_ID
        self._api_key = customerio_api_key or SANDBOX_API_KEY
        self.log = log  # where the run's own lines go (the banner's terminal); None: nowhere
        # One invocation at a time: a single warm Lambda container never runs two events at once,
        # and the handler modules' state is the container's. The status page and the retry drain
        # take the same lock; commands from another terminal reach moto's server concurrently, as
        # operators reach SQS while the functions run.
        self.lock = threading.Lock()
        self.sandbox: TrackSandbox | None = None
        self.dodo: DodoStandIn | None = None
        self.logs = LogKeeper()  # both functions' log lines, for `dodo-cio trace --local`
        self.dodo_port = dodo_port
        self.info: LocalBridgeInfo | None = None
        self.settings: TemplateSettings | None = None
        self.handler_module: ModuleType | None = None
        self._retry = RetryDrain(self.backoff_scale, drain_interval, log)
        self.aws = LocalAws(aws_port, REGION)
        self._queue_arns: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}
        self._serving: BackgroundServer | None = None
        self.bound_port = 0

    @property
    def retry_module(self) -> ModuleType | None:
        """functions/retry/app.py once `start()` has loaded it (with `drain`)."""
        return self._retry.module

    @property
    def backoff(self) -> BackoffPolicy | None:
        """The retry function's (scaled) schedule once `start()` has built it (with `drain`)."""
        return self._retry.backoff

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
        from dodo_cio.receiving.signature import parse_secrets  # noqa: PLC0415

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

        api = (function_env.get("CUSTOMERIO_API") or "track").strip().lower()
        if self.real_customerio and api != "track":
            raise LocalRunError(
                "real Customer.io credentials (CUSTOMERIO_SITE_ID/API_KEY) are Track's: unset CUSTOMERIO_API "
                "or set it to track; CUSTOMERIO_API=pipelines runs against the local sandbox only"
            )
        queue_url, dlq_url, quarantine_url = self._start_aws(settings, ssm_path)
        track_url, sandbox_url = self._start_customerio(function_env.get("CUSTOMERIO_REGION") or "us")
        pipelines_url = self.sandbox.pipelines_url if self.sandbox is not None else ""
        dodo_api_url = self._start_dodo()
        function_env.update(
            DODO_API_URL=dodo_api_url,
            SSM_PARAMETER_PATH=ssm_path,
            CUSTOMERIO_TRACK_URL=track_url,
            CUSTOMERIO_PIPELINES_URL=pipelines_url,
            RETRY_QUEUE_URL=queue_url,
            DEAD_LETTER_QUEUE_URL=dlq_url,
            QUARANTINE_QUEUE_URL=quarantine_url,
            STATE_TABLE_NAME=STATE_TABLE,
        )
        # As Lambda sets it: the duplicate check's records are owned by the function (`dodo-cio trace` finds them).
        function_env["AWS_LAMBDA_FUNCTION_NAME"] = f"{STACK_NAME}-IngestFunction"
        # The budget's containers (dodo_cio.delivery.budget): this run hosts the ingest function in one container.
        function_env["INGEST_MAX_CONCURRENCY"] = str(LOCAL_CONTAINERS)
        function_env.setdefault("POWERTOOLS_SERVICE_NAME", "dodo-customerio-bridge")
        function_env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DodoCustomerioBridge")
        if self.drain:
            self._merge_retry_environment(function_env, settings, dlq_url)
            function_env["RETRY_MAX_CONCURRENCY"] = str(LOCAL_CONTAINERS)  # one drain: all of the retry share
        if self.sandbox_rate_limit is not None and not os.environ.get("CUSTOMERIO_RATE_LIMIT_RPS"):
            # The budget of the deployment this rehearses (both functions): the workspace's limit, the sandbox's.
            function_env["CUSTOMERIO_RATE_LIMIT_RPS"] = f"{self.sandbox_rate_limit:g}"
        for key, value in function_env.items():
            self._setenv(key, value)
        self._load_handler(function_env["POWERTOOLS_METRICS_NAMESPACE"])
        if self.drain:
            self._retry.load(function_env["POWERTOOLS_METRICS_NAMESPACE"])
        self.logs.attach(m for m in (self.handler_module, self._retry.module) if m is not None)
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
            customerio_api=function_env.get("CUSTOMERIO_API") or "track",
            pipelines_url=pipelines_url,
            dodo_api_url=dodo_api_url,
            dodo_api_key=self.dodo.api_key if self.dodo is not None else "",
        )
        if self.drain:
            self._retry.start(self.aws.client("sqs"), settings, queue_url, self.lock)
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
        reset_handler_state(None)  # no client cached before the endpoint was set
        queue_url, dlq_url, quarantine_url = self._create_queues(settings)
        create_state_table(self.aws.client("dynamodb"), settings.state_table)
        self._seed_ssm(ssm_path)
        return queue_url, dlq_url, quarantine_url

    def _start_customerio(self, region: str) -> tuple[str, str | None]:
        """(Track base URL, sandbox URL or None): the sandbox unless real credentials were given."""
        if self.real_customerio:
            from dodo_cio.delivery.track import track_base_url  # noqa: PLC0415

            try:
                return track_base_url(region, os.environ.get("CUSTOMERIO_TRACK_URL")), None
            except ValueError as exc:
                raise LocalRunError(str(exc)) from None
        from dodo_cio_local.sandbox import TrackSandbox  # noqa: PLC0415

        sandbox = TrackSandbox(
            site_id=self._site_id,
            api_key=self._api_key,
            pipelines_key=SANDBOX_PIPELINES_KEY,
            host="127.0.0.1",
            port=self.sandbox_port,
            rate_limit=self.sandbox_rate_limit,  # 429 with Retry-After above it, as Customer.io does
        )
        try:
            url = sandbox.start()
        except OSError as exc:
            raise LocalRunError(
                f"cannot listen on 127.0.0.1:{self.sandbox_port} for the Customer.io sandbox ({exc}); "
                "pass --sandbox-port"
            ) from None
        self.sandbox = sandbox
        return url, url

    def _start_dodo(self) -> str:
        """The stand-in for Dodo's API (`dodo_standin.py`): what `dodo-cio setup --local` and the lookups call."""
        from dodo_cio_local.dodo_standin import DodoStandIn  # noqa: PLC0415

        dodo = DodoStandIn(port=self.dodo_port)
        try:
            url = dodo.start()
        except OSError as exc:
            raise LocalRunError(
                f"cannot listen on 127.0.0.1:{self.dodo_port} for the Dodo API stand-in ({exc}); pass --dodo-port"
            ) from None
        self.dodo = dodo
        return url

    def _load_handler(self, metrics_namespace: str) -> None:
        # Imported after the environment is set: Powertools reads its namespace at import time.
        self.handler_module = load_ingest_module()
        metrics = getattr(self.handler_module, "metrics", None)
        if metrics is not None and not metrics.namespace:
            # Imported earlier (by a test) without the variable: give it what Lambda would have.
            metrics.namespace = metrics_namespace
        reset_handler_state(self.handler_module)

    # -- the retry drain ------------------------------------------------------------------------

    def _merge_retry_environment(self, function_env: dict[str, str], settings: TemplateSettings, dlq_url: str) -> None:
        """Add the RetryFunction's variables: both handlers live in this process, with one environment."""
        retry_env = dict(settings.retry_environment)
        for key in _USER_OVERRIDABLE:
            if key in retry_env and os.environ.get(key):
                retry_env[key] = os.environ[key]
        for key in (
            "SSM_PARAMETER_PATH",
            "CUSTOMERIO_TRACK_URL",
            "CUSTOMERIO_PIPELINES_URL",
            "RETRY_QUEUE_URL",
            "STATE_TABLE_NAME",
        ):
            retry_env[key] = function_env[key]
        retry_env["DEAD_LETTER_QUEUE_URL"] = dlq_url
        for key, value in retry_env.items():
            if function_env.setdefault(key, value) != value:
                raise LocalRunError(
                    f"template.yaml gives IngestFunction and RetryFunction different {key} "
                    f"({function_env[key]!r} / {value!r}); the local run hosts both in one process"
                )

    @property
    def drain_status(self) -> str:
        if not self.drain:
            return "off (--no-drain): parked deliveries stay on the retry queue"
        settings = self.settings
        return self._retry.status(settings.retry_batch_size if settings is not None else "?")

    def _start_http(self) -> str:
        """Serve in a daemon thread; returns the base URL (port 0 resolved)."""
        try:
            server = _FrontServer((self.host, self.port), FrontHandler)
        except OSError as exc:
            raise LocalRunError(f"cannot listen on {self.host}:{self.port} ({exc}); pass --port") from None
        server.daemon_threads = True
        server.bridge = self  # type: ignore[attr-defined]
        self.bound_port = server.server_port
        shown_host = "127.0.0.1" if self.host in {"0.0.0.0", ""} else self.host
        self._serving = BackgroundServer(server, name="dodo-cio-local", poll_interval=0.1)
        return f"http://{shown_host}:{self.bound_port}"

    def stop(self) -> None:
        """Idempotent; safe after a failed start."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()
        self._retry.stop()  # before the sandbox and moto it talks to
        self.logs.detach()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if self.dodo is not None:
            self.dodo.stop()
            self.dodo = None
        if self.handler_module is not None or self.aws.endpoint is not None:
            reset_handler_state(self.handler_module)
        self._retry.reset()
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
            # Only the sandbox knows this key; with real credentials the run is Track-only (see _start).
            ("customerio-pipelines-api-key", SANDBOX_PIPELINES_KEY),
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
        with self.lock:  # Lambda's clock starts when the invocation does, not while it waits its turn
            context = FakeLambdaContext(
                f"{STACK_NAME}-IngestFunction",
                memory_limit_in_mb=settings.memory_mb,
                timeout_seconds=settings.timeout_seconds,
            )
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
        return integration_response(result, elapsed)
