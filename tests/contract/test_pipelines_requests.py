"""Every request the bridge sends, for every sample, identifier strategy and subscription mode, is one Customer.io's
published contract accepts: the Track v2 schema plus its byte limits (CUSTOMERIO_API=track), the Pipelines spec in
strict mode (CUSTOMERIO_API=pipelines). The requests are the deployment's own client's, after the real mapping,
identity resolution and op fitting (`contract.wire`), recorded instead of sent and checked by the sandbox's validator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contract.wire import Recorder, Sent, deployment, ready_ops
from dodo_cio.delivery.destination import PipelinesCredentials
from dodo_cio.delivery.track import TrackClient
from dodo_cio.mapping.limits import MAX_OP_BYTES
from dodo_cio_local.pipelines_v1 import BATCH_MAX_BYTES, CALL_MAX_BYTES, call_size
from support.samples import sample_paths

KEY = "contract-pipelines-key"
STRATEGIES = ["customer_id", "email", "metadata:app_user_id"]
SUBSCRIPTIONS = [p for p in sample_paths() if p.name.startswith("subscription.")]
EVERY_DEPLOYMENT = pytest.mark.parametrize(
    ("sample", "strategy", "object_type"),
    [
        pytest.param(sample, strategy, object_type, id=f"{sample.name}-{strategy}-{kind}")
        for kind, object_type in (("profile", None), ("objects", "7"))
        for strategy in STRATEGIES
        for sample in sample_paths()
    ],
)


@EVERY_DEPLOYMENT
def test_every_request_matches_the_track_v2_schema(
    track_v2_validator: Any, sample: Path, strategy: str, object_type: str | None
) -> None:
    recorder = Recorder()
    client = TrackClient("https://track.customer.io", "site", "key", session=recorder)
    client.send(ready_ops(sample.read_bytes(), deployment("track", strategy, object_type).mapping()))
    assert len(recorder.sent) == 1, "one request per webhook"
    url, doc = recorder.sent[0].url, json.loads(recorder.sent[0].body)
    if url == "https://track.customer.io/api/v2/batch":
        track_v2_validator.validate_batch(doc)
        ops = doc["batch"]
    else:
        assert url == "https://track.customer.io/api/v2/entity"
        track_v2_validator.validate_entity(doc)
        ops = [doc]
    for op in ops:
        assert len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_OP_BYTES
        assert len(op["identifiers"]) == (2 if op["type"] == "object" else 1)
        assert not [k for k in op if k.startswith("_")], "the bridge's own notes never go on the wire"
        for relationship in op.get("cio_relationships", []):
            assert len(relationship["identifiers"]) == 1


def pipelines_requests(sample: Path, strategy: str, object_type: str | None) -> list[Sent]:
    settings = deployment("pipelines", strategy, object_type)
    recorder = Recorder()
    client = settings.delivery_clients(lambda: recorder).get(PipelinesCredentials(KEY))
    result = client.send(ready_ops(sample.read_bytes(), settings.mapping()))
    assert result.delivered, [r.reason for r in result.results if r.outcome != "delivered"]
    return recorder.sent


def calls_of(sent: list[Sent]) -> list[dict[str, Any]]:
    """Every call the requests carry, each with its `type` (a direct call's from its path)."""
    calls: list[dict[str, Any]] = []
    for request in sent:
        body = json.loads(request.body)
        kind = request.url.rsplit("/", 1)[-1]
        calls.extend(body["batch"] if kind == "batch" else [{"type": kind, **body}])
    return calls


@EVERY_DEPLOYMENT
def test_every_request_matches_the_pipelines_spec(
    pipelines_validator: Any, sample: Path, strategy: str, object_type: str | None
) -> None:
    sent = pipelines_requests(sample, strategy, object_type)
    (request,) = sent  # one request per webhook
    assert request.url.rsplit("/", 1)[0] == "https://cdp.customer.io/v1"
    pipelines_validator.validate_request(request.url, json.loads(request.body), size=len(request.body))
    assert len(request.body) <= (BATCH_MAX_BYTES if request.url.endswith("/batch") else CALL_MAX_BYTES)
    calls = calls_of(sent)
    assert all(call_size(call) <= CALL_MAX_BYTES for call in calls)
    assert not [k for call in calls for k in call if k.startswith("_")], "the bridge's own notes never go on the wire"
    if strategy == "email":
        assert all("@" in call["userId"] for call in calls)
    else:
        assert all("@" not in call["userId"] for call in calls)
    groups = [c for c in calls if c["type"] == "group"]
    if sample in SUBSCRIPTIONS and object_type is None:
        assert groups == []  # a subscription is a group only when the object type is set
    elif sample in SUBSCRIPTIONS:
        [group] = groups
        assert group["groupId"] == json.loads(sample.read_bytes())["data"]["subscription_id"]
        assert group["traits"]["object_type_id"] == object_type
        assert group["userId"]
