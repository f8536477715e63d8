"""Sign a Dodo body and POST it like a Dodo delivery: the one implementation `send` and `replay` share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from dodo_cio.receiving.signature import signature_headers
from dodo_cio_cli.apigw import first_secret

if TYPE_CHECKING:
    import requests

SEND_TIMEOUT: Final = 15.0  # Dodo gives up on an endpoint after 15 s; so do we


def send_webhook(
    body: bytes,
    *,
    url: str,
    secret: str,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = SEND_TIMEOUT,
    session: requests.Session | None = None,
    user_agent: str = "dodo-cio-tools",
) -> requests.Response:
    """POST `body` unchanged, signed now with the first secret.

    Raises requests.RequestException when no answer arrives.
    """
    import requests  # noqa: PLC0415 - only senders need the HTTP stack

    all_headers = {"content-type": "application/json", "user-agent": user_agent}
    all_headers.update(signature_headers(first_secret(secret), body, webhook_id=webhook_id, timestamp=timestamp))
    all_headers.update(headers or {})  # last, so a test can deliberately break a signature header
    poster: Any = session if session is not None else requests
    response: requests.Response = poster.post(url, data=body, headers=all_headers, timeout=timeout)
    return response
