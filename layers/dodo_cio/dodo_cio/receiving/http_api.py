"""The HTTP boundary: the webhook request as API Gateway hands it over, and the answer Dodo gets.

Kept apart from the ingest service so the lower stages that answer for themselves (the duplicate
check's stored answers, its 503 when DynamoDB is down) need not import the service that uses them.
The answers and why each is given are listed in `dodo_cio.ingest.service`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# One answer whichever state read failed (ledger or duplicate check): the README documents this body.
STATE_DOWN: Final = "duplicate check unavailable; retry later"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    headers: Mapping[str, str]
    body: bytes


REPLAYED_HEADER: Final = "idempotent-replayed"  # "true" on the stored answer to a webhook id seen before


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: dict[str, Any]
    # The stored answer of an earlier delivery of the same webhook id: a header, not part of the answer.
    replayed: bool = field(default=False, compare=False)

    def to_apigw(self) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if self.replayed:  # the body is the first answer's, unchanged: Dodo sees the same; a person is told
            headers[REPLAYED_HEADER] = "true"
        return {
            "statusCode": self.status,
            "headers": headers,
            "body": json.dumps(self.body, separators=(",", ":")),
        }


class MalformedEvent(ValueError):
    """An invoke event API Gateway would never send (only a direct invoke can): answered 400."""


def request_from_apigw(event: Any) -> WebhookRequest:
    """Raw body bytes exactly as signed: API Gateway base64-encodes some bodies.

    Raises `MalformedEvent` for a shape API Gateway never sends (a direct invoke's mistake), so
    the caller answers it with a clear error instead of a traceback.
    """
    if not isinstance(event, Mapping):
        raise MalformedEvent(f"the event must be a JSON object, not {type(event).__name__}")
    headers = event.get("headers") or {}
    body = event.get("body") or ""
    if not isinstance(headers, Mapping):
        raise MalformedEvent(f"headers must be an object, not {type(headers).__name__}")
    if not isinstance(body, str | bytes):
        raise MalformedEvent(f"body must be a string, not {type(body).__name__}")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raw = b"\x00invalid-base64"  # cannot match any signature -> 401, never a crash
    else:
        # surrogatepass: a lone surrogate cannot be what Dodo signed; it fails verification, not the handler
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    return WebhookRequest({str(k): str(v) for k, v in headers.items()}, raw)
