"""The Pipelines client over a real socket: a loopback stub stands in for cdp.customer.io/v1.

What the unit tests check through a fake session, checked once on the wire: the stdlib transport
keeps the `/v1` prefix of CUSTOMERIO_PIPELINES_URL, sends strict mode and Basic auth as headers,
and a body the published spec accepts.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from dodo_cio.configuration.settings import Settings
from dodo_cio.delivery.destination import PipelinesCredentials
from dodo_cio.mapping.mapper import MappingConfig, map_event
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload
from support.receiver import loopback_receiver
from support.samples import SAMPLES

pytestmark = pytest.mark.network

SCHEMA = json.loads((Path(__file__).parents[1] / "contract" / "pipelines_v1.schema.json").read_text())
KEY = "cdp-loopback-key"


def subscription_ops() -> list[dict[str, object]]:
    envelope = parse_envelope(parse_json((SAMPLES / "subscription.active.json").read_bytes()))
    payload = parse_payload(envelope)
    assert payload is not None
    return map_event(DodoEvent("msg_loopback", envelope, payload), MappingConfig(subscription_object_type_id="1"))


def test_pipelines_calls_on_the_wire() -> None:
    ops = subscription_ops()
    with loopback_receiver(path="/v1") as stub:
        settings = Settings.from_env({"CUSTOMERIO_API": "pipelines", "CUSTOMERIO_PIPELINES_URL": stub.url})
        client = settings.delivery_clients().get(PipelinesCredentials(KEY))
        try:
            assert client.send(ops).delivered
            assert client.send(ops[-1:]).delivered  # the same kept-alive connection, a lone call
            stub.status = 401
            refused = client.send(ops)
        finally:
            client.close()
    assert stub.paths == ["/v1/batch", "/v1/track", "/v1/batch"]
    headers, body = stub.received[0]
    assert headers["x-strict-mode"] == "1"
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == f"{KEY}:".encode()
    batch = json.loads(body)
    assert [item["type"] for item in batch["batch"]] == ["identify", "group", "track"]
    assert list(Draft202012Validator({**SCHEMA, "$ref": "#/$defs/batch_request"}).iter_errors(batch)) == []
    assert "type" not in json.loads(stub.received[1][1])
    assert [r.outcome for r in refused.results] == ["config"] * 3 and refused.status == 401
