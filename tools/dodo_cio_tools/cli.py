"""`dodo-cio`: developer commands for the bridge (local run, signed test deliveries, SAM events).

Imports are lazy per subcommand so `send` and `event` stay fast and never load moto.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import requests

DEFAULT_URL: Final = "http://127.0.0.1:3000/webhooks/dodo"
SEND_TIMEOUT: Final = 15.0  # Dodo gives up on an endpoint after 15 s; so do we
EXIT_OK: Final = 0
EXIT_HTTP_ERROR: Final = 1
EXIT_USAGE: Final = 2


class UsageError(Exception):
    """Bad arguments or unreadable input: exit code 2, message on stderr."""


def _read_body(source: str) -> bytes:
    """The exact bytes to sign and send: a file, or stdin for '-'."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def _secret(value: str | None) -> str:
    from dodo_cio.signature import parse_secrets  # noqa: PLC0415

    raw = value or os.environ.get("DODO_WEBHOOK_SECRET", "")
    if not raw.strip():
        raise UsageError("no webhook secret: pass --secret whsec_... or set DODO_WEBHOOK_SECRET")
    try:
        parse_secrets(raw)
    except ValueError as exc:
        raise UsageError(f"--secret: {exc}") from None
    return raw


def _extra_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header must look like 'Name: value', not {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def send_webhook(
    body: bytes,
    *,
    url: str,
    secret: str,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = SEND_TIMEOUT,
) -> requests.Response:
    """POST `body` signed like a Dodo delivery; raises requests.RequestException on no answer."""
    import requests  # noqa: PLC0415

    from dodo_cio.signature import signature_headers  # noqa: PLC0415
    from dodo_cio_tools.apigw import first_secret  # noqa: PLC0415

    all_headers = {"content-type": "application/json", "user-agent": "dodo-cio-tools"}
    all_headers.update(
        signature_headers(first_secret(secret), body, webhook_id=webhook_id, timestamp=timestamp)
    )
    all_headers.update(headers or {})  # last, so a test can deliberately break a signature header
    return requests.post(url, data=body, headers=all_headers, timeout=timeout)


def _cmd_send(args: argparse.Namespace) -> int:
    secret = _secret(args.secret)
    body = _read_body(args.body)
    extra = _extra_headers(args.header or [])
    import requests  # noqa: PLC0415 - after the cheap checks: a usage error needs no HTTP stack

    try:
        response = send_webhook(
            body,
            url=args.url,
            secret=secret,
            webhook_id=args.webhook_id,
            timestamp=args.timestamp,
            headers=extra,
        )
    except requests.Timeout:
        print(f"dodo-cio send: no answer from {args.url} within {SEND_TIMEOUT:.0f} s", file=sys.stderr)
        return EXIT_USAGE
    except requests.RequestException as exc:
        print(f"dodo-cio send: cannot reach {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if "127.0.0.1" in args.url or "localhost" in args.url:
            print("  is `make run` running?", file=sys.stderr)
        return EXIT_USAGE
    print(f"HTTP {response.status_code} {response.reason}")
    if response.text:
        print(response.text)
    return EXIT_OK if 200 <= response.status_code < 300 else EXIT_HTTP_ERROR


def _cmd_event(args: argparse.Namespace) -> int:
    from dodo_cio_tools.apigw import signed_webhook_event  # noqa: PLC0415

    secret = _secret(args.secret)
    body = _read_body(args.body)
    event = signed_webhook_event(
        body, secret, timestamp=args.timestamp, webhook_id=args.webhook_id, force_base64=args.base64
    )
    print(json.dumps(event, indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_local(args: argparse.Namespace) -> int:
    from dodo_cio_tools import local_run  # noqa: PLC0415

    return local_run.run(args)


def _parser() -> argparse.ArgumentParser:
    from dodo_cio_tools import local_run  # noqa: PLC0415 - stdlib-only at import time

    parser = argparse.ArgumentParser(
        prog="dodo-cio", description="Developer tools for the Dodo Payments -> Customer.io bridge."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = sub.add_parser(
        "local",
        help="run the bridge locally (moto + Customer.io sandbox); what `make run` does",
        description="Serve POST /webhooks/dodo with the real ingest handler; AWS is emulated by moto, "
        "Customer.io by a local sandbox unless CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY are set "
        "(then REAL data goes to that workspace; region from CUSTOMERIO_REGION, default us).",
    )
    local_run.add_arguments(local)
    local.set_defaults(func=_cmd_local)

    send = sub.add_parser(
        "send",
        help="sign a Dodo webhook body and POST it",
        description="Sign BODY_FILE like Dodo does (Standard Webhooks) and POST it. Exit 0 on 2xx, "
        "1 on another HTTP answer, 2 on usage or connection errors.",
    )
    send.add_argument("body", metavar="BODY_FILE", help="Dodo webhook JSON body, or - for stdin")
    send.add_argument("--url", default=DEFAULT_URL, help="webhook endpoint (default %(default)s)")
    send.add_argument("--secret", help="webhook secret whsec_... (default: $DODO_WEBHOOK_SECRET)")
    send.add_argument("--webhook-id", help="webhook-id header (default: a fresh msg_... id)")
    send.add_argument("--timestamp", type=int, help="webhook-timestamp, Unix seconds (default: now)")
    send.add_argument(
        "--header",
        action="append",
        metavar="NAME:VALUE",
        help="extra or overriding request header (repeatable)",
    )
    send.set_defaults(func=_cmd_send)

    event = sub.add_parser(
        "event",
        help="print an API Gateway HTTP API v2 event for `sam local invoke -e`",
        description="Print an API Gateway HTTP API (payload 2.0) event carrying BODY_FILE, freshly "
        "signed. Signatures are valid for 5 minutes around --timestamp, so regenerate stored events "
        "before invoking: dodo-cio event events/dodo/payment.succeeded.json --secret whsec_... "
        "> /tmp/ev.json",
    )
    event.add_argument("body", metavar="BODY_FILE", help="Dodo webhook JSON body, or - for stdin")
    event.add_argument("--secret", help="webhook secret whsec_... (default: $DODO_WEBHOOK_SECRET)")
    event.add_argument("--timestamp", type=int, help="webhook-timestamp, Unix seconds (default: now)")
    event.add_argument("--webhook-id", help="webhook-id header (default: a fresh msg_... id)")
    event.add_argument(
        "--base64", action="store_true", help="base64-encode the body (isBase64Encoded), as for binary bodies"
    )
    event.set_defaults(func=_cmd_event)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"dodo-cio {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
