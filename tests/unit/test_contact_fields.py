"""Contact fields (issue 17): a null, blank or missing email, name or phone from Dodo is unknown, never a
removal; `CUSTOMERIO_CONTACT_FIELDS` leaves them to the merchant's own app; the backfill agrees. Both APIs:
tests/integration/test_workspace_contact_fields.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.configuration.settings import Settings
from dodo_cio.mapping.mapper import (
    CONTACT_FIELDS_MODES,
    IdentifierStrategy,
    MappingConfig,
    MappingConfigError,
)
from dodo_cio.mapping.profile import CONTACT_FIELDS, customer_profile
from dodo_cio.platform.env import ConfigError
from dodo_cio_cli import backfill_command
from dodo_cio_cli.backfill_source import Listing, OpBuilder
from dodo_cio_local.dodo_standin import make_customer
from support.mapped_events import customer, ops_of
from support.samples import load_sample

ALL = CONTACT_FIELDS
NONE: frozenset[str] = frozenset()
EMAIL_ONLY = frozenset({"email"})
CONTACT_KEYS = {"email", "name", "first_name", "last_name", "phone"}
FULL = {
    "email": "maya@example.com",
    "name": "Maya Fernandes",
    "phone_number": "+4915112345678",
}


# -- the profile ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "contact", "expected"),
    [
        pytest.param(
            FULL,
            ALL,
            {
                "email": "maya@example.com",
                "name": "Maya Fernandes",
                "first_name": "Maya",
                "last_name": "Fernandes",
                "phone": "+4915112345678",
            },
            id="all-known",
        ),
        pytest.param({**FULL, "phone_number": None}, ALL, {"phone"}, id="phone-null"),
        pytest.param({**FULL, "phone_number": ""}, ALL, {"phone"}, id="phone-empty"),
        pytest.param({**FULL, "phone_number": "   "}, ALL, {"phone"}, id="phone-blank"),
        pytest.param({k: v for k, v in FULL.items() if k != "phone_number"}, ALL, {"phone"}, id="phone-missing"),
        pytest.param({**FULL, "name": None}, ALL, {"name", "first_name", "last_name"}, id="name-null"),
        pytest.param({**FULL, "name": "  "}, ALL, {"name", "first_name", "last_name"}, id="name-blank"),
        pytest.param({"email": FULL["email"]}, ALL, {"name", "first_name", "last_name", "phone"}, id="only-email"),
        pytest.param({**FULL, "name": "Priya"}, ALL, {"last_name"}, id="one-word-name"),
        pytest.param({**FULL, "email": None}, ALL, {"email"}, id="email-null"),
        pytest.param({**FULL, "email": " "}, ALL, {"email"}, id="email-blank"),
        pytest.param(FULL, NONE, CONTACT_KEYS, id="app-owns-all"),
        pytest.param(FULL, EMAIL_ONLY, {"name", "first_name", "last_name", "phone"}, id="email-identifier"),
        pytest.param({**FULL, "email": None}, EMAIL_ONLY, CONTACT_KEYS, id="email-identifier-unknown"),
    ],
)
def test_only_known_contact_fields_are_sent(
    fields: dict[str, Any], contact: frozenset[str], expected: dict[str, Any] | set[str]
) -> None:
    profile = customer_profile(customer(**fields), contact=contact)
    assert profile["dodo_customer_id"] == "cus_maya"  # always: the Dodo id is the bridge's own fact
    assert None not in profile.values()  # a contact field is never a removal
    if isinstance(expected, dict):
        assert {k: v for k, v in profile.items() if k in CONTACT_KEYS} == expected
    else:  # the names left out
        assert CONTACT_KEYS - set(profile) == expected


def test_contact_values_are_trimmed() -> None:
    profile = customer_profile(customer(email=" maya@example.com ", name=" Maya  Fernandes ", phone_number=" +49 "))
    assert (profile["email"], profile["name"], profile["phone"]) == ("maya@example.com", "Maya Fernandes", "+49")


def test_metadata_does_not_depend_on_who_owns_the_contact_fields() -> None:
    cust = customer(**FULL, metadata={"plan": "pro"})
    assert customer_profile(cust, contact=NONE) == {"dodo_customer_id": "cus_maya", "metadata_plan": "pro"}


# -- the mapping's setting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "mode", "owner", "sent"),
    [
        ("customer_id", "auto", "dodo", ALL),  # the bridge makes the person: Dodo's fields are all it has
        ("email", "auto", "dodo", ALL),  # the email is the identifier itself
        ("metadata:app_user_id", "auto", "app", NONE),  # the merchant's app owns the person
        ("customer_id", "dodo", "dodo", ALL),
        ("email", "dodo", "dodo", ALL),
        ("metadata:app_user_id", "dodo", "dodo", ALL),
        ("customer_id", "app", "app", NONE),
        ("email", "app", "app", EMAIL_ONLY),  # the address the person is addressed by is still sent
        ("metadata:app_user_id", "app", "app", NONE),
    ],
)
def test_who_owns_the_contact_fields_per_strategy(strategy: str, mode: str, owner: str, sent: frozenset[str]) -> None:
    config = MappingConfig(identifier=IdentifierStrategy.parse(strategy), contact_fields=mode)
    assert config.contact_owner() == owner
    assert config.contact_fields_sent() == sent


@pytest.mark.parametrize("mode", CONTACT_FIELDS_MODES)
@pytest.mark.parametrize("strategy", ["customer_id", "metadata:app_user_id"])
def test_the_mapping_sends_what_the_setting_gives_it(strategy: str, mode: str) -> None:
    """The mapper itself passes the setting on: ignoring it would overwrite an address the app owns."""
    config = MappingConfig(identifier=IdentifierStrategy.parse(strategy), contact_fields=mode)
    (identify,) = [op for op in ops_of(load_sample("payment.succeeded.json"), config) if op["action"] == "identify"]
    assert {"email", "name"} & set(identify["attributes"]) == {"email", "name"} & config.contact_fields_sent()


def test_the_default_is_auto() -> None:
    assert MappingConfig().contact_fields == "auto" == CONTACT_FIELDS_MODES[0]


@pytest.mark.parametrize("mode", ["", "App", "both", "none"])
def test_an_unknown_mode_is_refused_even_from_customize(mode: str) -> None:
    with pytest.raises(MappingConfigError, match="contact_fields"):
        MappingConfig(contact_fields=mode)
    with pytest.raises(MappingConfigError, match="contact_fields"):
        MappingConfig().with_changes(contact_fields=mode)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "auto"),
        ("", "auto"),
        ("  ", "auto"),
        ("auto", "auto"),
        ("dodo", "dodo"),
        (" DODO ", "dodo"),
        ("app", "app"),
        ("App", "app"),
    ],
)
def test_settings_read_customerio_contact_fields(value: str | None, expected: str) -> None:
    env = {} if value is None else {"CUSTOMERIO_CONTACT_FIELDS": value}
    settings = Settings.from_env(env)
    assert settings.contact_fields == expected
    assert settings.mapping().contact_fields == expected


@pytest.mark.parametrize("value", ["both", "merchant", "none", "dodo,app"])
def test_settings_refuse_an_unknown_contact_fields_value(value: str) -> None:
    with pytest.raises(ConfigError, match="CUSTOMERIO_CONTACT_FIELDS must be auto, dodo or app"):
        Settings.from_env({"CUSTOMERIO_CONTACT_FIELDS": value})


# -- the backfill ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "mode", "n", "contact"),
    [
        ("customer_id", "auto", 6, {"email", "name", "first_name", "last_name", "phone"}),
        ("customer_id", "auto", 1, {"email", "name", "first_name", "last_name"}),  # no phone: no removal either
        ("metadata:app_user_id", "auto", 6, set()),
    ],
)
def test_the_backfill_leaves_the_same_fields_to_the_app(strategy: str, mode: str, n: int, contact: set[str]) -> None:
    config = MappingConfig(identifier=IdentifierStrategy.parse(strategy), contact_fields=mode)
    (op,) = OpBuilder(config).build(Listing("customers", "customers"), make_customer(n), 1_800_000_000).ops
    assert set(op["attributes"]) & CONTACT_KEYS == contact
    assert None not in op["attributes"].values()


class _Stack:
    def __init__(self, **parameters: str) -> None:
        self.parameters = {"SsmParameterPath": "/shop", "CustomerioApi": "track", **parameters}

    def describe_stacks(self, **kwargs: Any) -> dict[str, Any]:
        items = [{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()]
        return {"Stacks": [{"StackName": "bridge", "StackStatus": "UPDATE_COMPLETE", "Parameters": items}]}


def test_the_backfill_reads_the_stacks_contact_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no customize.py
    monkeypatch.setenv("CUSTOMERIO_CONTACT_FIELDS", "dodo")  # the stack's own value wins over the shell's
    parser = argparse.ArgumentParser()
    backfill_command.add_arguments(parser)
    args = parser.parse_args(["--stack", "bridge"])
    stack = _Stack(CustomerioIdentifier="metadata:app_user_id", CustomerioContactFields="app")
    target = backfill_command._target(args, lambda service, region: stack)
    assert target.mapping.contact_fields == "app" and target.mapping.contact_fields_sent() == NONE
    monkeypatch.delenv("CUSTOMERIO_CONTACT_FIELDS")
    del stack.parameters["CustomerioContactFields"]  # a stack from before the parameter existed: auto
    assert backfill_command._target(args, lambda service, region: stack).mapping.contact_fields == "auto"
