"""`--local`: how the operator commands find a running `make run`, and what replaces AWS-only calls there.

The CLI finds the local run through its status page, `GET <local URL>/__local`, which lists the
emulated AWS endpoint (moto's server), the queues' URLs and ARNs, the SSM path and the ingest
function's name (see `http_front.FrontHandler._status_page`). The local URL is the one `make run` serves
webhooks on by default, http://127.0.0.1:3000; `--local-url` or `$DODO_CIO_LOCAL_URL` point elsewhere
(`make run ARGS='--port N'`). A live page rather than a state file: it cannot go stale when the run
is killed, and it already reports the ports actually bound.

moto has no StartMessageMoveTask, so a local redrive moves messages itself (`move_messages`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.error import URLError
from urllib.request import urlopen

from dodo_cio_cli.aws_calls import OperatorError, call_aws

LOCAL_ACCESS_KEY_ID: Final = "local"
LOCAL_SECRET_ACCESS_KEY: Final = "local"  # noqa: S105 - the emulator's placeholder, not a secret


_session: Any = None


def endpoint_client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client for an emulated endpoint, with placeholder credentials (never the user's)."""
    global _session  # noqa: PLW0603 - one session per process: loading its data is the slow part
    import boto3  # noqa: PLC0415

    if _session is None:
        _session = boto3.session.Session()  # not the default one: no profile, no cached credentials
    make: Any = _session.client
    return make(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )


DEFAULT_LOCAL_URL: Final = "http://127.0.0.1:3000"
LOCAL_URL_ENV: Final = "DODO_CIO_LOCAL_URL"
STATUS_PATH: Final = "/__local"
LOGS_PATH: Final = "/__local/logs"  # as dodo_cio_local.log_keeper serves it (the CLI does not import the emulator)
STATUS_TIMEOUT: Final = 5.0
MOVE_VISIBILITY_SECONDS: Final = 30  # long enough to send and delete one batch of 10


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """A running local bridge as the operator commands need it."""

    base_url: str
    webhook_url: str
    aws_endpoint: str
    region: str
    retry_queue_url: str
    retry_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    quarantine_queue_url: str  # "" when the local run predates quarantine
    ssm_parameter_path: str
    lambda_endpoint: str
    ingest_function: str
    # The deployment the run stands for (`dodo-cio check --local`); empty from a run older than it.
    deployment: Mapping[str, str] = field(default_factory=dict)
    state_table: str = ""

    def log_lines(self, fetch: Callable[[str, float], Any] | None = None) -> list[str]:
        """Both functions' recent log lines, kept by the run (`GET /__local/logs`); [] from a run without them."""
        try:
            page = (fetch or _fetch_status)(self.base_url + LOGS_PATH, STATUS_TIMEOUT)
        except (URLError, OSError, ValueError):
            return []
        lines = page.get("lines") if isinstance(page, dict) else None
        return [line for line in lines if isinstance(line, str)] if isinstance(lines, list) else []

    def client(self, service: str) -> Any:
        """boto3 client for the emulated AWS; `lambda` goes to the local run's own Invoke API."""
        endpoint = self.lambda_endpoint if service == "lambda" else self.aws_endpoint
        return endpoint_client(service, endpoint, self.region)


def local_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """--local-url, else $DODO_CIO_LOCAL_URL, else make run's default; without a trailing slash."""
    value = explicit or (os.environ if env is None else env).get(LOCAL_URL_ENV, "").strip() or DEFAULT_LOCAL_URL
    if not value.startswith(("http://", "https://")):
        raise OperatorError(f"the local run's URL must be http(s)://HOST:PORT, not {value!r}")
    return value.rstrip("/")


def _fetch_status(url: str, timeout: float) -> Any:
    with urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) checked in local_url
        return json.loads(response.read())


def discover(
    base_url: str,
    *,
    fetch: Callable[[str, float], Any] | None = None,
    timeout: float = STATUS_TIMEOUT,
) -> LocalTarget:
    """Read the status page of the local run at `base_url`; OperatorError when nothing usable answers."""
    url = base_url + STATUS_PATH
    hint = f"start it with `make run` (or pass --local-url / set {LOCAL_URL_ENV} to where it listens)"
    try:
        page = (fetch or _fetch_status)(url, timeout)
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperatorError(f"no local run answers at {base_url} ({reason}); {hint}") from None
    except ValueError:
        raise OperatorError(f"{url} did not answer JSON: is that a `make run` of this bridge?") from None
    aws = page.get("aws") if isinstance(page, dict) else None
    if not isinstance(aws, dict) or not aws.get("endpoint"):
        raise OperatorError(
            f"{url} lists no emulated AWS endpoint: the local run there is older than --local or still stopping"
        )

    def text(key: str) -> str:
        value = aws.get(key)
        return value if isinstance(value, str) else ""

    return LocalTarget(
        base_url=base_url,
        webhook_url=str(page.get("webhook_url") or base_url + "/webhooks/dodo"),
        aws_endpoint=text("endpoint"),
        region=text("region") or "us-east-1",
        retry_queue_url=text("retry_queue_url"),
        retry_queue_arn=text("retry_queue_arn"),
        dead_letter_queue_url=text("dead_letter_queue_url"),
        dead_letter_queue_arn=text("dead_letter_queue_arn"),
        quarantine_queue_url=text("quarantine_queue_url"),
        ssm_parameter_path=text("ssm_parameter_path"),
        lambda_endpoint=text("lambda_endpoint") or base_url,
        ingest_function=text("ingest_function"),
        state_table=text("state_table"),
        deployment={str(k): str(v) for k, v in (page.get("deployment") or {}).items() if isinstance(v, str)},
    )


def move_messages(
    sqs: Any,
    source_url: str,
    destination_url: str,
    *,
    rate: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Move the messages on `source_url` to `destination_url` by receive, send, delete; returns how many.

    What StartMessageMoveTask does in SQS, for an emulator that lacks it: body and message
    attributes travel unchanged (the message gets a new id, as with SQS), and only as many messages
    as were waiting when the move began are moved, so a delivery that fails again and comes back
    meanwhile is not sent round a second time. Each message is deleted from the source only after
    the destination accepted it: a failure midway leaves it on the source (hidden for
    MOVE_VISIBILITY_SECONDS) rather than lost. `rate` caps messages per second.
    """
    attributes = call_aws(
        "reading the dead-letter queue",
        lambda: sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["ApproximateNumberOfMessages"]),
    )
    waiting = int(attributes.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))
    moved = 0
    started = time.monotonic()
    while moved < waiting:
        batch = min(10, waiting - moved)
        got = call_aws(
            "reading the dead-letter queue",
            lambda: sqs.receive_message(
                QueueUrl=source_url,
                MaxNumberOfMessages=batch,  # noqa: B023 - called at once, inside this iteration
                VisibilityTimeout=MOVE_VISIBILITY_SECONDS,
                MessageAttributeNames=["All"],
            ),
        )
        messages = got.get("Messages", [])
        if not messages:
            break
        for message in messages:
            request: dict[str, Any] = {"QueueUrl": destination_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                request["MessageAttributes"] = message["MessageAttributes"]
            handle = message["ReceiptHandle"]
            call_aws("sending to the retry queue", lambda: sqs.send_message(**request))  # noqa: B023 - called at once
            call_aws(
                "deleting from the dead-letter queue",
                lambda: sqs.delete_message(QueueUrl=source_url, ReceiptHandle=handle),  # noqa: B023 - called at once
            )
            moved += 1
            if rate:
                ahead = started + moved / rate - time.monotonic()
                if ahead > 0:
                    sleep(ahead)
    return moved
