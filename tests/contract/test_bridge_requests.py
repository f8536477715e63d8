"""Every request the bridge would send, for every sample and every identifier strategy, is one
Customer.io's published Track v2 schema accepts (plus the byte limits the schema cannot express)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.wire import Recorder, Sent, deployment, ready_ops
from dodo_cio.delivery.track import TrackClient
from dodo_cio.mapping.limits import MAX_OP_BYTES

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "events" / "dodo").glob("*.json"))


def _requests_for(raw: bytes, strategy: str, object_type: str | None) -> list[Sent]:
    recorder = Recorder()
    client = TrackClient("https://track.customer.io", "site", "key", session=recorder)
    client.send(ready_ops(raw, deployment("track", strategy, object_type).mapping()))
    return recorder.sent


@pytest.mark.parametrize("object_type", [None, "7"], ids=["profile", "objects"])
@pytest.mark.parametrize("strategy", ["customer_id", "email", "metadata:app_user_id"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_request_matches_the_track_v2_schema(
    track_v2_validator, sample: Path, strategy: str, object_type: str | None
) -> None:
    sent = _requests_for(sample.read_bytes(), strategy, object_type)
    assert len(sent) == 1, "one request per webhook"
    url, doc = sent[0].url, json.loads(sent[0].body)
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
