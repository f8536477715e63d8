"""API Gateway HTTP API (payload format 2.0) events, built the way API Gateway builds them.

Shared by the local run (every real HTTP request becomes one of these) and `dodo-cio event`
(files for `sam local invoke -e`), so the handler sees one event shape whichever way it is driven.
Stdlib only: the CLI imports this for every subcommand.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable
from typing import Any, Final

from dodo_cio.receiving.signature import parse_secrets, signature_headers

WEBHOOK_PATH: Final = "/webhooks/dodo"
ROUTE_KEY: Final = f"POST {WEBHOOK_PATH}"
# Development-only secret: printed by `make run` and used to sign the stored events in events/apigw.
# It is base64 of a readable 32-byte phrase so nobody mistakes it for a real one.
DEV_WEBHOOK_SECRET: Final = "whsec_ZG9kby1jaW8gbG9jYWwgZGV2ZWxvcG1lbnQgb25seSE="  # noqa: S105
# Placeholders where API Gateway would put the real account/API ids.
FAKE_ACCOUNT_ID: Final = "123456789012"
FAKE_API_ID: Final = "dodocio01"


def first_secret(raw: str) -> bytes:
    """The key a sender signs with: the first of a (possibly rotating) list."""
    return parse_secrets(raw)[0]


def join_headers(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Header names lower-cased, repeats joined with ',' and cookies split out, as HTTP APIs do."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers, cookies


def request_id() -> str:
    """Same shape as API Gateway's (`JKJaXmPLvHcESHA=`): 10 random bytes, base64."""
    return base64.b64encode(os.urandom(10)).decode("ascii")


def http_api_event(
    *,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    query: str = "",
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    domain: str | None = None,
    time_ms: int | None = None,
    req_id: str | None = None,
    force_base64: bool = False,
) -> dict[str, Any]:
    """One HTTP API v2 event; the body is text when it is UTF-8, else base64 (isBase64Encoded)."""
    now_ms = int(time.time() * 1000) if time_ms is None else time_ms
    rid = request_id() if req_id is None else req_id
    host = domain or f"{FAKE_API_ID}.execute-api.us-east-1.amazonaws.com"
    joined, cookies = join_headers(headers)
    route_key = f"{method} {path}" if f"{method} {path}" == ROUTE_KEY else "$default"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        params: dict[str, str] = {}
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key:
                params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": FAKE_ACCOUNT_ID,
        "apiId": FAKE_API_ID,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": method,
            "path": path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": rid,
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
        "timeEpoch": now_ms,
    }
    if body:
        text: str | None = None
        if not force_base64:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
            event["isBase64Encoded"] = False
    else:
        event["isBase64Encoded"] = False
    return event


def signed_webhook_event(
    body: bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    webhook_id: str | None = None,
    req_id: str | None = None,
    source_ip: str = "203.0.113.10",
    force_base64: bool = False,
) -> dict[str, Any]:
    """What the ingest function receives when Dodo delivers `body` through the deployed API."""
    ts = int(time.time()) if timestamp is None else timestamp
    signed = signature_headers(first_secret(secret), body, webhook_id=webhook_id, timestamp=ts)
    host = f"{FAKE_API_ID}.execute-api.us-east-1.amazonaws.com"
    headers = [
        ("content-length", str(len(body))),
        ("content-type", "application/json"),
        ("host", host),
        ("user-agent", "dodo-cio-tools"),
        *signed.items(),
        ("x-forwarded-for", source_ip),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
    ]
    return http_api_event(
        method="POST",
        path=WEBHOOK_PATH,
        headers=headers,
        body=body,
        source_ip=source_ip,
        domain=host,
        time_ms=ts * 1000,
        req_id=req_id,
        force_base64=force_base64,
    )
