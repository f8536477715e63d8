"""Botocore clients behind a Stubber, for unit tests of the operator tools (no network, no moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber


def _stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    # Explicit credentials: resolving them could reach for the instance metadata endpoint.
    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def sqs() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("sqs")


@pytest.fixture
def ssm() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("ssm")


@pytest.fixture
def cfn() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("cloudformation")
