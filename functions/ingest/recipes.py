"""Worked customisations: Dodo's three published Customer.io examples, rewritten correctly.

Each function takes the default mapping and returns a changed one; use it from `customize.py`:

    from recipes import track_payment_events
    def build_mapping(defaults): return track_payment_events(defaults)

What they fix compared with the published JavaScript: a real `action: "event"` with a `name`
(never `action: "payment_completed"`), amounts in major units by currency exponent as numbers,
Unix-second timestamps, Dodo's event time as the event time, and a dedup id per webhook.
"""

from __future__ import annotations

from typing import Any

from dodo_cio.mapping.mapper import MappingConfig, Op
from dodo_cio.receiving.models import DodoEvent, Payment


def track_payment_events(defaults: MappingConfig) -> MappingConfig:
    """Example 1, "track payment events": payment_completed / payment_failed events with the amount."""
    return defaults.with_changes(
        event_names={
            **defaults.event_names,
            "payment.succeeded": "payment_completed",
            "payment.failed": "payment_failed",
        },
    )


def track_subscription_lifecycle(defaults: MappingConfig) -> MappingConfig:
    """Example 2, "track subscription lifecycle": every state change, with the seed's names where it had them.

    The default mapping already keeps `subscription_status`, `subscription_next_billing_date` and the
    rest on the profile; this only renames the events the seed named.
    """
    return defaults.with_changes(
        event_names={
            **defaults.event_names,
            "subscription.active": "subscription_started",
            "subscription.cancelled": "subscription_cancelled",
            "subscription.renewed": "subscription_renewed",
        },
    )


def _last_payment(event: DodoEvent, ops: list[Op]) -> list[Op]:
    payload = event.payload
    if event.type != "payment.succeeded" or not isinstance(payload, Payment):
        return ops
    event_op = next(op for op in ops if op["action"] == "event")
    paid: dict[str, Any] = {
        "last_payment_at": event.envelope.timestamp,
        "last_payment_amount": event_op["attributes"].get("total_amount"),
        "last_payment_currency": event_op["attributes"].get("total_amount_currency"),
    }
    for op in ops:
        if op["action"] == "identify":
            op["attributes"] = {**op["attributes"], **{k: v for k, v in paid.items() if v is not None}}
    return ops


def track_customer_attributes(defaults: MappingConfig) -> MappingConfig:
    """Example 3, "track customer attributes": profile fields, plus the last successful payment.

    A running `total_spent` needs state the webhook does not carry (each payment is reported on its
    own), so it is not faked here; build it in Customer.io from the `payment.succeeded` events.
    """
    return defaults.with_changes(transforms={**defaults.transforms, "payment.succeeded": _last_payment})
