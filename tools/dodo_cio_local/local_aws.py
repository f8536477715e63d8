"""The local run's emulated AWS as loopback endpoints, so `dodo-cio dlq|redrive|replay|reprocess --local` reach it.

Two endpoints, both on 127.0.0.1:

* **moto in server mode** (SQS, SSM, DynamoDB). Under `mock_aws` the queues lived inside the
  `make run` process, out of reach of a second terminal. Here the handlers' boto3 clients get
  `AWS_ENDPOINT_URL` and talk HTTP to the same moto backends any other process can reach.
* **the Lambda Invoke API** for the ingest function (`POST /2015-03-31/functions/NAME/invocations`),
  served by the local run's own HTTP server: moto's Lambda would run the code in Docker, which this
  machine may not have, whereas the local run already hosts the handler. A boto3 `lambda` client
  with `endpoint_url` set to the local run therefore invokes it unchanged (`dodo-cio reprocess`).

The emulated AWS always listens on loopback, whatever `--host` the webhook endpoint uses: it holds
the seeded SSM parameters (real Customer.io credentials when those were given) and answers anyone
who can connect. For the same reason the Invoke API answers only loopback clients.

Only stdlib at import time; moto and boto3 are imported when the local run starts.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import threading
import traceback
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from dodo_cio_cli.local_target import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, endpoint_client
from dodo_cio_local import local_dynamodb
from dodo_cio_local.http_base import BackgroundServer

LOOPBACK: Final = "127.0.0.1"
DEFAULT_AWS_PORT: Final = 4020  # `make run ARGS='--aws-port N'`; 0 = any free port (tests, make load)
# moto accepts any credentials; these make sure the user's real ones never travel to the emulator.
INVOKE_PATH: Final = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
_JSON: Final = "application/json"


class LocalAwsError(RuntimeError):
    """The emulated AWS cannot start; the message says what to fix."""


def reset_moto() -> None:
    """Forget every emulated resource (as `mock_aws` does when it starts and stops).

    moto's backends are process-wide: a second local run in the same process (tests, `make load`)
    must not find the first one's queues and messages.
    """
    from moto.moto_api._internal.models import moto_api_backend  # noqa: PLC0415 - heavy, local run only

    moto_api_backend.reset()


class LocalAws:
    """moto's WSGI server on a loopback port, in a daemon thread.

    `moto.server.ThreadedMotoServer` binds its socket inside its thread, so on a busy port its
    `start()` waits forever for a ready signal that never comes. This binds the same app (moto's
    `DomainDispatcherApplication` with its request handler) in the caller's thread, where a busy
    port becomes a LocalAwsError, then serves it from a thread like ThreadedMotoServer does.
    """

    def __init__(self, port: int = 0, region: str = "us-east-1") -> None:
        self.port = port
        self.region = region
        self.endpoint: str | None = None
        self._serving: BackgroundServer | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        class QuietHandler(MotoRequestHandler):
            """One line per AWS call would drown the bridge's own log."""

            def log(self, type: str, message: str, *args: Any) -> None:
                if type == "error":
                    super().log(type, message, *args)

        reset_moto()
        local_dynamodb.install()  # a burst's worth of transactions: no table copies, tokens honoured
        app = DomainDispatcherApplication(create_backend_app)
        said = io.StringIO()
        try:
            # werkzeug answers a busy port by printing advice and calling sys.exit(1).
            with contextlib.redirect_stderr(said):
                server = make_server(LOOPBACK, self.port, app, threaded=True, request_handler=QuietHandler)
        except (OSError, SystemExit) as exc:
            reason = said.getvalue().strip().splitlines()[0] if said.getvalue().strip() else str(exc)
            raise LocalAwsError(
                f"cannot listen on {LOOPBACK}:{self.port} for the emulated AWS ({reason}); pass --aws-port"
            ) from None
        self._serving = BackgroundServer(server, name="dodo-cio-local-aws", poll_interval=0.05)
        self.endpoint = f"http://{LOOPBACK}:{server.server_port}"
        return self.endpoint

    def stop(self) -> None:
        """Idempotent: stop serving, close the socket, and forget what was emulated."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()
        self._clients.clear()
        if self.endpoint is not None:
            self.endpoint = None
            reset_moto()

    def client(self, service: str) -> Any:
        """A boto3 client bound to this endpoint, whatever the environment says; one per service.

        Cached because each new boto3 session loads the endpoint data again (~0.1 s).
        """
        endpoint = self.endpoint
        if endpoint is None:
            raise RuntimeError("the emulated AWS is not running")
        with self._lock:
            if service not in self._clients:
                self._clients[service] = endpoint_client(service, endpoint, self.region)
            return self._clients[service]

    def environment(self) -> dict[str, str]:
        """What the in-process handlers need so that their own boto3 clients land here."""
        if self.endpoint is None:
            raise RuntimeError("the emulated AWS is not running")
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        }


# --- the Lambda Invoke API ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _error(status: int, error_type: str, message: str) -> ApiAnswer:
    """An error as Lambda's REST-JSON protocol words it, so botocore raises the matching ClientError."""
    body = json.dumps({"Type": "User", "message": message}).encode()
    return ApiAnswer(status, {"content-type": _JSON, "x-amzn-errortype": error_type}, body)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def invoke_api(
    path: str,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    client_address: str,
    function_names: Collection[str],
    call: Callable[[dict[str, Any]], Any],
) -> ApiAnswer | None:
    """Answer one Lambda Invoke API request for the hosted ingest function; None when `path` is not one.

    `function_names` are the names (and ARNs) it answers to; `call(event)` runs the handler and
    returns what it returned. Only RequestResponse (and DryRun) are supported: reprocessing needs
    the answer. A handler that raises is reported as Lambda reports it: 200 with
    `X-Amz-Function-Error: Unhandled` and an `errorMessage`/`errorType` payload.
    """
    match = INVOKE_PATH.match(path)
    if match is None:
        return None
    if not is_loopback(client_address):
        # Real Lambda needs IAM; here, only this machine may ask for a re-run.
        return _error(403, "AccessDeniedException", "the local Lambda API answers loopback clients only")
    if method != "POST":
        return _error(405, "InvalidRequestContentException", "invoke with POST")
    name = unquote(match["name"])
    if name not in function_names:
        known = ", ".join(sorted(n for n in function_names if not n.startswith("arn:")))
        return _error(404, "ResourceNotFoundException", f"Function not found: {name} (the local run hosts {known})")
    lowered = {k.lower(): v for k, v in headers.items()}
    invocation_type = lowered.get("x-amz-invocation-type") or "RequestResponse"
    if invocation_type == "DryRun":
        return ApiAnswer(204, {}, b"")
    if invocation_type != "RequestResponse":
        return _error(
            400, "InvalidParameterValueException", f"the local run supports RequestResponse, not {invocation_type}"
        )
    try:
        event = json.loads(body or b"{}")
    except ValueError:
        return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
    headers_out = {"content-type": _JSON, "x-amz-executed-version": "$LATEST"}
    try:
        result = call(event)
    except Exception as exc:  # noqa: BLE001 - Lambda reports a raising handler, it does not fail the call
        traceback.print_exc()
        payload = {"errorMessage": str(exc), "errorType": type(exc).__name__}
        headers_out["x-amz-function-error"] = "Unhandled"
        return ApiAnswer(200, headers_out, json.dumps(payload).encode())
    return ApiAnswer(200, headers_out, json.dumps(result).encode())
