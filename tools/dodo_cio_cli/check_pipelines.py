"""`dodo-cio check` for a Pipelines deployment: is the Data Pipelines API key accepted?

The Pipelines API has no read-only call to ask "whose key is this?" (Track has
`GET /api/v1/accounts/region`; every Pipelines endpoint is a `POST` that sends data). So the
check sends the one request that can carry no data: `POST /batch` with an empty batch,
`{"batch": []}`, in strict mode, with the key exactly as the bridge sends it (Basic auth, the key
as the user and an empty password, `X-Strict-Mode: 1`: `pipelines_headers`).

Why it creates nothing: the batch holds no call, so there is no person, event, object or
relationship in it to create, nor anything for the source to pass on to the other destinations
connected to it. That holds whatever the API makes of an empty batch (the published spec allows
it: 200; a stricter server may refuse it: 400). The alternative, an `identify` with neither
`userId` nor `anonymousId`, creates nothing only as long as strict mode refuses it.

Why strict mode: without it Pipelines answers 200 to whatever it drops, so a 200 would prove
nothing; with it a bad key is a 401. An answer of 2xx or 400 therefore means the key was accepted
and the body then judged, *provided the server checks the key first*. That is not assumed: the
same request is sent once more with a made-up key, which must be answered 401 (or 403). Should the
host answer it like the real key (a proxy that does not authenticate, a server that judges the
body first), the check says it cannot tell rather than report a key it has not verified.

A key rejected by the configured region's host is tried on the other region's (when no URL
override is set), as for Track: accepted there, the finding names the region to configure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dodo_cio.configuration.settings import PIPELINES_API_KEY_NAME
from dodo_cio.delivery.pipelines.client import PIPELINES_HOSTS, pipelines_base_url, pipelines_headers
from dodo_cio_cli.findings import PROBE_TIMEOUT, Finding, request_once, short_body, wrong_region

if TYPE_CHECKING:
    import requests

PROBE_PATH: Final = "/batch"
PROBE_BODY: Final = b'{"batch":[]}'
# The control request's key: no Customer.io source has it, so a host that checks keys refuses it.
CONTROL_KEY: Final = "dodo-cio-check-control-not-a-pipelines-key"
NAME: Final = "Customer.io Pipelines key"
KEY_HINT: Final = (
    "in Customer.io: Data Pipelines → Sources → your HTTP API source (Customer.io API) → Settings → API Key; "
    f"put it into {PIPELINES_API_KEY_NAME} (a Track site id or API key is not a Pipelines key)"
)
_REJECTED: Final = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class PipelinesAnswer:
    """What the probe got: status None when no answer arrived (`error` says why)."""

    status: int | None
    error: str = ""
    location: str | None = None  # a redirect's target

    @property
    def authenticated(self) -> bool:
        """Past authentication: 2xx (the empty batch accepted) or 400 (its content refused)."""
        return self.status is not None and (200 <= self.status < 300 or self.status == 400)


Probe = Callable[..., PipelinesAnswer]


def probe_pipelines(
    base_url: str,
    api_key: str,
    *,
    session: requests.Session | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> PipelinesAnswer:
    """POST an empty batch in strict mode with this key; redirects are reported, not followed."""
    url = f"{base_url.rstrip('/')}{PROBE_PATH}"
    headers = {**pipelines_headers(api_key), "User-Agent": "dodo-cio-tools (check)"}
    response, failure = request_once("post", url, headers, session=session, timeout=timeout, data=PROBE_BODY)
    if response is None:
        return PipelinesAnswer(None, error=failure)
    status = int(response.status_code)
    if 300 <= status < 400:
        return PipelinesAnswer(status, location=str(response.headers.get("Location", "")))
    return PipelinesAnswer(status, error="" if 200 <= status < 300 else short_body(response))


def _confirmed(base_url: str, answer: PipelinesAnswer, probe: Probe, **http: Any) -> Finding:
    """The key's answer was 2xx/400: ok only when the same request with a made-up key is refused."""
    control = probe(base_url, CONTROL_KEY, **http)
    if control.status in _REJECTED:
        verdict = "refused for its content (400)" if answer.status == 400 else f"answered HTTP {answer.status}"
        reason = (
            f"accepted by {base_url}: its empty strict-mode batch was {verdict}, a made-up key's refused "
            f"(HTTP {control.status}); it carried no data"
        )
        return Finding(NAME, "ok", reason)
    seen = f"HTTP {control.status}" if control.status is not None else control.error
    return Finding(
        NAME,
        "FAIL",
        f"cannot tell whether the key is right: {base_url} answered HTTP {answer.status} to it and {seen} to a "
        "made-up key",
        "is this the Customer.io Pipelines API? check CustomerioPipelinesUrl (or --pipelines-url); "
        "https://status.customer.io shows outages",
    )


def check_pipelines(
    region: str,
    pipelines_url: str | None,
    api_key: str | None,
    *,
    session: requests.Session | None = None,
    timeout: float = PROBE_TIMEOUT,
    probe: Probe = probe_pipelines,
) -> Finding:
    """The Pipelines key is accepted by the configured host, for a source in the configured region."""
    try:
        base_url = pipelines_base_url(region, pipelines_url)
    except ValueError as exc:
        return Finding(NAME, "FAIL", str(exc), "set CustomerioRegion to us or eu; CustomerioPipelinesUrl ends in /v1")
    if not api_key:
        return Finding(NAME, "skip", "not readable from SSM (see above)")
    region = region.strip().lower()
    http: dict[str, Any] = {"session": session, "timeout": timeout}
    answer = probe(base_url, api_key, **http)
    if answer.authenticated:
        return _confirmed(base_url, answer, probe, **http)
    overridden = bool(pipelines_url and pipelines_url.strip())
    if answer.status in _REJECTED:
        other = "eu" if region == "us" else "us"
        if not overridden:  # a source in the other region is refused by this host: ask that one
            elsewhere = probe(PIPELINES_HOSTS[other], api_key, **http)
            if elsewhere.authenticated and _confirmed(PIPELINES_HOSTS[other], elsewhere, probe, **http).status == "ok":
                return wrong_region(other, NAME, "Pipelines source")
        return Finding(NAME, "FAIL", f"Customer.io rejected the Pipelines API key (HTTP {answer.status})", KEY_HINT)
    if answer.status is None:
        return Finding(NAME, "FAIL", answer.error, "check your network, or CustomerioPipelinesUrl if you set one")
    if 300 <= answer.status < 400:
        where = answer.location or "?"
        hint = "check CustomerioRegion and CustomerioPipelinesUrl"
        return Finding(NAME, "FAIL", f"{base_url} redirects to {where}", hint)
    detail = f": {answer.error}" if answer.error else ""
    busy = answer.status >= 500 or answer.status == 429
    return Finding(
        NAME,
        "FAIL",
        f"{base_url}{PROBE_PATH} answered HTTP {answer.status}{detail}",
        "try again in a minute; https://status.customer.io shows outages" if busy else "check CustomerioPipelinesUrl",
    )
