"""Failure paths of the ingest handler that only show when something around it misbehaves.

Each test here was checked by breaking the code it guards: without it, the test fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio_local.lambda_context import FakeLambdaContext
from support.apigw import signed_event
from support.samples import sample_paths

pytestmark = pytest.mark.network

PAYMENT = next(p for p in sample_paths() if p.name == "payment.succeeded.json").read_bytes()


def test_forged_requests_force_at_most_one_secret_reread_per_interval(bridge: Any, monkeypatch: Any) -> None:
    """A bad signature re-reads the secret (it may just have been rotated), but not once per request."""
    service = bridge.app.service()
    assert bridge.send(PAYMENT)[0] == 200  # warm: the secrets are cached
    forced: list[bool] = []
    fetch = service.secrets._fetch

    def counting(names: list[str], max_age: int, force: bool) -> Any:
        forced.append(force)
        return fetch(names, max_age, force)

    monkeypatch.setattr(service.secrets, "_fetch", counting)
    now = [service.clock()]
    monkeypatch.setattr(service, "clock", lambda: now[0])
    for _ in range(100):
        status, _ = bridge.invoke(signed_event(PAYMENT, b"a-forged-secret-0123456789abcdef"))
        assert status == 401
    assert forced.count(True) == 1, "one forced SSM read for 100 forged requests"
    now[0] += 31  # past the 30 s interval: one more is allowed
    bridge.invoke(signed_event(PAYMENT, b"a-forged-secret-0123456789abcdef"))
    assert forced.count(True) == 2


def test_a_transform_that_raises_at_cold_start_is_answered_on_every_call(bridge: Any, monkeypatch: Any) -> None:
    def broken(config: Any) -> Any:
        raise RuntimeError("a merchant's customize.py bug")

    monkeypatch.setattr(bridge.app, "build_mapping", broken)
    for _ in range(2):  # not built, so tried again, and answered again
        response = bridge.app.lambda_handler(signed_event(PAYMENT, bridge.secret), FakeLambdaContext())
        assert (response["statusCode"], json.loads(response["body"])) == (500, {"error": "bridge misconfigured"})
    assert bridge.app._service is None
    assert bridge.sandbox.requests == []
