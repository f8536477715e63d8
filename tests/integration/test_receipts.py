"""Which webhooks arrived, per Dodo object (dodo_cio.state.table.Receipt): what `dodo-cio reconcile` will read.

Written in the duplicate check's own transaction: a webhook makes no DynamoDB call more than before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio.state.table import StateTable
from support.samples import sample_paths

pytestmark = pytest.mark.network

SAMPLES = {p.name: json.loads(p.read_bytes()) for p in sample_paths()}


def body(name: str, **data: Any) -> bytes:
    doc = json.loads(json.dumps(SAMPLES[name]))
    doc["data"].update(data)
    return json.dumps(doc).encode()


def calls(bridge: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the DynamoDB calls the ingest container makes from now on."""
    made: list[str] = []
    client = bridge.app.service().state.client
    for name in ("transact_write_items", "get_item", "put_item", "update_item", "batch_get_item"):
        real = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _n=name, _r=real, **k: made.append(_n) or _r(*a, **k))
    return made


def test_each_object_keeps_which_webhooks_arrived_at_no_extra_call(
    bridge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bridge.send(body("dispute.opened.json", dispute_id="dsp_1"), webhook_id="msg_warm")[0] in (200, 202)
    made = calls(bridge, monkeypatch)
    assert bridge.send(body("dispute.opened.json", dispute_id="dsp_2"), webhook_id="msg_d2")[0] in (200, 202)
    assert made.count("transact_write_items") == 1 and len(made) == 2  # the check's transaction + its completion
    assert bridge.send(body("subscription.active.json", subscription_id="sub_r"), webhook_id="msg_s1")[0] == 200
    assert bridge.send(body("subscription.on_hold.json", subscription_id="sub_r"), webhook_id="msg_s2")[0] == 200
    table: StateTable = bridge.app.service().state
    found = table.read_receipts(["dsp_2", "sub_r", "sub_nobody"])
    assert found["dsp_2"]["dispute.opened"]["webhook_id"] == "msg_d2"
    assert {t: r["webhook_id"] for t, r in found["sub_r"].items()} == {
        "subscription.active": "msg_s1",
        "subscription.on_hold": "msg_s2",
    }
    assert "sub_nobody" not in found


def test_an_object_id_dynamodb_cannot_key_gets_no_receipt_rather_than_failing_the_webhook() -> None:
    from dodo_cio.ingest.service import receipts_for
    from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_payload

    def event(payment_id: str) -> DodoEvent:
        envelope = parse_envelope(json.loads(body("payment.succeeded.json", payment_id=payment_id)))
        payload = parse_payload(envelope)
        assert payload is not None
        return DodoEvent("msg_1", envelope, payload)

    (receipt,) = receipts_for(event("pay_ok"), received_at=5)
    assert (receipt.object_id, receipt.event_type, receipt.received_at) == ("pay_ok", "payment.succeeded", 5)
    assert receipts_for(event("pay_" + "x" * 2100), received_at=5) == []  # over DynamoDB's 2,048-byte key
