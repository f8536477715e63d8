"""Fixtures shared by every suite. Unit tests run with sockets disabled; others may use loopback only."""

from __future__ import annotations

import pytest
from pytest_socket import disable_socket, socket_allow_hosts


@pytest.fixture(autouse=True)
def _network_guard(request: pytest.FixtureRequest) -> None:
    """Unit tests never open a socket; other tests may reach loopback and nothing else.

    pytest-socket lifts the restriction itself after each test.
    """
    if "/tests/unit/" in str(request.node.path).replace("\\", "/"):
        disable_socket(allow_unix_socket=True)
    else:
        socket_allow_hosts(["127.0.0.1", "localhost", "::1"], allow_unix_socket=True)


def pytest_configure(config: pytest.Config) -> None:
    """Every test sees the DynamoDB `make run` serves (dodo_cio_local.local_dynamodb), whatever ran first:
    moto with item-level rollback and ClientRequestToken honoured, as DynamoDB behaves."""
    from dodo_cio_local import local_dynamodb

    local_dynamodb.install()
    _share_botocore_loader()


def _share_botocore_loader() -> None:
    """One botocore data loader for every session the tests make.

    Each fixture builds fresh boto3 clients (under a fresh moto), and every new session parsed the
    services' JSON models again: about a quarter of an integration test's setup. The loader only
    reads botocore's own data files, so sharing it changes no behaviour, only the time.
    """
    import functools

    import botocore.session

    botocore.session.create_loader = functools.cache(botocore.session.create_loader)  # type: ignore[assignment]
