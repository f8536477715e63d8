"""`dodo-cio check` on the optional Dodo API key: needed by which strategies, and a warning, not a failure."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig
from dodo_cio_cli import check
from dodo_cio_cli.check_dodo_api import check_dodo_api_key, needs_dodo_api_key

PATH = "/dodo-customerio"
NAME = f"SSM {PATH}/dodo-api-key"


def config(identifier: str, contact_fields: str = "auto") -> MappingConfig:
    return MappingConfig(identifier=IdentifierStrategy.parse(identifier), contact_fields=contact_fields)


def test_which_deployments_need_the_key() -> None:
    by_email = needs_dodo_api_key(config("email"))
    assert by_email is not None and "waits on the retry queue" in by_email and "followed_by_payment" in by_email
    by_app_id = needs_dodo_api_key(config("metadata:app_user_id"))
    assert by_app_id is not None and "metadata key 'app_user_id'" in by_app_id
    by_id = needs_dodo_api_key(config("customer_id"))
    assert by_id is not None and "abandoned checkout" in by_id and "without an email" in by_id
    assert needs_dodo_api_key(config("customer_id", "dodo")) == by_id
    # The app owns the email: under customer_id nothing goes missing without the key.
    assert needs_dodo_api_key(config("customer_id", "app")) is None
    # Under metadata the app owns it by default, but the person must still be found.
    assert needs_dodo_api_key(config("metadata:app_user_id", "app")) is not None


def _not_found(stub: Stubber) -> None:
    stub.add_client_error(
        "get_parameter",
        "ParameterNotFound",
        "not found",
        expected_params={"Name": f"{PATH}/dodo-api-key", "WithDecryption": True},
    )


@pytest.mark.parametrize("identifier", ["customer_id", "email", "metadata:app_user_id"])
def test_a_missing_key_is_a_warning_with_the_command_to_store_it(ssm: tuple[Any, Stubber], identifier: str) -> None:
    client, stub = ssm
    _not_found(stub)
    finding = check_dodo_api_key(client, PATH, identifier)
    assert (finding.name, finding.status) == (NAME, "WARN")
    assert finding.reason.startswith("not stored: under ")
    assert f"aws ssm put-parameter --type SecureString --name {PATH}/dodo-api-key" in finding.hint
    assert "DodoApiMode" in finding.hint
    assert check.exit_code([finding]) == 0  # the bridge works without it


def test_not_needed_when_the_app_owns_the_email_under_customer_id(ssm: tuple[Any, Stubber]) -> None:
    client, stub = ssm
    _not_found(stub)
    finding = check_dodo_api_key(client, PATH, "customer_id", "app")
    assert finding.status == "ok" and "not needed" in finding.reason


@pytest.mark.parametrize(
    ("kind", "identifier", "status", "says"),
    [
        ("SecureString", "email", "ok", "looked up in Dodo's API"),
        ("String", "customer_id", "FAIL", "SecureString"),  # plaintext fails like every other parameter
    ],
)
def test_a_stored_key_is_judged_by_its_type_and_never_shown(
    ssm: tuple[Any, Stubber], kind: str, identifier: str, status: str, says: str
) -> None:
    client, stub = ssm
    answer = {"Parameter": {"Name": f"{PATH}/dodo-api-key", "Type": kind, "Value": "dodo-k3y", "Version": 1}}
    stub.add_response("get_parameter", answer)
    finding = check_dodo_api_key(client, PATH, identifier)
    assert finding.status == status and says in finding.reason + finding.hint
    assert "dodo-k3y" not in check.findings_json([finding])
