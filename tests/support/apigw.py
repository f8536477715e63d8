"""Build API Gateway HTTP API (payload v2) events carrying signed Dodo webhooks."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from dodo_cio.signature import signature_headers

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "dodo"


def sample_paths() -> list[Path]:
    return sorted(SAMPLES.glob("*.json"))


def http_api_event(body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/dodo",
        "rawPath": "/webhooks/dodo",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local",
            "http": {
                "method": "POST",
                "path": "/webhooks/dodo",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
            },
            "requestId": f"req-{now}",
            "routeKey": "POST /webhooks/dodo",
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


def signed_event(
    body: bytes,
    secret: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    headers = signature_headers(secret, body, webhook_id=webhook_id, timestamp=timestamp)
    return http_api_event(body, headers, base64_body=base64_body)
