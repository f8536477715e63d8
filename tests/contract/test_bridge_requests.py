"""Every request the bridge would send, for every sample and every identifier strategy, is one
Customer.io's published Track v2 schema accepts (plus the byte limits the schema cannot express)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dodo_cio.customerio import TrackClient
from dodo_cio.limits import MAX_OP_BYTES, fit_op
from dodo_cio.mapping import IdentifierStrategy, MappingConfig, map_event
from dodo_cio.models import DodoEvent, parse_envelope, parse_json, parse_payload

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "events" / "dodo").glob("*.json"))


class _Recorder:
    """A stand-in requests.Session that records what TrackClient would put on the wire."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: Any) -> Any:
        self.sent.append((url, data))

        class _Response:
            status_code = 200
            content = b"{}"
            headers: ClassVar[dict[str, str]] = {}

        return _Response()

    def close(self) -> None:
        pass


def _requests_for(raw: bytes, strategy: str) -> list[tuple[str, bytes]]:
    envelope = parse_envelope(parse_json(raw))
    payload = parse_payload(envelope)
    assert payload is not None
    config = MappingConfig(identifier=IdentifierStrategy.parse(strategy))
    ops = [fit_op(op).op for op in map_event(DodoEvent("msg_contract", envelope, payload), config)]
    recorder = _Recorder()
    TrackClient("https://track.customer.io", "site", "key", session=recorder).send(ops)
    return recorder.sent


@pytest.mark.parametrize("strategy", ["customer_id", "email", "metadata:app_user_id"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_request_matches_the_track_v2_schema(track_v2_validator, sample: Path, strategy: str) -> None:
    sent = _requests_for(sample.read_bytes(), strategy)
    assert len(sent) == 1, "one request per webhook"
    url, body = sent[0]
    track_v2_validator.validate_request(url, body)
    doc = json.loads(body)
    ops = doc["batch"] if url.endswith("/batch") else [doc]
    for op in ops:
        assert len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_OP_BYTES
        assert len(op["identifiers"]) == 1


def test_the_seed_mistake_would_be_caught(track_v2_validator) -> None:
    """The published example's `action: "payment_completed"` fails the same check."""
    bad = {"type": "person", "identifiers": {"id": "cus_1"}, "action": "payment_completed", "attributes": {}}
    with pytest.raises(AssertionError):
        track_v2_validator.validate_entity(bad)
