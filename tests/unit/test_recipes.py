"""The README's rewritten seed examples do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import recipes
from dodo_cio.mapping.mapper import MappingConfig, map_event
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "dodo"


def _event(name: str) -> DodoEvent:
    envelope = parse_envelope(parse_json((SAMPLES / name).read_bytes()))
    payload = parse_payload(envelope)
    assert payload is not None
    return DodoEvent("msg_recipe", envelope, payload)


def test_payment_events_are_renamed_and_keep_numeric_amounts() -> None:
    config = recipes.track_payment_events(MappingConfig())
    ops = map_event(_event("payment.succeeded.json"), config)
    event = ops[-1]
    assert (event["action"], event["name"]) == ("event", "payment_completed")
    amount = event["attributes"]["total_amount"]
    assert amount == 49 and isinstance(amount, int | float) and not isinstance(amount, bool)  # a number, not text
    assert map_event(_event("payment.failed.json"), config)[-1]["name"] == "payment_failed"


def test_subscription_lifecycle_names() -> None:
    config = recipes.track_subscription_lifecycle(MappingConfig())
    names = {
        sample: map_event(_event(sample), config)[-1]["name"]
        for sample in ("subscription.active.json", "subscription.cancelled.json", "subscription.on_hold.json")
    }
    assert names == {
        "subscription.active.json": "subscription_started",
        "subscription.cancelled.json": "subscription_cancelled",
        "subscription.on_hold.json": "subscription.on_hold",
    }


def test_customer_attributes_add_last_payment_to_the_profile() -> None:
    config = recipes.track_customer_attributes(MappingConfig())
    event = _event("payment.succeeded.json")
    identify = map_event(event, config)[0]
    assert identify["action"] == "identify"
    assert identify["attributes"]["last_payment_at"] == event.envelope.timestamp
    assert identify["attributes"]["last_payment_amount"] == 49.0
    assert identify["attributes"]["last_payment_currency"] == "USD"
    # other types untouched
    refund_ops = map_event(_event("refund.succeeded.json"), config)
    assert "last_payment_at" not in json.dumps(refund_ops)
