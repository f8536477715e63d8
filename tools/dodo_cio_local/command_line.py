"""`make run`: the real ingest handler behind a local HTTP endpoint, AWS emulated by moto on loopback.

The command line of `python -m dodo_cio_local` (what `make run` runs): its options, the banner
that says where everything is and how to send a signed sample, and serving until Ctrl-C or
SIGTERM. Apart from the bridge (`local_run.py`) because tests and the load test start bridges
without any of this. The first paragraph above is the command's `--help` description.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, WEBHOOK_PATH
from dodo_cio_local.http_front import LocalBridgeInfo
from dodo_cio_local.local_aws import DEFAULT_AWS_PORT
from dodo_cio_local.local_run import (
    DEFAULT_DODO_PORT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SANDBOX_PORT,
    SANDBOX_SITE_ID,
    LocalBridge,
)
from dodo_cio_local.local_template import DEFAULT_TEMPLATE, LocalRunError
from dodo_cio_local.retry_drain import BACKOFF_SCALE_ENV, DEFAULT_BACKOFF_SCALE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m dodo_cio_local`; pass them after `make run ARGS=...`."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="webhook port (default %(default)s)")
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=DEFAULT_SANDBOX_PORT,
        help="Customer.io sandbox port (default %(default)s; unused with real credentials)",
    )
    parser.add_argument(
        "--dodo-port",
        type=int,
        default=DEFAULT_DODO_PORT,
        help="port of the stand-in for Dodo's API on 127.0.0.1 (default %(default)s; 0 = any free port)",
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
        "--sandbox-rate-limit",
        type=float,
        default=None,
        metavar="RPS",
        help="the sandbox answers 429 with Retry-After above this many requests per second, as a workspace "
        "at its limit does; the bridge's budget (CUSTOMERIO_RATE_LIMIT_RPS) follows it unless that is set",
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
    """Everything a person needs to use the run, printed once it is up: URLs, secret, queues, commands."""
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
    if info.sandbox_url is not None and info.customerio_api == "pipelines":
        lines += [
            f"  Customer.io     local sandbox, Data Pipelines API at {info.pipelines_url}  (CUSTOMERIO_API=pipelines)",
            f"                  received requests: {info.sandbox_url}/__sandbox/requests",
        ]
    elif info.sandbox_url is not None:
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
        f"  Dodo API        stand-in at {info.dodo_api_url} (API key {info.dodo_api_key!r}); rehearse a webhook",
        f"                  Dodo gave up on: POST {info.dodo_api_url}/__dodo/events?withhold=1 with its body",
        f"  retry drain     {bridge.drain_status}",
        f"  emulated AWS    {info.aws_endpoint}  (SQS, SSM, DynamoDB on 127.0.0.1;",
        f"                  the ingest function's Lambda Invoke API at {info.webhook_url.removesuffix(WEBHOOK_PATH)})",
        "",
        "The operator commands reach this run with --local (they read the status page):",
        "  .venv/bin/dodo-cio setup --local | check --local | trace ID --local | reconcile --since DAY --local",
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
            sandbox_rate_limit=getattr(args, "sandbox_rate_limit", None),
            dodo_port=getattr(args, "dodo_port", DEFAULT_DODO_PORT),
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
    """`python -m dodo_cio_local [options]`; the exit status (2 when the run cannot start)."""
    parser = argparse.ArgumentParser(prog="python -m dodo_cio_local", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
