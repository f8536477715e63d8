"""Identity lookups against Dodo Payments' API, small enough to run on the webhook's request path.

Some webhooks name their customer only by `customer_id` (dunning, license keys, credits, ...), and
a dispute names only its `payment_id`. The bridge first looks in its own directory of customers it
has seen; when that has no entry, it asks Dodo: `GET /customers/{customer_id}` or
`GET /payments/{payment_id}`, with the merchant's API key as a Bearer token.

Why the standard library: this runs in the ingest Lambda, which must answer Dodo within a strict
budget and pays for every import at cold start. The `dodopayments` SDK brings httpx and pydantic,
and `requests` alone costs ~110 ms of imports (bench/RESULTS.md); two GETs need neither. The
transport is :class:`dodo_cio.platform.http.KeepAliveClient`, the one the Track client uses, so the TLS
connection to Dodo is kept across warm invocations.

The time budget: `connect_timeout` (1 s) and `read_timeout` (2 s) bound a call, and each call takes
an optional `deadline`, an absolute `time.monotonic()` value (the resolver passes the earlier of
its lookup budget and the invocation's deadline: `dodo_cio.state.identity`, `dodo_cio.platform.deadline`). With a
deadline the connect timeout and every wait for bytes are at most the time left, so the effective read timeout
is `min(read_timeout, time left)`; with less than `MIN_CALL_TIME` left the call is not started at
all and :class:`DodoApiUnavailable` is raised at once. (Name resolution is the one step the standard
library cannot bound.) There are no retries here: the caller decides whether to park the event.

What the bridge reads from the answers (the shapes are the SDK's `Customer` and `Payment` models;
the raw JSON objects are returned, so other fields are there too):

* `customer(...)`: `customer_id`, `email`, `name`, `phone_number` (may be null) and `metadata`
  (may be absent or null; string, number or boolean values).
* `payment(...)`: `payment_id` and `customer`, a `CustomerLimitedDetails` object with the same
  `customer_id`, `email`, `name`, `phone_number` and `metadata`.

The API key is sent only in the Authorization header. It is never logged (this module logs
nothing), never put in an exception message, and any echo of it in an error body is redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import quote

from dodo_cio.platform.http import Answer, KeepAliveClient, TransportError, TransportTimeout

# The SDK's `dodopayments._client.ENVIRONMENTS`.
DODO_API_HOSTS: Final = {"live_mode": "https://live.dodopayments.com", "test_mode": "https://test.dodopayments.com"}
MAX_ANSWER_BYTES: Final = 1024 * 1024  # a customer or a payment is a few KiB
_TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
_MAX_DETAIL: Final = 200


class DodoApiError(Exception):
    """Dodo answered something the bridge cannot use; `status` is its HTTP status, if it answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DodoApiConfigError(DodoApiError):
    """401/403: the API key is wrong, revoked, or for the other mode. Retrying will not help."""


class DodoApiUnavailable(DodoApiError):
    """Transient: 408/425/429/5xx, a timeout, a connection error, an unreadable answer, or no time left."""


class GetTransport(Protocol):
    """What :class:`DodoApi` needs from a transport; :class:`KeepAliveClient` is the real one."""

    def get(
        self, path: str, headers: dict[str, str], *, deadline: float | None = None, max_bytes: int | None = None
    ) -> Answer: ...

    def close(self) -> None: ...


def dodo_api_base_url(mode: str, override: str | None = None) -> str:
    """The API's base URL for `mode` (`live_mode` or `test_mode`), or `override` (e.g. `DODO_API_URL`) if set."""
    host = DODO_API_HOSTS.get(mode.strip().lower())
    if host is None:  # checked even with an override: a typo here would bite after the proxy is gone
        allowed = " or ".join(repr(m) for m in DODO_API_HOSTS)
        raise ValueError(f"Dodo API mode must be {allowed}, not {mode!r}")
    if override and override.strip():
        return override.strip().rstrip("/")
    return host


class DodoApi:
    """`GET /customers/{id}` and `GET /payments/{id}` over one kept-alive connection; not thread-safe.

    Both return the parsed JSON object, or None when Dodo answers 404 (no such object for this key;
    also what a wrong base-URL path looks like) or when the id is empty, `.` or `..` (nothing is
    sent for those: they cannot name an object, and a dot segment would change the path). They
    raise :class:`DodoApiConfigError` on 401/403, :class:`DodoApiUnavailable` on anything
    transient, and :class:`DodoApiError` on any other answer.
    """

    # With less time than this left before the deadline, a call is not started (module doc).
    MIN_CALL_TIME: ClassVar[float] = 0.05

    def __init__(
        self,
        base_url: str,
        api_key: str,
        transport: GetTransport | None = None,  # tests; else a kept-alive connection to base_url
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,  # what `deadline` is measured on; tests drive it
    ) -> None:
        key = api_key.strip()
        if not key or not all("!" <= c <= "~" for c in key):  # also keeps it out of http.client's ValueError
            raise ValueError("the Dodo API key is empty or has characters an API key cannot have")
        self.base_url = base_url.strip().rstrip("/")
        self._transport: GetTransport = (
            transport
            if transport is not None
            else KeepAliveClient(self.base_url, connect_timeout=connect_timeout, read_timeout=read_timeout)
        )
        self._key = key
        self._clock = clock
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": "dodo-customerio-bridge",
        }

    def customer(self, customer_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        """The customer as `GET /customers/{customer_id}` returns it, or None if Dodo has none."""
        return self._get("customers", customer_id, deadline)

    def payment(self, payment_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        """The payment as `GET /payments/{payment_id}` returns it (its `customer` inside), or None."""
        return self._get("payments", payment_id, deadline)

    def close(self) -> None:
        self._transport.close()

    def _get(self, collection: str, object_id: str, deadline: float | None) -> dict[str, Any] | None:
        if object_id in ("", ".", ".."):  # names nothing (a dot segment would be resolved away): not sent
            return None
        path = f"/{collection}/{quote(object_id, safe='')}"  # `/`, `?`, `#`, `%` cannot leave the segment
        what = f"GET {path}"
        if deadline is not None and deadline - self._clock() < self.MIN_CALL_TIME:
            raise DodoApiUnavailable(f"{what} not sent: too little time left before the deadline")
        try:
            answer = self._transport.get(path, self._headers, deadline=deadline, max_bytes=MAX_ANSWER_BYTES)
        except TransportTimeout as exc:
            raise DodoApiUnavailable(f"{what}: no answer in time ({exc})") from None
        except TransportError as exc:
            raise DodoApiUnavailable(f"{what}: connection error ({exc})") from None
        return self._classify(what, answer.status, answer.body)

    def _classify(self, what: str, status: int, body: bytes) -> dict[str, Any] | None:
        if status == 200:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise DodoApiUnavailable(f"{what}: HTTP 200 with a body that is not JSON", status=status) from None
            if not isinstance(parsed, dict):
                raise DodoApiUnavailable(f"{what}: HTTP 200 with a body that is not a JSON object", status=status)
            return parsed
        if status == 404:
            return None
        if status in (401, 403):
            raise DodoApiConfigError(
                f"{what}: Dodo refused the API key (HTTP {status}); it is wrong or revoked, or it belongs to the "
                "other mode (a test_mode key against live_mode or the reverse)",
                status=status,
            )
        detail = self._detail(body)
        if status in _TRANSIENT_STATUSES or status >= 500:
            raise DodoApiUnavailable(f"{what}: HTTP {status}{detail}", status=status)
        raise DodoApiError(f"{what}: unexpected HTTP {status}{detail}", status=status)

    def _detail(self, body: bytes) -> str:
        """Dodo's `message` (or the start of the body), shortened and with the key redacted."""
        text = body.decode("utf-8", "replace")  # whole (at most MAX_ANSWER_BYTES): redact before cutting
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            text = parsed["message"]
        text = " ".join(text.replace(self._key, "[redacted]").split())[:_MAX_DETAIL]
        return f": {text}" if text else ""
