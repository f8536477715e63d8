"""Choosing the API: CUSTOMERIO_API, the Pipelines URL, and reading only the chosen API's credentials."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from dodo_cio.configuration.settings import Secrets, SecretStore, Settings
from dodo_cio.delivery.destination import PIPELINES_LIMITS, TRACK_LIMITS, PipelinesCredentials, TrackCredentials
from dodo_cio.delivery.pipelines import PipelinesClient
from dodo_cio.delivery.track import TrackClient
from dodo_cio.platform.env import ConfigError

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
PIPELINES_KEY = "cdp-secret-key-Zx81"
SITE_ID, TRACK_KEY = "site-4f7a1c", "track-secret-key-9d2e"
PIPELINES = {"CUSTOMERIO_API": "pipelines"}


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


def rejected(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return str(info.value)


@pytest.mark.parametrize("value", ["cdp", "segment", "track,pipelines", "v2"])
def test_unknown_api_names_the_variable_and_the_choices(value: str) -> None:
    message = rejected({"CUSTOMERIO_API": value})
    assert "CUSTOMERIO_API" in message and "'track' or 'pipelines'" in message and repr(value) in message


@pytest.mark.parametrize(
    "url", ["https://cdp.customer.io", "https://cdp.customer.io/v2", "cdp.customer.io/v1", "ftp://x/v1", "https:///v1"]
)
def test_pipelines_url_must_be_http_and_end_in_v1(url: str) -> None:
    message = rejected({**PIPELINES, "CUSTOMERIO_PIPELINES_URL": url})
    assert "CUSTOMERIO_PIPELINES_URL" in message and "/v1" in message and repr(url) in message


def test_a_bad_pipelines_url_is_refused_even_on_track() -> None:
    """A typo is reported when it is made, not when someone switches the API months later."""
    assert "CUSTOMERIO_PIPELINES_URL" in rejected({"CUSTOMERIO_PIPELINES_URL": "https://cdp.customer.io"})


def test_region_is_checked_with_a_pipelines_override() -> None:
    message = rejected({**PIPELINES, "CUSTOMERIO_REGION": "ap", "CUSTOMERIO_PIPELINES_URL": "http://127.0.0.1:1/v1"})
    assert "CUSTOMERIO_REGION" in message


def test_rate_is_capped_at_the_pipelines_published_rate() -> None:
    assert Settings.from_env({**PIPELINES, "CUSTOMERIO_RATE_LIMIT_RPS": "1000"}).rate_limit_rps == 1000
    message = rejected({**PIPELINES, "CUSTOMERIO_RATE_LIMIT_RPS": "1500"})
    assert "CUSTOMERIO_RATE_LIMIT_RPS" in message and "3000 requests per 3 s" in message
    assert Settings.from_env({"CUSTOMERIO_RATE_LIMIT_RPS": "1500"}).rate_limit_rps == 1500  # Track: as before


# -------------------------------------------------------------------------------------------------
# secrets


class Fetch:
    """A stand-in for the SSM read: the values it holds, and the names each call asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.asked = dict(values), list[list[str]]()

    def __call__(self, names: list[str], max_age: int, force: bool) -> Mapping[str, str]:
        self.asked.append(list(names))
        return self.values


ALL = {
    "/dodo-customerio/webhook-secret": WEBHOOK_SECRET,
    "/dodo-customerio/customerio-site-id": SITE_ID,
    "/dodo-customerio/customerio-api-key": TRACK_KEY,
    "/dodo-customerio/customerio-pipelines-api-key": PIPELINES_KEY,
}


def store(env: dict[str, str], values: Mapping[str, str] = ALL) -> tuple[SecretStore, Fetch]:
    fetch = Fetch(values)
    return SecretStore(Settings.from_env(env), fetch), fetch


def test_pipelines_reads_only_the_webhook_secret_and_its_key() -> None:
    secrets_store, fetch = store(PIPELINES)
    secrets = secrets_store.load()
    assert fetch.asked == [["/dodo-customerio/webhook-secret", "/dodo-customerio/customerio-pipelines-api-key"]]
    assert (secrets.site_id, secrets.api_key, secrets.pipelines_api_key) == (None, None, PIPELINES_KEY)
    assert secrets.delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)
    assert secrets_store.delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)
    assert fetch.asked[-1] == ["/dodo-customerio/customerio-pipelines-api-key"]  # the retry path's read


def test_pipelines_without_track_credentials_loads_and_delivers() -> None:
    values = {k: v for k, v in ALL.items() if "site-id" not in k and "customerio-api-key" not in k}
    secrets_store, _ = store(PIPELINES, values)
    assert secrets_store.load().delivery_credentials() == PipelinesCredentials(PIPELINES_KEY)


@pytest.mark.parametrize("how", ["absent", "empty"])
def test_a_missing_pipelines_key_names_the_parameter_and_no_secret(how: str) -> None:
    values = {**ALL}
    if how == "absent":
        del values["/dodo-customerio/customerio-pipelines-api-key"]
    else:
        values["/dodo-customerio/customerio-pipelines-api-key"] = ""
    secrets_store, _ = store(PIPELINES, values)
    secrets = secrets_store.load()  # the webhook can still be verified, and parked
    for read in (secrets.delivery_credentials, secrets_store.delivery_credentials):
        with pytest.raises(ConfigError) as info:
            read()
        message = str(info.value)
        assert "customerio-pipelines-api-key" in message
        assert all(secret not in message for secret in (SITE_ID, TRACK_KEY, WEBHOOK_SECRET))


def test_credentials_never_show_in_a_repr() -> None:
    shown = repr(
        [
            PipelinesCredentials(PIPELINES_KEY),
            TrackCredentials(SITE_ID, TRACK_KEY),
            Secrets((b"k",), SITE_ID, TRACK_KEY, PIPELINES_KEY),
        ]
    )
    assert all(secret not in shown for secret in (PIPELINES_KEY, SITE_ID, TRACK_KEY))


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
    track = Settings.from_env({}).delivery_clients(Session).get(TrackCredentials(SITE_ID, TRACK_KEY))
    assert isinstance(track, TrackClient) and track.base_url == "https://track.customer.io"
