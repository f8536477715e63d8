"""API Gateway HTTP API (payload v2) events carrying signed Dodo webhooks, for the tests."""

from __future__ import annotations

from typing import Any

from dodo_cio.receiving.signature import signature_headers
from dodo_cio_cli.apigw import http_api_event as build_event


def http_api_event(body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict[str, Any]:
    """The webhook route's event, from the one builder the local run and `dodo-cio event` use."""
    return build_event(
        method="POST",
        path="/webhooks/dodo",
        headers=[("content-type", "application/json"), *headers.items()],
        body=body,
        force_base64=base64_body,
    )


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
