"""`dodo-cio check` end to end: SSM in moto, Customer.io as the local Track sandbox on loopback; the settings
(API, region, Dodo-key strategy) from the options, the stack or the environment."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import boto3
import pytest

from dodo_cio_cli import cli
from dodo_cio_local.sandbox import TrackSandbox
from support.aws import SSM_PATH, create_queues, put_secrets
from support.fake_stack import FakeStack

pytestmark = pytest.mark.network

SECRET = "whsec_" + base64.b64encode(b"integration-check-secret-000001").decode()
SITE_ID = "check-site"
API_KEY = "check-api-key-5e6f"


@pytest.fixture(scope="module")
def us_sandbox() -> Iterator[TrackSandbox]:
    with TrackSandbox(site_id=SITE_ID, api_key=API_KEY) as box:
        yield box


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["check", "--ssm-path", SSM_PATH, *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _line(out: str, name: str) -> str:
    """The finding's own line (a hint below it may name the same thing)."""
    statuses = {"ok", "FAIL", "skip", "WARN"}
    return next(line for line in out.splitlines() if name in line and line.strip().split()[0] in statuses)


@pytest.fixture
def track_secrets(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CUSTOMERIO_IDENTIFIER", "CUSTOMERIO_CONTACT_FIELDS"):
        monkeypatch.delenv(variable, raising=False)
    put_secrets(boto3.client("ssm"), webhook_secret=SECRET, site_id=SITE_ID, api_key=API_KEY)


def test_a_correct_deployment_passes_and_the_strategy_decides_the_dodo_key_warning(
    track_secrets: None, us_sandbox: TrackSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _check(capsys, "--track-url", us_sandbox.base_url)
    assert code == 0, out
    for name in ("webhook-secret", "customerio-site-id", "customerio-api-key"):
        assert _line(out, name).split()[0] == "ok"
    assert "1 secret, well-formed" in _line(out, "webhook secret")
    assert "workspace region us" in _line(out, "Customer.io credentials")
    # The optional Dodo API key is not stored: customer_id still works, abandoned checkouts of new customers
    # reach a person without an email (tests/unit/test_check_offline.py).
    assert out.rstrip().endswith("all checks passed, 1 warning")
    assert SECRET not in out and API_KEY not in out  # never printed
    probe = us_sandbox.requests[-1]
    assert (probe.method, probe.path, probe.status) == ("GET", "/api/v1/accounts/region", 200)
    code, out = _check(capsys, "--track-url", us_sandbox.base_url, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert [c["status"] for c in doc["checks"]] == ["ok"] * 5 + ["WARN"]  # no dodo-api-key: exit 0 all the same

    # The strategy from the environment, then the options over it, decides the Dodo key's warning.
    monkeypatch.setenv("CUSTOMERIO_IDENTIFIER", "metadata:app_user_id")  # as `make run` is configured
    code, out = _check(capsys, "--track-url", us_sandbox.base_url)
    assert code == 0 and out.rstrip().endswith("all checks passed, 1 warning")
    line = _line(out, "dodo-api-key")
    assert line.split()[0] == "WARN" and "metadata key 'app_user_id'" in line
    assert f"aws ssm put-parameter --type SecureString --name {SSM_PATH}/dodo-api-key" in out

    code, out = _check(
        capsys, "--track-url", us_sandbox.base_url, "--identifier", "customer_id", "--contact-fields", "app"
    )
    assert code == 0 and out.rstrip().endswith("all checks passed")
    assert _line(out, "dodo-api-key").split()[0] == "ok" and "not needed" in _line(out, "dodo-api-key")


def test_stack_settings_dodo_key_queues_and_dead_letters(
    track_secrets: None, us_sandbox: TrackSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs")
    retry_url, dlq_url = create_queues(sqs)
    settings = {"SsmParameterPath": SSM_PATH, "CustomerioRegion": "us", "CustomerioIdentifier": "email"}
    cfn = FakeStack(
        {**settings, "CustomerioTrackUrl": us_sandbox.base_url},
        {"RetryQueueUrl": retry_url, "DeadLetterQueueUrl": dlq_url},
    )
    monkeypatch.setattr(
        cli, "_aws", lambda service, region: cfn if service == "cloudformation" else boto3.client(service)
    )
    assert cli.main(["check", "--stack", "bridge"]) == 0
    assert cfn.calls == 1  # parameters and outputs from one DescribeStacks
    out = capsys.readouterr().out
    assert "checking stack bridge, SSM path /dodo-customerio, Customer.io region us" in out
    assert "exists, empty" in _line(out, "dead-letter queue")
    assert "under email" in _line(out, "dodo-api-key")  # the stack's strategy

    boto3.client("ssm").put_parameter(Name=f"{SSM_PATH}/dodo-api-key", Value="dodo-k3y", Type="SecureString")
    assert cli.main(["check", "--stack", "bridge"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("all checks passed"), out
    assert _line(out, "dodo-api-key").split()[0] == "ok" and "dodo-k3y" not in out
    assert "customers not seen yet are looked up in Dodo's API" in _line(out, "dodo-api-key")

    sqs.send_message(QueueUrl=dlq_url, MessageBody="{}")
    assert cli.main(["check", "--stack", "bridge"]) == 1
    out = capsys.readouterr().out
    assert "1 undelivered delivery waiting" in _line(out, "dead-letter queue")
    assert "dodo-cio dlq --stack bridge" in out

    # The stack says eu; the sandbox workspace is us: the stack's region is what is checked.
    cfn.parameters["CustomerioRegion"] = "eu"
    sqs.purge_queue(QueueUrl=dlq_url)
    assert cli.main(["check", "--stack", "bridge"]) == 1
    out = capsys.readouterr().out
    assert "your workspace is in us; set CustomerioRegion=us" in out
    assert "hint: sam deploy --parameter-overrides CustomerioRegion=us" in out


# -- a Pipelines deployment (CustomerioApi=pipelines) -----------------------------------------------


def test_the_stack_chooses_the_api_and_api_can_check_the_other_one(
    aws_env: None, us_sandbox: TrackSandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The webhook secret and a Pipelines key, and no Track site id or key: all such a deployment reads.
    put_secrets(boto3.client("ssm"), webhook_secret=SECRET, site_id=None, api_key=None)
    key = us_sandbox.pipelines_key
    boto3.client("ssm").put_parameter(Name=f"{SSM_PATH}/customerio-pipelines-api-key", Value=key, Type="SecureString")
    pipelines = {"CustomerioApi": "pipelines", "CustomerioPipelinesUrl": us_sandbox.pipelines_url}
    cfn = FakeStack({"SsmParameterPath": SSM_PATH, "CustomerioRegion": "us", **pipelines})
    monkeypatch.setattr(
        cli, "_aws", lambda service, region: cfn if service == "cloudformation" else boto3.client(service)
    )
    monkeypatch.setenv("CUSTOMERIO_API", "track")  # the shell's setting does not override the stack's
    assert cli.main(["check", "--stack", "bridge"]) == 1  # the queues are not there; the key is fine
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("checking stack bridge, SSM path /dodo-customerio, Customer.io region us, ")
    assert "pipelines API, URL" in out.splitlines()[0]
    assert _line(out, "Customer.io Pipelines key").split()[0] == "ok"
    # Checking the Track credentials of a Pipelines stack, e.g. before switching back: said in the header.
    assert cli.main(["check", "--stack", "bridge", "--api", "track"]) == 1
    out = capsys.readouterr().out
    assert "track API (the stack delivers with pipelines)" in out.splitlines()[0]
    assert "not found" in _line(out, "customerio-site-id")
