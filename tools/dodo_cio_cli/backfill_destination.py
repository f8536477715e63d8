"""Backfill, the Customer.io side: which API the ops go to, with what credentials, limits and client.

The ops are the same whichever API the deployment uses (`OpBuilder` runs the bridge's mapping);
what differs is said here, once, and always the way the bridge itself says it:

* the settings are the functions' own (`Settings.from_env`, `bridge_settings`), read from the
  same stack parameters, so the mapping's defaults (`Settings.mapping()`: identifier, subscription
  objects, profile metadata) and the URLs are validated and derived as the functions derive them;
* the client is `Settings.delivery_clients(...)`'s for the chosen API: Track's `TrackClient`, or
  the `PipelinesClient` (strict mode, Basic auth with the key and an empty password, each op
  rendered as one Pipelines call, packed into `/batch` requests);
* the requests are planned by that API's published limits (`Settings.delivery_limits`);
* the credentials are that API's only: a Pipelines backfill needs no Track site id or key;
* the preflight is `dodo-cio check`'s for that API, so a wrong key stops the run before Dodo is read.

Imported only when a backfill runs: `dodo_cio.configuration.settings` pulls in the HTTP stack, and the other
subcommands must stay quick to start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from dodo_cio.configuration.settings import PIPELINES_API_KEY_NAME, Settings
from dodo_cio.delivery.destination import (
    PIPELINES,
    TRACK,
    TRACK_LIMITS,
    ApiLimits,
    Credentials,
    DeliveryClient,
    PipelinesCredentials,
    TrackCredentials,
)
from dodo_cio.delivery.track import TRACK_HOSTS
from dodo_cio.platform.env import ConfigError
from dodo_cio_cli.backfill_source import BackfillError, Op

PIPELINES_KEY_ENV: Final = "CUSTOMERIO_PIPELINES_API_KEY"
# A backfill request carries up to 500 kB: longer than the functions' 5 s read timeout allows for.
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 30.0
_HINTS: Final = {
    TRACK: "check the site id and API key (Settings → API credentials → Track API) and the track URL",
    PIPELINES: "check the Pipelines API key (Data Pipelines → Sources → your HTTP API source → Settings) "
    "and the Pipelines URL",
}


@dataclass(frozen=True, slots=True)
class Destination:
    """The chosen API: where it is, its limits, and how the run talks about it.

    The defaults are Track's US host, as for a bridge deployed with the template's defaults.
    """

    api: str = TRACK
    region: str = "us"
    override: str | None = None  # the chosen API's base-URL override (--track-url / --pipelines-url)
    url: str = TRACK_HOSTS["us"]
    limits: ApiLimits = TRACK_LIMITS
    settings: Settings | None = field(default=None, repr=False, compare=False)  # None: the defaults

    @classmethod
    def of(cls, settings: Settings, override: str | None) -> Destination:
        """The API `settings` chose (`bridge_settings`); `override` is its URL override as given, if any."""
        api = settings.customerio_api
        url = settings.pipelines_url if api == PIPELINES else settings.track_url
        return cls(api, settings.region, override or None, url, settings.delivery_limits, settings)

    @property
    def label(self) -> str:
        return "Pipelines API" if self.api == PIPELINES else "Track API"

    @property
    def requests_to(self) -> str:
        """Where the requests go, for the summary."""
        return "the Pipelines API" if self.api == PIPELINES else "/api/v2/batch"

    @property
    def refused_hint(self) -> str:
        """What to check when Customer.io refuses the credentials during the run."""
        return _HINTS[self.api]

    def preview(self, op: Op) -> Op:
        """What is sent for `op`: the op itself (Track), or its Pipelines call as a batch item.

        Raises ValueError (`RenderError`) for an op Pipelines cannot say, so a dry run reports the
        object the real run would have rejected.
        """
        if self.api != PIPELINES:
            return op
        from dodo_cio.delivery.pipelines.render import render  # noqa: PLC0415

        return render(op).batch_item()

    def credentials(self, read: Callable[[str, str], str], env: Mapping[str, str]) -> Credentials:
        """This API's credentials: the environment first, then SSM through `read(name, what)` ("" if absent)."""
        if self.api == PIPELINES:
            key = env.get(PIPELINES_KEY_ENV, "").strip() or read(PIPELINES_API_KEY_NAME, "the Pipelines API key")
            if not key:
                raise BackfillError(
                    "no Customer.io Pipelines API key: pass --stack/--ssm-path to read "
                    f"<path>/{PIPELINES_API_KEY_NAME} from SSM, or set {PIPELINES_KEY_ENV} "
                    "(or try --dry-run first: it needs none)"
                )
            return PipelinesCredentials(key)
        site_id = env.get("CUSTOMERIO_SITE_ID", "").strip()
        api_key = env.get("CUSTOMERIO_API_KEY", "").strip()
        if not (site_id and api_key):
            site_id = read("customerio-site-id", "the Customer.io site id")
            api_key = read("customerio-api-key", "the Customer.io API key")
        if not (site_id and api_key):
            raise BackfillError(
                "no Customer.io credentials: pass --stack/--ssm-path to read them from SSM, or set "
                "CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY (or try --dry-run first: it needs none)"
            )
        return TrackCredentials(site_id, api_key)

    def preflight(self, credentials: Credentials) -> None:
        """`dodo-cio check`'s verdict on the credentials; BackfillError before Dodo is read when not ok."""
        from dodo_cio_cli.check import check_customerio  # noqa: PLC0415
        from dodo_cio_cli.check_pipelines import check_pipelines  # noqa: PLC0415

        if isinstance(credentials, PipelinesCredentials):
            finding = check_pipelines(self.region, self.override, credentials.api_key)
        else:
            finding = check_customerio(self.region, self.override, credentials.site_id, credentials.api_key)
        if finding.status != "ok":
            hint = f" ({finding.hint})" if finding.hint else ""
            raise BackfillError(f"Customer.io check failed: {finding.reason}{hint}")

    def client(self, credentials: Credentials, pace: Callable[[], None] | None = None) -> DeliveryClient:
        """The bridge's own client for this API; `pace` runs before each extra request a Pipelines send makes."""
        settings = self.settings if self.settings is not None else bridge_settings({})
        return settings.delivery_clients(pace=pace).get(credentials)

    def check_rate(self, rate: float) -> None:
        """`--rate` within the API's published rate: faster would only earn 429s, or get the source throttled."""
        limits = self.limits
        if rate > limits.requests_per_second:
            raise BackfillError(
                f"--rate {rate:g} is over the {self.label}'s published rate "
                f"({limits.requests:,} requests per {limits.per_seconds:g} s)"
            )


def workspace_key(credentials: Credentials | None) -> str:
    """What names the workspace in the state file's fingerprint beside the URL (hashed there).

    Track's site id; nothing for Pipelines, whose key names a source, not a workspace, and changes
    on a rotation that must not make a half-done backfill start over.
    """
    return credentials.site_id if isinstance(credentials, TrackCredentials) else ""


def bridge_settings(values: Mapping[str, str]) -> Settings:
    """The functions' settings from these variables (as the template would set them), with the
    backfill's longer Customer.io timeouts; BackfillError with the functions' own message if invalid."""
    env = {
        **values,
        "CUSTOMERIO_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "CUSTOMERIO_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        raise BackfillError(str(exc)) from None
