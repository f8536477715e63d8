"""The Dodo event catalogue: every type Dodo documents, grouped by the payload family it carries.

Dodo adds types every few months, so anything not listed here is acknowledged and ignored,
never rejected (see `is_known`).
"""

from __future__ import annotations

from typing import Final

PAYMENT: Final = "Payment"
SUBSCRIPTION: Final = "Subscription"
REFUND: Final = "Refund"
DISPUTE: Final = "Dispute"
LICENSE_KEY: Final = "LicenseKey"
CUSTOMER_REF: Final = "CustomerRef"  # payloads that name the customer only by `customer_id`
PAYOUT: Final = "Payout"  # business-level: no customer

_BY_FAMILY: Final[dict[str, tuple[str, ...]]] = {
    PAYMENT: ("payment.succeeded", "payment.failed", "payment.processing", "payment.cancelled"),
    REFUND: ("refund.succeeded", "refund.failed"),
    DISPUTE: (
        "dispute.opened",
        "dispute.expired",
        "dispute.accepted",
        "dispute.cancelled",
        "dispute.challenged",
        "dispute.won",
        "dispute.lost",
    ),
    SUBSCRIPTION: (
        "subscription.active",
        "subscription.renewed",
        "subscription.on_hold",
        "subscription.past_due",
        "subscription.paused",
        "subscription.unpaused",
        "subscription.cancelled",
        "subscription.failed",
        "subscription.expired",
        "subscription.plan_changed",
        "subscription.updated",
        "subscription.update_payment_method",
    ),
    LICENSE_KEY: ("license_key.created",),
    PAYOUT: ("payout.created", "payout.on_hold", "payout.in_progress", "payout.failed", "payout.success"),
    CUSTOMER_REF: (
        "credit.added",
        "credit.deducted",
        "credit.expired",
        "credit.rolled_over",
        "credit.rollover_forfeited",
        "credit.overage_charged",
        "credit.overage_reset",
        "credit.manual_adjustment",
        "credit.balance_low",
        "abandoned_checkout.detected",
        "abandoned_checkout.recovered",
        "dunning.started",
        "dunning.recovered",
        "entitlement_grant.created",
        "entitlement_grant.delivered",
        "entitlement_grant.failed",
        "entitlement_grant.revoked",
    ),
}

FAMILY_OF: Final[dict[str, str]] = {t: fam for fam, types in _BY_FAMILY.items() for t in types}
ALL_TYPES: Final[frozenset[str]] = frozenset(FAMILY_OF)
PAYOUT_TYPES: Final[frozenset[str]] = frozenset(_BY_FAMILY[PAYOUT])


def is_known(event_type: str) -> bool:
    return event_type in FAMILY_OF


def family(event_type: str) -> str | None:
    return FAMILY_OF.get(event_type)


def types_of(family_name: str) -> tuple[str, ...]:
    return _BY_FAMILY.get(family_name, ())
