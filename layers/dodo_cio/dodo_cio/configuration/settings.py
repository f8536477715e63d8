"""Configuration contract: environment variables set by template.yaml, secrets from SSM.

Environment (documented in the README, "Configuration"):
  SSM_PARAMETER_PATH      e.g. /dodo-customerio; secrets live under it (see SECRET_NAMES)
  CUSTOMERIO_REGION       us | eu
  CUSTOMERIO_API          track (default: Track API v2) | pipelines (Data Pipelines API); dodo_cio.delivery.destination
  CUSTOMERIO_TRACK_URL    optional base URL override (tests, proxies)
  CUSTOMERIO_PIPELINES_URL  optional Pipelines base URL override, ending in /v1 (tests, proxies)
  CUSTOMERIO_IDENTIFIER   customer_id | email | metadata:<key>
  RETRY_QUEUE_URL         SQS queue for deliveries that did not succeed at once
  STATE_TABLE_NAME        DynamoDB table for exactly-once per webhook id and the stale-profile check
  DEAD_LETTER_QUEUE_URL   where the retry function puts what it gives up on, with the reason
  QUARANTINE_QUEUE_URL    ingest only: where signed webhooks this version cannot parse are kept
  CUSTOMERIO_RATE_LIMIT_RPS  Customer.io requests per second both functions may use in all (default 100;
                          with pipelines at most its published 3,000 per 3 s); dodo_cio.delivery.budget
  CUSTOMERIO_INGEST_SHARE ingest's part of that budget, 0 to 1 (default 0.5); the retry drain gets the rest
  INGEST_MAX_CONCURRENCY  ingest only: the most ingest containers at once (its reserved concurrency); each
                          takes an equal part of ingest's share. 0 or unset: API_BURST_LIMIT instead
  API_BURST_LIMIT         ingest only: the webhook API's burst limit, the bound when nothing is reserved;
                          with neither set, ingest is not paced (a deployment or test without them)
  RETRY_MAX_CONCURRENCY   the retry event source's MaximumConcurrency; each container takes its share
  RECEIPT_DAYS            ingest only: days the state table keeps which webhooks arrived per Dodo object
                          (default 35; `dodo-cio reconcile` compares Dodo's history with them)
  CUSTOMERIO_CONNECT_TIMEOUT / CUSTOMERIO_READ_TIMEOUT   seconds (defaults 2 / 5)
  BOTO_CONNECT_TIMEOUT / BOTO_READ_TIMEOUT   seconds per attempt of every AWS call (defaults 1 / 1)
  ANSWER_RESERVE          seconds of the invocation's time kept to answer (default 2.5; dodo_cio.platform.deadline)
  SECRETS_MAX_AGE         seconds a fetched secret is trusted (default 300: rotation within 5 min)
  CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID  optional: each subscription becomes an object of this type
  CUSTOMERIO_PROFILE_METADATA  prefixed (default: customer metadata as metadata_<key>) | none
  CUSTOMERIO_CONTACT_FIELDS  auto (default: app under metadata:<key>, else dodo) | dodo | app: who owns the
                          person's email, name and phone (MappingConfig.contact_fields)
  DODO_API_MODE           live_mode (default) | test_mode: where unknown customers are looked up
  DODO_API_URL            optional base URL override for those lookups (tests, proxies)

Nothing here calls AWS at import time; the SSM read happens on first use and is cached.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dodo_cio.delivery.destination import (
    APIS,
    PIPELINES,
    PIPELINES_LIMITS,
    TRACK,
    TRACK_LIMITS,
    ApiLimits,
    Credentials,
    DeliveryClient,
    DeliveryClients,
    PipelinesCredentials,
    TrackCredentials,
)
from dodo_cio.delivery.pipelines.client import PIPELINES_HOSTS, PipelinesClient, pipelines_base_url
from dodo_cio.delivery.track import TrackClient, track_base_url
from dodo_cio.mapping.mapper import (
    CONTACT_FIELDS_MODES,
    PROFILE_METADATA_MODES,
    IdentifierStrategy,
    MappingConfig,
    MappingConfigError,
)
from dodo_cio.platform import aws
from dodo_cio.platform.aws import AWS_CONNECT_TIMEOUT, AWS_READ_TIMEOUT, aws_timeouts
from dodo_cio.platform.env import ConfigError, env_number
from dodo_cio.receiving.signature import parse_secrets
from dodo_cio.state.dodo_api import dodo_api_base_url

SECRET_NAMES: Final = ("webhook-secret", "customerio-site-id", "customerio-api-key")
DODO_API_KEY_NAME: Final = "dodo-api-key"  # optional; read only when a customer must be looked up
PIPELINES_API_KEY_NAME: Final = "customerio-pipelines-api-key"  # SecureString; CUSTOMERIO_API=pipelines only
# The SSM names (under the path) of each API's credentials: only the chosen API's are read.
CREDENTIAL_NAMES: Final = {TRACK: SECRET_NAMES[1:], PIPELINES: (PIPELINES_API_KEY_NAME,)}
ANSWER_RESERVE: Final = 2.5
DEFAULT_INGEST_SHARE: Final = 0.5
DEFAULT_RATE_LIMIT_RPS: Final = 100.0  # the template's CustomerioRequestsPerSecond


@dataclass(frozen=True, slots=True)
class Settings:
    ssm_path: str
    region: str
    track_url: str
    identifier: IdentifierStrategy
    retry_queue_url: str | None
    dead_letter_queue_url: str | None = None
    quarantine_queue_url: str | None = None
    state_table: str | None = None
    rate_limit_rps: float = 100.0
    retry_max_concurrency: int = 2
    ingest_share: float = DEFAULT_INGEST_SHARE
    ingest_max_concurrency: int = 0  # 0: unknown, ingest not paced
    receipt_days: int = 35  # how long the state table keeps which webhooks arrived (dodo-cio reconcile)
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    secrets_max_age: int = 300
    subscription_object_type_id: str | None = None
    profile_metadata: str = "prefixed"
    contact_fields: str = "auto"
    dodo_api_url: str = "https://live.dodopayments.com"
    aws_connect_timeout: float = AWS_CONNECT_TIMEOUT
    aws_read_timeout: float = AWS_READ_TIMEOUT
    answer_reserve: float = ANSWER_RESERVE
    customerio_api: str = TRACK
    pipelines_url: str = PIPELINES_HOSTS["us"]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        path = env.get("SSM_PARAMETER_PATH", "/dodo-customerio").strip().rstrip("/")
        if not path.startswith("/"):
            raise ConfigError(f"SSM_PARAMETER_PATH must start with '/', not {path!r}")
        region = env.get("CUSTOMERIO_REGION", "us").strip().lower() or "us"
        api = env.get("CUSTOMERIO_API", "").strip().lower() or TRACK
        if api not in APIS:
            raise ConfigError(f"CUSTOMERIO_API must be 'track' or 'pipelines', not {env.get('CUSTOMERIO_API')!r}")
        try:
            track_url = track_base_url(region, env.get("CUSTOMERIO_TRACK_URL"))
            pipelines_url = pipelines_base_url(region, env.get("CUSTOMERIO_PIPELINES_URL"))
            identifier = IdentifierStrategy.parse(env.get("CUSTOMERIO_IDENTIFIER"))
            dodo_api_url = dodo_api_base_url(
                env.get("DODO_API_MODE", "").strip() or "live_mode", env.get("DODO_API_URL")
            )
        except (ValueError, MappingConfigError) as exc:
            raise ConfigError(str(exc)) from None
        object_type = env.get("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", "").strip()
        if object_type and not object_type.isdigit():
            raise ConfigError(
                f"CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID must be the object type's number (e.g. 1), not {object_type!r}"
            )
        aws_connect, aws_read = aws_timeouts(env)
        rate_limit_rps = env_number(env, "CUSTOMERIO_RATE_LIMIT_RPS", DEFAULT_RATE_LIMIT_RPS)
        if api == PIPELINES and rate_limit_rps > PIPELINES_LIMITS.requests_per_second:
            raise ConfigError(
                f"CUSTOMERIO_RATE_LIMIT_RPS {rate_limit_rps:g} is over the Pipelines API's published rate "
                f"({PIPELINES_LIMITS.requests} requests per {PIPELINES_LIMITS.per_seconds:g} s)"
            )
        ingest_share = env_number(env, "CUSTOMERIO_INGEST_SHARE", DEFAULT_INGEST_SHARE, zero_ok=True)
        if not 0 <= ingest_share <= 1:
            raise ConfigError(f"CUSTOMERIO_INGEST_SHARE must be between 0 and 1, not {ingest_share:g}")
        ingest_containers = int(env_number(env, "INGEST_MAX_CONCURRENCY", 0, zero_ok=True)) or int(
            env_number(env, "API_BURST_LIMIT", 0, zero_ok=True)
        )
        profile_metadata = env.get("CUSTOMERIO_PROFILE_METADATA", "").strip().lower() or "prefixed"
        if profile_metadata not in PROFILE_METADATA_MODES:
            raise ConfigError(f"CUSTOMERIO_PROFILE_METADATA must be prefixed or none, not {profile_metadata!r}")
        contact_fields = env.get("CUSTOMERIO_CONTACT_FIELDS", "").strip().lower() or "auto"
        if contact_fields not in CONTACT_FIELDS_MODES:
            raise ConfigError(f"CUSTOMERIO_CONTACT_FIELDS must be auto, dodo or app, not {contact_fields!r}")
        return cls(
            ssm_path=path,
            region=region,
            track_url=track_url,
            identifier=identifier,
            retry_queue_url=env.get("RETRY_QUEUE_URL", "").strip() or None,
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", "").strip() or None,
            quarantine_queue_url=env.get("QUARANTINE_QUEUE_URL", "").strip() or None,
            state_table=env.get("STATE_TABLE_NAME", "").strip() or None,
            rate_limit_rps=rate_limit_rps,
            retry_max_concurrency=max(1, int(env_number(env, "RETRY_MAX_CONCURRENCY", 2))),
            ingest_share=ingest_share,
            ingest_max_concurrency=max(0, ingest_containers),
            receipt_days=max(1, int(env_number(env, "RECEIPT_DAYS", 35))),
            connect_timeout=env_number(env, "CUSTOMERIO_CONNECT_TIMEOUT", 2.0),
            read_timeout=env_number(env, "CUSTOMERIO_READ_TIMEOUT", 5.0),
            secrets_max_age=int(env_number(env, "SECRETS_MAX_AGE", 300)),
            subscription_object_type_id=object_type or None,
            profile_metadata=profile_metadata,
            contact_fields=contact_fields,
            dodo_api_url=dodo_api_url,
            aws_connect_timeout=aws_connect,
            aws_read_timeout=aws_read,
            answer_reserve=env_number(env, "ANSWER_RESERVE", ANSWER_RESERVE),
            customerio_api=api,
            pipelines_url=pipelines_url,
        )

    def mapping(self) -> MappingConfig:
        """The default mapping for this deployment, before the merchant's customize.py."""
        return MappingConfig(
            identifier=self.identifier,
            subscription_object_type_id=self.subscription_object_type_id,
            profile_metadata=self.profile_metadata,
            contact_fields=self.contact_fields,
        )

    def parameter_name(self, secret: str) -> str:
        return f"{self.ssm_path}/{secret}"

    def delivery_clients(
        self, session_factory: Callable[[], Any] | None = None, *, pace: Callable[[], None] | None = None
    ) -> DeliveryClients:
        """The container's client cache for the chosen API; `.get(credentials)` gives a client.

        The client follows the credentials (`Secrets.delivery_credentials()` gives the chosen
        API's): Track's TrackClient or a PipelinesClient, bound to this deployment's URL and
        timeouts. `pace` (Pipelines only) runs before each extra request one send makes.
        """

        def build(credentials: Credentials) -> DeliveryClient:
            session = session_factory() if session_factory else None
            connect, read = self.connect_timeout, self.read_timeout
            if isinstance(credentials, PipelinesCredentials):
                return PipelinesClient(
                    self.pipelines_url,
                    credentials.api_key,
                    connect_timeout=connect,
                    read_timeout=read,
                    session=session,
                    pace=pace,
                )
            site_id, api_key = credentials.site_id, credentials.api_key
            return TrackClient(
                self.track_url, site_id, api_key, connect_timeout=connect, read_timeout=read, session=session
            )

        return DeliveryClients(build)

    @property
    def delivery_limits(self) -> ApiLimits:
        """The chosen API's published limits: request sizes for the retry planner, and its rate."""
        return PIPELINES_LIMITS if self.customerio_api == PIPELINES else TRACK_LIMITS

    @property
    def aws_attempt_seconds(self) -> float:
        """The longest one attempt of an AWS call may take: what a step keeps back for each call after it."""
        return self.aws_connect_timeout + self.aws_read_timeout

    @property
    def track_request_seconds(self) -> float:
        """The longest one Customer.io request may take when no deadline cuts it short."""
        return self.connect_timeout + self.read_timeout

    @property
    def rate_per_container(self) -> float:
        """Each concurrent retry container gets an equal part of what ingest leaves (dodo_cio.delivery.budget)."""
        return self.rate_limit_rps * (1 - self.ingest_share) / self.retry_max_concurrency

    @property
    def ingest_rate_per_container(self) -> float:
        """Each ingest container's part of ingest's share; 0 (not paced) when the concurrency is unknown."""
        if self.ingest_max_concurrency <= 0:
            return 0.0
        return self.rate_limit_rps * self.ingest_share / self.ingest_max_concurrency


@dataclass(frozen=True, slots=True)
class Secrets:
    """What SSM holds for this deployment: the webhook secrets and the chosen API's credentials.

    Only the chosen API's credentials are read (`CREDENTIAL_NAMES`): under `pipelines` the Track
    site id and key stay None, and under `track` the Pipelines key does.
    """

    webhook_secrets: tuple[bytes, ...]
    site_id: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    pipelines_api_key: str | None = field(default=None, repr=False)
    customerio_api: str = TRACK

    def delivery_credentials(self) -> Credentials:
        """The chosen API's credentials; ConfigError naming the missing SSM parameters (never a value)."""
        if self.customerio_api == PIPELINES:
            if not self.pipelines_api_key:
                raise ConfigError(f"the Customer.io Pipelines API key is missing in SSM ({PIPELINES_API_KEY_NAME})")
            return PipelinesCredentials(self.pipelines_api_key)
        if not self.site_id or not self.api_key:
            raise ConfigError("Customer.io credentials are missing in SSM (customerio-site-id, customerio-api-key)")
        return TrackCredentials(self.site_id, self.api_key)


Fetcher = Callable[[list[str], int, bool], Mapping[str, str]]


def ssm_fetcher(names: list[str], max_age: int, force: bool) -> Mapping[str, str]:
    """Powertools Parameters: one GetParameters call, decrypted, cached for `max_age` seconds."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - pulls in boto3
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS  # noqa: PLC0415

    if force:
        parameters.clear_caches()  # type: ignore[no-untyped-call]
    if "ssm" not in DEFAULT_PROVIDERS:  # the default provider, on the container's shared session
        DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=aws.client("ssm"))
    values = parameters.get_parameters_by_name(
        parameters={name: {} for name in names}, decrypt=True, max_age=max_age, raise_on_error=False
    )
    return {k: v for k, v in values.items() if k != "_errors" and isinstance(v, str)}


class SecretStore:
    """The secrets, re-read at most every `max_age` seconds so a rotation needs no redeploy.

    The webhook secret, and the credentials of the API CUSTOMERIO_API chose (`CREDENTIAL_NAMES`):
    a Pipelines deployment needs no Track site id or key in SSM, and reads none.
    """

    def __init__(
        self, settings: Settings, fetch: Fetcher = ssm_fetcher, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._clock = clock
        self._no_dodo_key_until = float("-inf")

    def _values(self, names: list[str], force: bool) -> Mapping[str, str]:
        try:
            return self._fetch(names, self._settings.secrets_max_age, force)
        except Exception as exc:
            raise ConfigError(
                f"could not read SSM parameters under {self._settings.ssm_path}: {type(exc).__name__}"
            ) from exc

    def delivery_credentials(self) -> Credentials:
        """The chosen API's credentials only (the retry path's read); ConfigError when missing."""
        api = self._settings.customerio_api
        names = [self._settings.parameter_name(n) for n in CREDENTIAL_NAMES[api]]
        return self._secrets(api, self._values(names, False), names).delivery_credentials()

    @staticmethod
    def _secrets(
        api: str, values: Mapping[str, str], names: list[str], webhook_secrets: tuple[bytes, ...] = ()
    ) -> Secrets:
        """Secrets from what SSM answered for `names` (CREDENTIAL_NAMES[api], in that order); blank is missing."""
        found = [values.get(name) or None for name in names]
        if api == PIPELINES:
            return Secrets(webhook_secrets, pipelines_api_key=found[0], customerio_api=api)
        return Secrets(webhook_secrets, found[0], found[1])

    def dodo_api_key(self) -> str | None:
        """The optional Dodo API key, for looking up customers the bridge has not seen.

        Its absence is remembered for `secrets_max_age` too: Powertools caches only the parameters SSM
        returned, so without this every lookup of a deployment that stores no key cost one more SSM
        call (the drain benchmark made one per batch; SSM's default throughput is 40 calls a second).
        """
        if self._clock() < self._no_dodo_key_until:
            return None
        name = self._settings.parameter_name(DODO_API_KEY_NAME)
        key = self._values([name], False).get(name) or None
        if key is None:
            self._no_dodo_key_until = self._clock() + self._settings.secrets_max_age
        return key

    def load(self, *, force: bool = False) -> Secrets:
        api = self._settings.customerio_api
        secret_name = self._settings.parameter_name(SECRET_NAMES[0])
        credential_names = [self._settings.parameter_name(n) for n in CREDENTIAL_NAMES[api]]
        values = self._values([secret_name, *credential_names], force)
        raw_secret = values.get(secret_name)
        if not raw_secret:
            raise ConfigError(f"SSM parameter {secret_name} is missing or empty")
        try:
            webhook_secrets = parse_secrets(raw_secret)
        except ValueError as exc:
            raise ConfigError(f"SSM parameter {secret_name}: {exc}") from None
        return self._secrets(api, values, credential_names, webhook_secrets)
