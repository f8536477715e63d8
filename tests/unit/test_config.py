"""Configuration: environment variables from template.yaml and the three secrets from SSM."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from dodo_cio.config import SECRET_NAMES, ConfigError, Secrets, SecretStore, Settings
from dodo_cio.mapping import IdentifierStrategy

KEY_BYTES = b"0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(KEY_BYTES).decode()
OLD_KEY_BYTES = b"fedcba9876543210fedcba9876543210"
OLD_WEBHOOK_SECRET = "whsec_" + base64.b64encode(OLD_KEY_BYTES).decode()
SITE_ID = "site-4f7a1c"
API_KEY = "cio-api-key-9d2e5b"


# -------------------------------------------------------------------------------------------------
# Settings.from_env


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.ssm_path == "/dodo-customerio"
    assert settings.region == "us"
    assert settings.track_url == "https://track.customer.io"
    assert settings.identifier == IdentifierStrategy()
    assert settings.retry_queue_url is None
    assert settings.connect_timeout == 2.0
    assert settings.read_timeout == 5.0
    assert settings.secrets_max_age == 300


def test_everything_set() -> None:
    settings = Settings.from_env(
        {
            "SSM_PARAMETER_PATH": "/acme/dodo-cio/",
            "CUSTOMERIO_REGION": " EU ",
            "CUSTOMERIO_IDENTIFIER": "metadata:app_user_id",
            "RETRY_QUEUE_URL": " https://sqs.eu-west-1.amazonaws.com/1/q ",
            "CUSTOMERIO_CONNECT_TIMEOUT": "1.5",
            "CUSTOMERIO_READ_TIMEOUT": "8",
            "SECRETS_MAX_AGE": "60",
        }
    )
    assert settings.ssm_path == "/acme/dodo-cio"
    assert settings.region == "eu"
    assert settings.track_url == "https://track-eu.customer.io"
    assert settings.identifier == IdentifierStrategy(kind="metadata", metadata_key="app_user_id")
    assert settings.retry_queue_url == "https://sqs.eu-west-1.amazonaws.com/1/q"
    assert settings.connect_timeout == 1.5
    assert settings.read_timeout == 8.0
    assert settings.secrets_max_age == 60
    assert settings.parameter_name("webhook-secret") == "/acme/dodo-cio/webhook-secret"


def test_track_url_override_and_blank_values() -> None:
    settings = Settings.from_env(
        {
            "CUSTOMERIO_TRACK_URL": "http://127.0.0.1:4010/",
            "CUSTOMERIO_REGION": "",
            "RETRY_QUEUE_URL": "   ",
            "CUSTOMERIO_CONNECT_TIMEOUT": "",
            "CUSTOMERIO_IDENTIFIER": "",
        }
    )
    assert settings.track_url == "http://127.0.0.1:4010"
    assert settings.region == "us"
    assert settings.retry_queue_url is None
    assert settings.connect_timeout == 2.0
    assert settings.identifier.kind == "customer_id"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSM_PARAMETER_PATH", "/from-env")
    monkeypatch.setenv("CUSTOMERIO_REGION", "eu")
    monkeypatch.setenv("CUSTOMERIO_IDENTIFIER", "email")
    settings = Settings.from_env()
    assert settings.ssm_path == "/from-env"
    assert settings.region == "eu"
    assert settings.identifier.kind == "email"


@pytest.mark.parametrize("path", ["dodo-customerio", "", "  ", "/", "ssm:/x"])
def test_path_without_leading_slash(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SSM_PARAMETER_PATH": path})
    assert "SSM_PARAMETER_PATH" in str(info.value)
    assert "'/'" in str(info.value)


@pytest.mark.parametrize("region", ["ap", "us-east-1", "europe", "u s"])
def test_bad_region(region: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CUSTOMERIO_REGION": region})
    message = str(info.value)
    assert "CUSTOMERIO_REGION" in message
    assert "'us' or 'eu'" in message


@pytest.mark.parametrize("identifier", ["phone", "metadata:", "cio_id", "user id"])
def test_bad_identifier(identifier: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CUSTOMERIO_IDENTIFIER": identifier})
    message = str(info.value)
    assert "customer_id, email, metadata:<key>" in message
    assert repr(identifier.strip()) in message


@pytest.mark.parametrize("name", ["CUSTOMERIO_CONNECT_TIMEOUT", "CUSTOMERIO_READ_TIMEOUT", "SECRETS_MAX_AGE"])
@pytest.mark.parametrize("value", ["fast", "5s", "0", "-1", "nan", "inf", "-inf"])
def test_bad_timeout(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)


def test_config_error_is_not_a_value_error() -> None:
    # a misconfiguration must not be mistaken for bad input (400) by a broad `except ValueError`
    assert not issubclass(ConfigError, ValueError)


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


def test_secret_names() -> None:
    assert SECRET_NAMES == ("webhook-secret", "customerio-site-id", "customerio-api-key")


def test_load_returns_parsed_secrets() -> None:
    fetch = FakeFetcher(full_values())
    store = SecretStore(Settings.from_env({}), fetch)
    secrets = store.load()
    assert secrets == Secrets(webhook_secrets=(KEY_BYTES,), site_id=SITE_ID, api_key=API_KEY)
    assert secrets.require_customerio() == (SITE_ID, API_KEY)
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


def test_load_force_and_custom_path_and_max_age() -> None:
    settings = Settings.from_env({"SSM_PARAMETER_PATH": "/acme", "SECRETS_MAX_AGE": "45"})
    fetch = FakeFetcher(full_values("/acme"))
    SecretStore(settings, fetch).load(force=True)
    names, max_age, force = fetch.calls[0]
    assert names[0] == "/acme/webhook-secret"
    assert max_age == 45
    assert force is True


def test_rotation_window_two_secrets() -> None:
    values = full_values(secret=f"{WEBHOOK_SECRET} {OLD_WEBHOOK_SECRET}")
    secrets = SecretStore(Settings.from_env({}), FakeFetcher(values)).load()
    assert secrets.webhook_secrets == (KEY_BYTES, OLD_KEY_BYTES)


@pytest.mark.parametrize("how", ["missing", "empty"])
def test_missing_webhook_secret(how: str) -> None:
    values = full_values()
    if how == "missing":
        del values["/dodo-customerio/webhook-secret"]
    else:
        values["/dodo-customerio/webhook-secret"] = ""
    with pytest.raises(ConfigError) as info:
        SecretStore(Settings.from_env({}), FakeFetcher(values)).load()
    message = str(info.value)
    assert "/dodo-customerio/webhook-secret" in message
    assert "missing" in message
    assert SITE_ID not in message
    assert API_KEY not in message


@pytest.mark.parametrize(
    "bad_secret",
    ["whsec_not*base64*at*all", "whsec_", "not-base64-%%%-SENSITIVE", "whsec_ü" + "A" * 30, "   ,  "],
)
def test_unusable_webhook_secret_never_echoed(bad_secret: str) -> None:
    store = SecretStore(Settings.from_env({}), FakeFetcher(full_values(secret=bad_secret)))
    with pytest.raises(ConfigError) as info:
        store.load()
    message = str(info.value)
    assert "/dodo-customerio/webhook-secret" in message
    for piece in (bad_secret.strip(), bad_secret.removeprefix("whsec_").strip(), "SENSITIVE"):
        if len(piece) > 3:
            assert piece not in message


def test_second_secret_bad_is_named_by_position_only() -> None:
    bad = "whsec_***leaked?***"
    store = SecretStore(Settings.from_env({}), FakeFetcher(full_values(secret=f"{WEBHOOK_SECRET},{bad}")))
    with pytest.raises(ConfigError) as info:
        store.load()
    message = str(info.value)
    assert "#2" in message
    assert "leaked" not in message
    assert WEBHOOK_SECRET.removeprefix("whsec_") not in message


def test_fetcher_failure_becomes_config_error() -> None:
    error = RuntimeError(f"AccessDenied while reading value {WEBHOOK_SECRET}")
    store = SecretStore(Settings.from_env({"SSM_PARAMETER_PATH": "/acme"}), FakeFetcher(error=error))
    with pytest.raises(ConfigError) as info:
        store.load()
    message = str(info.value)
    assert "/acme" in message
    assert "RuntimeError" in message
    assert WEBHOOK_SECRET not in message
    assert info.value.__cause__ is error  # kept for debugging, not in the message


@pytest.mark.parametrize("missing", ["customerio-site-id", "customerio-api-key", "both"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_customerio_credentials_missing(missing: str, how: str) -> None:
    values = full_values()
    names = ["customerio-site-id", "customerio-api-key"] if missing == "both" else [missing]
    for name in names:
        if how == "absent":
            del values[f"/dodo-customerio/{name}"]
        else:
            values[f"/dodo-customerio/{name}"] = ""
    secrets = SecretStore(Settings.from_env({}), FakeFetcher(values)).load()
    assert secrets.webhook_secrets == (KEY_BYTES,)  # webhooks can still be verified
    assert secrets.site_id == (None if "customerio-site-id" in names else SITE_ID)
    assert secrets.api_key == (None if "customerio-api-key" in names else API_KEY)
    with pytest.raises(ConfigError) as info:
        secrets.require_customerio()
    message = str(info.value)
    assert "customerio-site-id" in message
    assert "customerio-api-key" in message
    assert SITE_ID not in message
    assert API_KEY not in message


def test_extra_values_from_fetcher_are_ignored() -> None:
    values: dict[str, Any] = {**full_values(), "/dodo-customerio/other": "x", "_errors": ["y"]}
    secrets = SecretStore(Settings.from_env({}), FakeFetcher(values)).load()
    assert secrets == Secrets((KEY_BYTES,), SITE_ID, API_KEY)
