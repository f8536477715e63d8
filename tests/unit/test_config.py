"""Configuration: environment variables from template.yaml, the secrets from SSM, and choosing the API
(CUSTOMERIO_API, the Pipelines URL, reading only the chosen API's credentials)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from dodo_cio.configuration.settings import Secrets, SecretStore, Settings
from dodo_cio.delivery.destination import PIPELINES_LIMITS, TRACK_LIMITS, PipelinesCredentials, TrackCredentials
from dodo_cio.delivery.pipelines import PipelinesClient
from dodo_cio.delivery.track import TrackClient
from dodo_cio.mapping.mapper import IdentifierStrategy
from dodo_cio.platform.env import ConfigError

KEY_BYTES = b"0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(KEY_BYTES).decode()
OLD_KEY_BYTES = b"fedcba9876543210fedcba9876543210"
OLD_WEBHOOK_SECRET = "whsec_" + base64.b64encode(OLD_KEY_BYTES).decode()
SITE_ID = "site-4f7a1c"
API_KEY = "cio-api-key-9d2e5b"
PIPELINES_KEY = "cdp-secret-key-Zx81"
PIPELINES = {"CUSTOMERIO_API": "pipelines"}


# -------------------------------------------------------------------------------------------------
# Settings.from_env


DEFAULTS: dict[str, Any] = {
    "ssm_path": "/dodo-customerio",
    "region": "us",
    "track_url": "https://track.customer.io",
    "identifier": IdentifierStrategy(),
    "retry_queue_url": None,
    "connect_timeout": 2.0,
    "read_timeout": 5.0,
    "secrets_max_age": 300,
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, DEFAULTS, id="defaults"),
        pytest.param(
            {
                "SSM_PARAMETER_PATH": "/acme/dodo-cio/",
                "CUSTOMERIO_REGION": " EU ",
                "CUSTOMERIO_IDENTIFIER": "metadata:app_user_id",
                "RETRY_QUEUE_URL": " https://sqs.eu-west-1.amazonaws.com/1/q ",
                "CUSTOMERIO_CONNECT_TIMEOUT": "1.5",
                "CUSTOMERIO_READ_TIMEOUT": "8",
                "SECRETS_MAX_AGE": "60",
            },
            {
                "ssm_path": "/acme/dodo-cio",
                "region": "eu",
                "track_url": "https://track-eu.customer.io",
                "identifier": IdentifierStrategy(kind="metadata", metadata_key="app_user_id"),
                "retry_queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q",
                "connect_timeout": 1.5,
                "read_timeout": 8.0,
                "secrets_max_age": 60,
            },
            id="everything-set",
        ),
        pytest.param(
            {
                "CUSTOMERIO_TRACK_URL": "http://127.0.0.1:4010/",
                "CUSTOMERIO_REGION": "",
                "RETRY_QUEUE_URL": "   ",
                "CUSTOMERIO_CONNECT_TIMEOUT": "",
                "CUSTOMERIO_IDENTIFIER": "",
            },
            {**DEFAULTS, "track_url": "http://127.0.0.1:4010"},
            id="track-url-override-and-blank-values",
        ),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: dict[str, Any]) -> None:
    settings = Settings.from_env(env)
    assert {name: getattr(settings, name) for name in expected} == expected


def config_error(call: Callable[[], object]) -> ConfigError:
    """The ConfigError that `call` must raise: never a ValueError, which a broad except would answer 400."""
    with pytest.raises(ConfigError) as info:
        call()
    assert not isinstance(info.value, ValueError)
    return info.value


def refused(env: dict[str, str]) -> str:
    """The ConfigError message for a bad environment."""
    return str(config_error(lambda: Settings.from_env(env)))


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        *[
            ("SSM_PARAMETER_PATH", path, ("SSM_PARAMETER_PATH", "'/'"))
            for path in ["dodo-customerio", "", "  ", "/", "ssm:/x"]
        ],
        *[
            ("CUSTOMERIO_REGION", region, ("CUSTOMERIO_REGION", "'us' or 'eu'"))
            for region in ["ap", "us-east-1", "europe", "u s"]
        ],
        *[
            ("CUSTOMERIO_IDENTIFIER", strategy, ("customer_id, email, metadata:<key>", repr(strategy)))
            for strategy in ["phone", "metadata:", "cio_id", "user id"]
        ],
        *[
            (name, value, (name,))
            for name in [
                "CUSTOMERIO_CONNECT_TIMEOUT",
                "CUSTOMERIO_READ_TIMEOUT",
                "SECRETS_MAX_AGE",
                "BOTO_READ_TIMEOUT",
            ]
            for value in ["fast", "5s", "0", "-1", "nan", "inf", "-inf"]
        ],
        *[("CUSTOMERIO_INGEST_SHARE", share, ("CUSTOMERIO_INGEST_SHARE",)) for share in ["1.5", "-0.1", "x"]],
        *[
            ("CUSTOMERIO_API", api, ("CUSTOMERIO_API", "'track' or 'pipelines'", repr(api)))
            for api in ["cdp", "segment", "track,pipelines", "v2"]
        ],
        # refused even on Track: a typo is reported when it is made, not when someone switches the API
        *[
            ("CUSTOMERIO_PIPELINES_URL", url, ("CUSTOMERIO_PIPELINES_URL", "/v1", repr(url)))
            for url in [
                "https://cdp.customer.io",
                "https://cdp.customer.io/v2",
                "cdp.customer.io/v1",
                "ftp://x/v1",
                "https:///v1",
            ]
        ],
    ],
)
def test_a_bad_value_is_refused_saying_why(name: str, value: str, says: tuple[str, ...]) -> None:
    message = refused({name: value})
    for fragment in says:
        assert fragment in message


# -------------------------------------------------------------------------------------------------
# SecretStore


class FakeFetcher:
    def __init__(self, values: Mapping[str, str] | None = None, error: Exception | None = None) -> None:
        self.values = dict(values or {})
        self.error = error
        self.calls: list[tuple[list[str], int, bool]] = []

    def __call__(self, names: list[str], max_age: int, force: bool) -> Mapping[str, str]:
        self.calls.append((list(names), max_age, force))
        if self.error is not None:
            raise self.error
        return self.values


def full_values(path: str = "/dodo-customerio", secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        f"{path}/webhook-secret": secret,
        f"{path}/customerio-site-id": SITE_ID,
        f"{path}/customerio-api-key": API_KEY,
    }


def test_load_returns_parsed_secrets_and_ignores_other_values() -> None:
    fetch = FakeFetcher({**full_values(), "/dodo-customerio/other": "x", "_errors": ["y"]})
    store = SecretStore(Settings.from_env({}), fetch)
    secrets = store.load()
    assert secrets == Secrets(webhook_secrets=(KEY_BYTES,), site_id=SITE_ID, api_key=API_KEY)
    assert secrets.delivery_credentials() == TrackCredentials(SITE_ID, API_KEY)
    assert fetch.calls == [
        (
            [
                "/dodo-customerio/webhook-secret",
                "/dodo-customerio/customerio-site-id",
                "/dodo-customerio/customerio-api-key",
            ],
            300,
            False,
        )
    ]
    assert store.delivery_credentials() == TrackCredentials(SITE_ID, API_KEY)  # the retry path's read
    assert fetch.calls[-1][0] == ["/dodo-customerio/customerio-site-id", "/dodo-customerio/customerio-api-key"]


def test_load_force_and_custom_path_and_max_age() -> None:
    settings = Settings.from_env({"SSM_PARAMETER_PATH": "/acme/", "SECRETS_MAX_AGE": "45"})
    fetch = FakeFetcher(full_values("/acme"))
    SecretStore(settings, fetch).load(force=True)
    names, max_age, force = fetch.calls[0]
    assert names[0] == settings.parameter_name("webhook-secret") == "/acme/webhook-secret"  # path normalised
    assert max_age == 45
    assert force is True


def test_rotation_window_two_secrets() -> None:
    values = full_values(secret=f"{WEBHOOK_SECRET} {OLD_WEBHOOK_SECRET}")
    secrets = SecretStore(Settings.from_env({}), FakeFetcher(values)).load()
    assert secrets.webhook_secrets == (KEY_BYTES, OLD_KEY_BYTES)


@pytest.mark.parametrize(
    ("bad_secret", "says"),
    [
        (None, "missing or empty"),
        ("", "missing or empty"),
        ("whsec_not*base64*at*all", "#1 is not valid base64"),
        ("whsec_", "#1 is empty"),
        ("not-base64-%%%-SENSITIVE", "#1 is not valid base64"),
        ("whsec_ü" + "A" * 30, "#1 is not valid base64"),
        ("   ,  ", "no webhook secret configured"),
        (f"{WEBHOOK_SECRET},whsec_***leaked?***", "#2 is not valid base64"),  # named by position only
    ],
)
def test_an_unusable_webhook_secret_is_named_never_echoed(bad_secret: str | None, says: str) -> None:
    values = full_values(secret=bad_secret or "")
    if bad_secret is None:
        del values["/dodo-customerio/webhook-secret"]
    message = str(config_error(SecretStore(Settings.from_env({}), FakeFetcher(values)).load))
    assert "/dodo-customerio/webhook-secret" in message
    assert says in message
    for piece in (*(bad_secret or "").split(","), "SENSITIVE", "leaked", SITE_ID, API_KEY):
        for shown in (piece.strip(), piece.removeprefix("whsec_").strip()):
            assert len(shown) <= 3 or shown not in message


def test_fetcher_failure_becomes_config_error() -> None:
    error = RuntimeError(f"AccessDenied while reading value {WEBHOOK_SECRET}")
    store = SecretStore(Settings.from_env({"SSM_PARAMETER_PATH": "/acme"}), FakeFetcher(error=error))
    raised = config_error(store.load)
    message = str(raised)
    assert "/acme" in message
    assert "RuntimeError" in message
    assert WEBHOOK_SECRET not in message
    assert raised.__cause__ is error  # kept for debugging, not in the message


def test_a_missing_dodo_api_key_is_remembered_for_the_secrets_age_then_asked_again() -> None:
    """Powertools caches only what SSM returned: without this, every lookup without a key cost an SSM call."""
    now = [1000.0]
    fetch = FakeFetcher({})
    store = SecretStore(Settings.from_env({"SECRETS_MAX_AGE": "300"}), fetch, clock=lambda: now[0])
    assert store.dodo_api_key() is None and store.dodo_api_key() is None
    assert len(fetch.calls) == 1
    now[0] += 299.9
    assert store.dodo_api_key() is None and len(fetch.calls) == 1
    now[0] += 0.2  # the secrets' age has passed: a key stored meanwhile is found
    fetch.values = {"/dodo-customerio/dodo-api-key": "k3y"}
    assert store.dodo_api_key() == "k3y" and len(fetch.calls) == 2
    assert store.dodo_api_key() == "k3y"  # a key that exists is Powertools' to cache: asked each time here
    assert len(fetch.calls) == 3


# -------------------------------------------------------------------------------------------------
# choosing the API


@pytest.mark.parametrize(
    ("env", "api", "url"),
    [
        ({}, "track", "https://cdp.customer.io/v1"),
        ({"CUSTOMERIO_API": ""}, "track", "https://cdp.customer.io/v1"),
        ({"CUSTOMERIO_API": " Pipelines "}, "pipelines", "https://cdp.customer.io/v1"),
        ({**PIPELINES, "CUSTOMERIO_REGION": "eu"}, "pipelines", "https://cdp-eu.customer.io/v1"),
        (
            {**PIPELINES, "CUSTOMERIO_PIPELINES_URL": " http://127.0.0.1:4010/v1/ "},
            "pipelines",
            "http://127.0.0.1:4010/v1",
        ),
        (
            {**PIPELINES, "CUSTOMERIO_PIPELINES_URL": "https://proxy.example/cio/v1"},
            "pipelines",
            "https://proxy.example/cio/v1",
        ),
        ({**PIPELINES, "CUSTOMERIO_PIPELINES_URL": "  "}, "pipelines", "https://cdp.customer.io/v1"),
    ],
)
def test_api_and_pipelines_url(env: dict[str, str], api: str, url: str) -> None:
    settings = Settings.from_env(env)
    assert (settings.customerio_api, settings.pipelines_url) == (api, url)
    assert settings.delivery_limits == (PIPELINES_LIMITS if api == "pipelines" else TRACK_LIMITS)


def test_pipelines_checks_its_url_and_the_region_even_with_an_override() -> None:
    assert "CUSTOMERIO_PIPELINES_URL" in refused({**PIPELINES, "CUSTOMERIO_PIPELINES_URL": "https://x/v2"})
    message = refused({**PIPELINES, "CUSTOMERIO_REGION": "ap", "CUSTOMERIO_PIPELINES_URL": "http://127.0.0.1:1/v1"})
    assert "CUSTOMERIO_REGION" in message


def test_rate_is_capped_at_the_pipelines_published_rate() -> None:
    assert Settings.from_env({**PIPELINES, "CUSTOMERIO_RATE_LIMIT_RPS": "1000"}).rate_limit_rps == 1000
    message = refused({**PIPELINES, "CUSTOMERIO_RATE_LIMIT_RPS": "1500"})
    assert "CUSTOMERIO_RATE_LIMIT_RPS" in message and "3000 requests per 3 s" in message
    assert Settings.from_env({"CUSTOMERIO_RATE_LIMIT_RPS": "1500"}).rate_limit_rps == 1500  # Track: as before


# -------------------------------------------------------------------------------------------------
# Pipelines: its secrets


ALL = {**full_values(), "/dodo-customerio/customerio-pipelines-api-key": PIPELINES_KEY}


def store(env: dict[str, str], values: Mapping[str, str] = ALL) -> tuple[SecretStore, FakeFetcher]:
    fetch = FakeFetcher(values)
    return SecretStore(Settings.from_env(env), fetch), fetch


def test_pipelines_reads_only_the_webhook_secret_and_its_key() -> None:
    secrets_store, fetch = store(PIPELINES)
    secrets = secrets_store.load()
    assert [names for names, *_ in fetch.calls] == [
        ["/dodo-customerio/webhook-secret", "/dodo-customerio/customerio-pipelines-api-key"]
    ]
    assert (secrets.site_id, secrets.api_key, secrets.pipelines_api_key) == (None, None, PIPELINES_KEY)
    assert secrets.delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)
    assert secrets_store.delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)
    assert fetch.calls[-1][0] == ["/dodo-customerio/customerio-pipelines-api-key"]  # the retry path's read


def test_pipelines_without_track_credentials_loads_and_delivers() -> None:
    values = {k: v for k, v in ALL.items() if "site-id" not in k and "customerio-api-key" not in k}
    secrets_store, _ = store(PIPELINES, values)
    assert secrets_store.load().delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)


TRACK_NAMES = ("customerio-site-id", "customerio-api-key")


@pytest.mark.parametrize(
    ("env", "missing", "named"),
    [
        *[({}, names, TRACK_NAMES) for names in [TRACK_NAMES[:1], TRACK_NAMES[1:], TRACK_NAMES]],
        (PIPELINES, ("customerio-pipelines-api-key",), ("customerio-pipelines-api-key",)),
    ],
    ids=["track-site-id", "track-api-key", "track-both", "pipelines-key"],
)
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_missing_credentials_name_the_parameters_and_no_secret(
    env: dict[str, str], missing: tuple[str, ...], named: tuple[str, ...], how: str
) -> None:
    values = {**ALL}
    for name in missing:
        if how == "absent":
            del values[f"/dodo-customerio/{name}"]
        else:
            values[f"/dodo-customerio/{name}"] = ""
    secrets_store, _ = store(env, values)
    secrets = secrets_store.load()
    assert secrets.webhook_secrets == (KEY_BYTES,)  # the webhook can still be verified, and parked
    if env == {}:
        assert secrets.site_id == (None if "customerio-site-id" in missing else SITE_ID)
        assert secrets.api_key == (None if "customerio-api-key" in missing else API_KEY)
    for read in (secrets.delivery_credentials, secrets_store.delivery_credentials):
        message = str(config_error(read))
        assert all(name in message for name in named)
        assert all(secret not in message for secret in (SITE_ID, API_KEY, WEBHOOK_SECRET, PIPELINES_KEY))


def test_credentials_never_show_in_a_repr() -> None:
    shown = repr(
        [
            PipelinesCredentials(PIPELINES_KEY),
            TrackCredentials(SITE_ID, API_KEY),
            Secrets((b"k",), SITE_ID, API_KEY, PIPELINES_KEY),
        ]
    )
    assert all(secret not in shown for secret in (PIPELINES_KEY, SITE_ID, API_KEY))


# -------------------------------------------------------------------------------------------------
# the client cache


class Session:
    closed = 0

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Any:
        raise AssertionError("not sent in this test")

    def close(self) -> None:
        Session.closed += 1


def test_delivery_clients_follow_the_credentials_and_are_kept_until_they_change() -> None:
    settings = Settings.from_env({**PIPELINES, "CUSTOMERIO_PIPELINES_URL": "http://127.0.0.1:9/v1"})
    clients = settings.delivery_clients(Session)
    first = clients.get(PipelinesCredentials(PIPELINES_KEY))
    assert isinstance(first, PipelinesClient) and first.base_url == "http://127.0.0.1:9/v1"
    assert clients.get(PipelinesCredentials(PIPELINES_KEY)) is first
    closed = Session.closed
    rotated = clients.get(PipelinesCredentials(PIPELINES_KEY + "-rotated"))
    assert rotated is not first and Session.closed == closed + 1
    track = Settings.from_env({}).delivery_clients(Session).get(TrackCredentials(SITE_ID, API_KEY))
    assert isinstance(track, TrackClient) and track.base_url == "https://track.customer.io"
