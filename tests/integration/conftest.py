"""The ingest handler in-process: moto for AWS, the local Customer.io sandbox on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dodo_cio.delivery.destination import APIS, PIPELINES
from dodo_cio_local.event_source import SqsEventSource
from dodo_cio_local.handler_modules import load_retry_module
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_run import read_template
from support.apigw import signed_event
from support.aws import (
    SSM_PATH,
    create_quarantine_queue,
    create_queues,
    create_state_table,
    drain,
    fake_credentials,
    put_secrets,
)
from support.event_source import retry_event_source
from support.workspace import use_pipelines

FUNCTIONAL_TIMEOUT_SECONDS = 60
SECRET_BYTES = b"integration-test-secret-0123456789"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
SITE_ID = "it-site"
API_KEY = "it-api-key-9f8e7d"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    from dodo_cio_local.sandbox import TrackSandbox

    box = TrackSandbox(site_id=SITE_ID, api_key=API_KEY)
    box.start()
    yield box
    box.stop()


@dataclass
class Bridge:
    """One warm ingest container wired to moto and the sandbox."""

    app: Any
    sqs: Any
    ssm: Any
    queue_url: str
    dlq_url: str
    sandbox: Any
    quarantine_url: str = ""
    secret: bytes = SECRET_BYTES

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # A functional test is not about time: on a machine busy with other work, the template's 12 s
        # left too little for one step (the ledger read got DeadlineExceeded in CI). The deadline
        # tests (test_deadlines.py) give the handler their own context with the time they mean.
        response = self.app.lambda_handler(event, FakeLambdaContext(timeout_seconds=FUNCTIONAL_TIMEOUT_SECONDS))
        return response["statusCode"], json.loads(response["body"])

    def send(self, body: bytes, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        return self.invoke(signed_event(body, self.secret, **kwargs))

    def parked(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.queue_url)

    def dead_lettered(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.dlq_url)

    def quarantined(self) -> list[dict[str, Any]]:
        return drain(self.sqs, self.quarantine_url)

    def store(self, name: str, value: str | None) -> None:
        """Sets (None: deletes) the bridge's SSM parameter `name`; the next invocation reads it again."""
        from aws_lambda_powertools.utilities import parameters

        if value is None:
            self.ssm.delete_parameter(Name=f"{SSM_PATH}/{name}")
        else:
            self.ssm.put_parameter(Name=f"{SSM_PATH}/{name}", Value=value, Type="SecureString", Overwrite=True)
        parameters.clear_caches()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AWS call in the test goes to moto, with test credentials."""
    fake_credentials(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def bridge(aws_env: None, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    from aws_lambda_powertools.utilities import parameters

    sqs = boto3.client("sqs")
    ssm = boto3.client("ssm")
    queue_url, dlq_url = create_queues(sqs)
    quarantine_url = create_quarantine_queue(sqs)
    table = create_state_table(boto3.client("dynamodb"))
    put_secrets(ssm, webhook_secret=SECRET, site_id=SITE_ID, api_key=API_KEY)
    env = {
        "SSM_PARAMETER_PATH": SSM_PATH,
        "CUSTOMERIO_REGION": "us",
        "CUSTOMERIO_TRACK_URL": sandbox.base_url,
        "CUSTOMERIO_IDENTIFIER": "customer_id",
        "RETRY_QUEUE_URL": queue_url,
        "DEAD_LETTER_QUEUE_URL": dlq_url,
        "QUARANTINE_QUEUE_URL": quarantine_url,
        "STATE_TABLE_NAME": table,
        "POWERTOOLS_SERVICE_NAME": "dodo-customerio-bridge",
        "POWERTOOLS_METRICS_NAMESPACE": "DodoCustomerioBridge",
        "CUSTOMERIO_READ_TIMEOUT": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import app  # after the environment is set: Logger and Metrics read it at import, as in Lambda

    parameters.clear_caches()
    sandbox.reset()
    monkeypatch.setattr(app, "_service", None)
    yield Bridge(app, sqs, ssm, queue_url, dlq_url, sandbox, quarantine_url)
    parameters.clear_caches()


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest, bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bridge deployed with CustomerioApi=track, then =pipelines: a test that takes `api` runs on both."""
    if request.param == PIPELINES:
        use_pipelines(bridge, monkeypatch)
    return str(request.param)


@dataclass
class Retry:
    module: Any  # the retry function's app module; its container is cold until `module.service()` builds it
    source: SqsEventSource  # the retry queue feeding its handler, as template.yaml wires the event source


@pytest.fixture
def retry(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> Retry:
    """The retry function beside the bridge, built from the same environment when first used."""
    module = load_retry_module()
    monkeypatch.setattr(module, "_service", None)
    return Retry(module, retry_event_source(bridge.sqs, bridge.queue_url, module.lambda_handler, read_template()))
