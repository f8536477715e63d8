"""The local run's HTTP front: API Gateway before the ingest handler, its Lambda Invoke API, a status page.

Why one server for three things: a webhook sender, `dodo-cio ... --local` and a person checking on
a run all reach the same `make run` port. Each webhook becomes an API Gateway HTTP API v2 event,
built as API Gateway builds it (`dodo_cio_cli.apigw`), and the handler's answer becomes HTTP by
the integration's rules; bodies over API Gateway's 10 MB never reach the handler. The Invoke API
(`local_aws.invoke_api`) lets `dodo-cio reprocess --local` re-run the ingest function, and the
status page at `/` and `/__local` is what the operator commands read to find the emulated AWS.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from dodo_cio_cli.apigw import ROUTE_KEY, WEBHOOK_PATH, http_api_event, request_id
from dodo_cio_local.http_base import LocalRequestHandler
from dodo_cio_local.local_aws import ApiAnswer, invoke_api
from dodo_cio_local.local_template import REGION, STACK_NAME
from dodo_cio_local.log_keeper import LOGS_PATH

if TYPE_CHECKING:
    from collections.abc import Callable

    from dodo_cio_local.local_template import TemplateSettings
    from dodo_cio_local.log_keeper import LogKeeper

# API Gateway HTTP APIs accept payloads up to 10 MB; anything larger never reaches Lambda.
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Invocation:
    """The handler's answer as API Gateway sends it, with how long the invocation took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float


def integration_response(result: Any, elapsed_ms: float) -> Invocation:
    """HTTP API v2 rules: a dict with statusCode is used as is; anything else is a 200 JSON body."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body")
        text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
        body = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8")
        return Invocation(int(result["statusCode"]), headers, body, elapsed_ms)
    body = json.dumps(result).encode("utf-8")
    return Invocation(200, {"content-type": "application/json"}, body, elapsed_ms)


@dataclass(frozen=True, slots=True)
class LocalBridgeInfo:
    """Where a started bridge can be reached: what the banner prints and the tests connect to."""

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
    customerio_api: str = "track"  # CUSTOMERIO_API of both functions
    pipelines_url: str = ""  # the sandbox's /v1 (CUSTOMERIO_PIPELINES_URL); empty with real credentials
    dodo_api_url: str = ""  # the stand-in for Dodo's API (DODO_API_URL of both functions)
    dodo_api_key: str = ""  # the only key the stand-in accepts


class Bridge(Protocol):
    """What the front asks of the running bridge (`local_run.LocalBridge`), so this module need not import it."""

    info: LocalBridgeInfo | None
    settings: TemplateSettings | None
    bound_port: int
    logs: LogKeeper
    log: Callable[[str], None] | None

    @property
    def drain_status(self) -> str: ...
    def queue_depths(self) -> dict[str, dict[str, int]]: ...
    def call_handler(self, event: dict[str, Any]) -> Any: ...
    def invoke(self, event: dict[str, Any]) -> Invocation: ...


class FrontHandler(LocalRequestHandler):
    """Routes every method: API Gateway, not http.server, decides which method a route takes."""

    dispatched_methods = ("POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
    max_body_bytes = MAX_REQUEST_BYTES
    server_version = "dodo-cio-local"

    @property
    def bridge(self) -> Bridge:
        bridge: Bridge = self.server.bridge  # type: ignore[attr-defined]
        return bridge

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
        elif path == LOGS_PATH and self.command == "GET":
            status = self._json(200, {"lines": self.bridge.logs.lines()})
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

    def _lambda_api(self, path: str, body: bytes) -> ApiAnswer | None:
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
            # What `dodo-cio check --local` checks against: the deployment this run stands for.
            "deployment": {
                "customerio_api": info.customerio_api,
                "track_url": info.track_url,
                "pipelines_url": info.pipelines_url,
                "customerio_region": os.environ.get("CUSTOMERIO_REGION", "") or "us",
                "identifier": os.environ.get("CUSTOMERIO_IDENTIFIER", "") or "customer_id",
                "contact_fields": os.environ.get("CUSTOMERIO_CONTACT_FIELDS", "") or "auto",
                # `dodo-cio setup --local`: the Dodo API to register the endpoint with, and the budget it fits.
                "dodo_api_url": info.dodo_api_url,
                "dodo_api_key": info.dodo_api_key,
                "customerio_requests_per_second": os.environ.get("CUSTOMERIO_RATE_LIMIT_RPS", ""),
                "customerio_ingest_share": os.environ.get("CUSTOMERIO_INGEST_SHARE", ""),
            },
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
                "state_table": os.environ.get("STATE_TABLE_NAME", ""),
            },
            "send_sample": f"dodo-cio send events/dodo/payment.succeeded.json --url {info.webhook_url} "
            "--secret <printed at start>",
        }
        if info.sandbox_url is not None:
            page["sandbox_url"] = info.sandbox_url
            page["sandbox_requests"] = info.sandbox_url + "/__sandbox/requests"
        return page

    # -- plumbing

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> int:
        body = json.dumps(payload, indent=2 if status == 200 else None).encode("utf-8")
        self._send(status, body, {"content-type": "application/json", **(headers or {})})
        return status

    def _log_line(self, text: str) -> None:
        log = self.bridge.log
        if log is not None:
            log(f"{time.strftime('%H:%M:%S')} local {text}")
