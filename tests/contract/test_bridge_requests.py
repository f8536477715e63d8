"""Every request the bridge would send, for every sample and every identifier strategy, is one
Customer.io's published Track v2 schema accepts (plus the byte limits the schema cannot express)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dodo_cio.customerio import TrackClient
from dodo_cio.identity import Known, Resolver
from dodo_cio.limits import MAX_OP_BYTES, fit_op
from dodo_cio.mapping import IdentifierStrategy, MappingConfig, map_event
from dodo_cio.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio.state import Lookup

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


class _Directory:
    """What the state table would know after the customer's first payment: every customer, every payment."""

    def __init__(self, strategy: IdentifierStrategy) -> None:
        self.strategy = strategy

    def lookup(self, customer_ids: Any, payment_ids: Any) -> Lookup:
        payments = {p: "cus_from_payment" for p in payment_ids}
        customers = {}
        for c in set(customer_ids) | set(payments.values()):
            ident = self.strategy.resolve(c, f"{c}@example.com", [{self.strategy.metadata_key or "": f"user-{c}"}])
            assert ident is not None
            customers[c] = ident
        return Lookup(customers, payments)


def _requests_for(raw: bytes, strategy: str, object_type: str | None) -> list[tuple[str, bytes]]:
    envelope = parse_envelope(parse_json(raw))
    payload = parse_payload(envelope)
    assert payload is not None
    identifier = IdentifierStrategy.parse(strategy)
    config = MappingConfig(identifier=identifier, subscription_object_type_id=object_type)
    event = DodoEvent("msg_contract", envelope, payload)
    ops, unresolved = Resolver(identifier, _Directory(identifier)).resolve(map_event(event, config), Known())
    assert unresolved == []
    ops = [fit_op(op).op for op in ops]
    recorder = _Recorder()
    TrackClient("https://track.customer.io", "site", "key", session=recorder).send(ops)
    return recorder.sent


@pytest.mark.parametrize("object_type", [None, "7"], ids=["profile", "objects"])
@pytest.mark.parametrize("strategy", ["customer_id", "email", "metadata:app_user_id"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_request_matches_the_track_v2_schema(
    track_v2_validator, sample: Path, strategy: str, object_type: str | None
) -> None:
    sent = _requests_for(sample.read_bytes(), strategy, object_type)
    assert len(sent) == 1, "one request per webhook"
    url, body = sent[0]
    track_v2_validator.validate_request(url, body)
    doc = json.loads(body)
    ops = doc["batch"] if url.endswith("/batch") else [doc]
    for op in ops:
        assert len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_OP_BYTES
        assert len(op["identifiers"]) == (2 if op["type"] == "object" else 1)
        assert not [k for k in op if k.startswith("_")], "the bridge's own notes never go on the wire"
        for relationship in op.get("cio_relationships", []):
            assert len(relationship["identifiers"]) == 1


def test_the_seed_mistake_would_be_caught(track_v2_validator) -> None:
    """The published example's `action: "payment_completed"` fails the same check."""
    bad = {"type": "person", "identifiers": {"id": "cus_1"}, "action": "payment_completed", "attributes": {}}
    with pytest.raises(AssertionError):
        track_v2_validator.validate_entity(bad)
