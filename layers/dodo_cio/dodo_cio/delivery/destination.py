"""Which Customer.io API the bridge delivers to, and what the ingest and retry paths ask of it.

A deployment picks one API (`CUSTOMERIO_API`): `track` (Track API v2, the default) or `pipelines`
(the Data Pipelines API). The mapping's ops are the same for both; only the client differs. So the
paths ask three things, in one place each, and never which API it is:

* the credentials for the chosen API: `config.Secrets.delivery_credentials()` (or the
  `SecretStore` method of the same name on the retry path), a `TrackCredentials` or a
  `PipelinesCredentials`;
* a client for them: `DeliveryClients.get(credentials)` (from `config.Settings.delivery_clients`),
  whose `send(ops)` returns a `customerio.DeliveryResult` whichever API is behind it;
* the limits to plan requests by: `config.Settings.delivery_limits`, an `ApiLimits`.

Credentials never appear in `repr` (a log line or a traceback must not print them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from dodo_cio.delivery.track import DeliveryResult
from dodo_cio.mapping.limits import MAX_BATCH_BYTES, MAX_OP_BYTES

TRACK: Final = "track"
PIPELINES: Final = "pipelines"
APIS: Final = (TRACK, PIPELINES)


@dataclass(frozen=True, slots=True)
class TrackCredentials:
    """Track API v2: the workspace's site id and Track API key (Basic auth, site id as the user)."""

    site_id: str = field(repr=False)
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PipelinesCredentials:
    """Data Pipelines API: the API key of a "Customer.io API" source (Basic auth, empty password)."""

    api_key: str = field(repr=False)


Credentials = TrackCredentials | PipelinesCredentials


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What one API accepts, so requests are planned to fit before they are sent.

    max_call_bytes:        one op (Track) or call (Pipelines) as sent must be under this.
    max_request_bytes:     one request body (a batch) must be at most this.
    max_calls_per_request: how many ops or calls one batch request carries at most.
    requests / per_seconds: the published fair-use rate for the whole workspace.
    """

    max_call_bytes: int
    max_request_bytes: int
    max_calls_per_request: int
    requests: int
    per_seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.per_seconds


# Track v2: under 32 KiB per op, 500 KB per batch (read as 500,000 bytes, the stricter reading);
# 1,000 ops per batch is the retry planner's own cap (none is documented); 1,000 requests/s is the
# rate the Track spec's info section states.
TRACK_LIMITS: Final = ApiLimits(MAX_OP_BYTES, MAX_BATCH_BYTES, 1000, 1000, 1.0)
# Pipelines (its spec's info section): "A request is limited to 32KB. A batch request is limited
# to 500KB total and 32KB per call", and 3,000 requests per 3 seconds. KB is read as 1,000 bytes
# here, the stricter reading, for both. No count per batch is documented: the Track cap is kept.
PIPELINES_LIMITS: Final = ApiLimits(32_000, 500_000, 1000, 3000, 3.0)


class DeliveryClient(Protocol):
    """What the ingest and retry paths use of a client: one call per delivery, and closing it."""

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult: ...
    def close(self) -> None: ...


class DeliveryClients:
    """One client per container, rebuilt only when the credentials change (a rotation).

    `build` makes a client for one set of credentials; `config.Settings.delivery_clients` supplies
    one bound to the deployment's API, URL and timeouts. Keeping the client keeps its kept-alive
    connection across warm invocations.
    """

    def __init__(self, build: Callable[[Credentials], DeliveryClient]) -> None:
        self._build = build
        self._client: DeliveryClient | None = None
        self._credentials: Credentials | None = None

    def get(self, credentials: Credentials) -> DeliveryClient:
        if self._client is None or self._credentials != credentials:
            if self._client is not None:
                self._client.close()
            self._client = self._build(credentials)
            self._credentials = credentials
        return self._client
