"""`dodo-cio check` end to end on the optional Dodo API key: the strategy from the option, the stack or the
environment; SSM in moto, Customer.io as the local Track sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from test_check import API_KEY, SECRET, SITE_ID

from dodo_cio_cli import cli
from dodo_cio_local.sandbox import TrackSandbox
from support.aws import SSM_PATH, create_queues, put_secrets
from support.g4_stack import FakeStack

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TrackSandbox]:
    with TrackSandbox(site_id=SITE_ID, api_key=API_KEY) as box:
        yield box


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _dodo_line(out: str) -> str:
    """The finding's own line (its hint, below it, names the parameter too)."""
    return next(line for line in out.splitlines() if "dodo-api-key" in line)


@pytest.fixture
def secrets(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CUSTOMERIO_IDENTIFIER", "CUSTOMERIO_CONTACT_FIELDS"):
        monkeypatch.delenv(variable, raising=False)
    put_secrets(boto3.client("ssm"), webhook_secret=SECRET, site_id=SITE_ID, api_key=API_KEY)


def test_the_strategy_from_the_environment_or_the_options_decides_the_warning(
    secrets: None, sandbox: TrackSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment's strategy, then the options over it (the default's warning: test_check.py)."""
    base = ("--ssm-path", SSM_PATH, "--track-url", sandbox.base_url)
    monkeypatch.setenv("CUSTOMERIO_IDENTIFIER", "metadata:app_user_id")  # as `make run` is configured
    code, out = _check(capsys, *base)
    assert code == 0 and out.rstrip().endswith("all checks passed, 1 warning")
    line = _dodo_line(out)
    assert line.split()[0] == "WARN" and "metadata key 'app_user_id'" in line
    assert f"aws ssm put-parameter --type SecureString --name {SSM_PATH}/dodo-api-key" in out

    code, out = _check(capsys, *base, "--identifier", "customer_id", "--contact-fields", "app")
    assert code == 0 and out.rstrip().endswith("all checks passed")
    assert _dodo_line(out).split()[0] == "ok" and "not needed" in _dodo_line(out)


def test_a_stored_key_passes_and_the_stack_names_the_strategy(
    secrets: None, sandbox: TrackSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    retry_url, dlq_url = create_queues(boto3.client("sqs"))
    cfn = FakeStack(
        {"SsmParameterPath": SSM_PATH, "CustomerioTrackUrl": sandbox.base_url, "CustomerioIdentifier": "email"},
        {"RetryQueueUrl": retry_url, "DeadLetterQueueUrl": dlq_url},
    )
    monkeypatch.setattr(
        cli, "_aws", lambda service, region: cfn if service == "cloudformation" else boto3.client(service)
    )
    code, out = _check(capsys, "--stack", "bridge")
    assert code == 0 and "under email" in _dodo_line(out)

    boto3.client("ssm").put_parameter(Name=f"{SSM_PATH}/dodo-api-key", Value="dodo-k3y", Type="SecureString")
    code, out = _check(capsys, "--stack", "bridge")
    assert code == 0 and out.rstrip().endswith("all checks passed"), out
    assert _dodo_line(out).split()[0] == "ok" and "dodo-k3y" not in out
