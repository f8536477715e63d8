"""Generate the synthesised webhook bodies in events/dodo/: one per mapped type the research samples lack.

The ten research samples in events/dodo/ (RESEARCH_SAMPLES) are hand-made and never written here. Every
other body is built from them deterministically, so a re-run changes nothing unless a research sample
or this file changed, and `--check` can tell whether the stored bodies drifted:

    .venv/bin/python -m dodo_cio_testdata.sample_bodies [--check]
    .venv/bin/python -m dodo_cio_testdata.make_events            # then re-sign events/apigw/

* payment, refund, dispute and subscription bodies are copies of the family's research sample with the
  type, status fields and the fields that go with the event changed (`_derived` refuses a field the
  sample does not have, so a typo cannot add one);
* credit, abandoned-checkout, dunning and entitlement-grant bodies have no research sample: they are
  written from Dodo's published payload models (dodopayments SDK 1.123.0), values invented.

All values are invented (example.* emails, made-up ids). Customers and ids are shared with the research
samples so the bodies tell a few consistent customer stories; see events/README.md.

`--check` exits 1 when a generated body is missing or differs, or when a type the default mapping handles
has no body at all in events/dodo/.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Final

from dodo_cio import events
from dodo_cio.mapping import MappingConfig

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BODIES_DIR: Final = REPO_ROOT / "events" / "dodo"

# Hand-made from the research set; inputs here, never outputs.
RESEARCH_SAMPLES: Final = frozenset(
    {
        "dispute.opened.json",
        "license_key.created.json",
        "payment.failed.json",
        "payment.succeeded.jpy.json",
        "payment.succeeded.json",
        "refund.succeeded.json",
        "subscription.active.json",
        "subscription.cancelled.json",
        "subscription.on_hold.json",
        "subscription.renewed.json",
    }
)

BUSINESS_ID: Final = "bus_Q7kd2LmRw9XpA3tVz8YcE"

Doc = dict[str, Any]

# A customer no research sample has: Canadian dollars and a non-ASCII name.
CHLOE: Final[Doc] = {
    "customer_id": "cus_7HxNd4QzWr1KbT8mLc3Yv",
    "email": "chloe.tremblay@example.ca",
    "name": "Chloé Tremblay",
    "phone_number": "+14165550142",
    "metadata": {},
}
CHLOE_BILLING: Final[Doc] = {
    "city": "Toronto",
    "country": "CA",
    "state": "Ontario",
    "street": "88 Spadina Ave, Suite 7",
    "zipcode": "M5V 2J4",
}
HARUTO_BILLING: Final[Doc] = {
    "city": "Tokyo",
    "country": "JP",
    "state": "Tokyo",
    "street": "2-11-3 Meguro",
    "zipcode": "153-0063",
}

# Products (the pro plan is the research samples' subscription product).
PRO_PLAN: Final = "pdt_2XcRm8TzWq4KbL7nYd1Vs"
BASIC_PLAN: Final = "pdt_4QdXm7RzKb2WnT9cLy5Vp"
JP_PLAN: Final = "pdt_6HwNq3ZxLm8KbR1tYc4Vs"
ADDON_PACK: Final = "pdt_8KmQx4TzRw1NbV6sLc2Yd"
TEMPLATE_PACK: Final = "pdt_3RbYw6KxQm1TzN8cLd5Vh"

# Subscriptions.
SUB_PRIYA: Final = "sub_6HkWz3RqLb9XmT2vNc5Yd"  # the research samples' subscription
SUB_LUKAS: Final = "sub_3QwLz8NbVk5TrY2mHd7Xc"  # named by the research payment.failed
SUB_CHLOE: Final = "sub_9BxKr4TqWn7LcZ2mYd6Hs"
SUB_HARUTO: Final = "sub_1MzTk5WqRb8XnL3cVd9Ys"

# Credit entitlements.
API_CREDITS: Final = "cent_3VbQx8LmTz1WkR6nYd2Hc"
RENDER_MINUTES: Final = "cent_5KpWr9NcXq2TbL7mYd4Vs"


def _read(bodies: Path, name: str) -> Doc:
    doc: Doc = json.loads((bodies / name).read_text(encoding="utf-8"))
    return doc


def _envelope(event_type: str, timestamp: str, data: Doc) -> Doc:
    return {"business_id": BUSINESS_ID, "type": event_type, "timestamp": timestamp, "data": data}


def _derived(base: Doc, event_type: str, timestamp: str, **changes: Any) -> Doc:
    """The family sample with `changes` applied; only fields the sample has may change."""
    data = copy.deepcopy(base["data"])
    unknown = sorted(set(changes) - set(data))
    if unknown:
        raise KeyError(f"{event_type}: {unknown} not in the family sample")
    data.update(copy.deepcopy(changes))
    return _envelope(event_type, timestamp, data)


# ---------------------------------------------------------------------------------------------------
# payments, refunds, disputes, subscriptions: derived from the research samples


def _payments(paid: Doc) -> dict[str, Doc]:
    maya = paid["data"]
    return {
        # Maya buys an add-on pack; the card is authorised, capture still pending.
        "payment.processing.json": _derived(
            paid,
            "payment.processing",
            "2026-11-02T16:40:21.338517Z",
            payment_id="pay_5RtKw8NcXq2LmB7vYd3Hs",
            status="processing",
            total_amount=2900,
            settlement_amount=2900,
            checkout_session_id="cks_7QnVb2LxWm5RcT9sKd1Hy",
            created_at="2026-11-02T16:40:05.902741Z",
            updated_at="2026-11-02T16:40:21.217006Z",
            product_cart=[{"product_id": ADDON_PACK, "quantity": 1}],
            digital_products_delivered=False,
            invoice_id=None,
            invoice_url=None,
            payment_link="https://checkout.dodopayments.com/session/cks_7QnVb2LxWm5RcT9sKd1Hy",
            metadata={"app_user_id": maya["metadata"]["app_user_id"]},
        ),
        # Chloé opens a checkout for a one-time template pack and never pays: the session expires.
        "payment.cancelled.json": _derived(
            paid,
            "payment.cancelled",
            "2026-09-10T19:32:11.804326Z",
            payment_id="pay_2KvRt7XmQb4WnL9cYd6Zs",
            status="cancelled",
            total_amount=3277,
            currency="CAD",
            tax=377,
            settlement_amount=2395,
            settlement_tax=276,
            payment_method=None,
            payment_method_id=None,
            card_holder_name=None,
            card_issuing_country=None,
            card_last_four=None,
            card_network=None,
            card_type=None,
            card_exp_month=None,
            card_exp_year=None,
            three_ds_flow=None,
            three_ds_status=None,
            three_ds_version=None,
            checkout_session_id="cks_4WdLq8RzTn1XbK6vMc3Yp",
            created_at="2026-09-10T19:02:11.563090Z",
            updated_at="2026-09-10T19:32:11.711845Z",
            customer=CHLOE,
            billing=CHLOE_BILLING,
            product_cart=[{"product_id": TEMPLATE_PACK, "quantity": 1}],
            digital_products_delivered=False,
            invoice_id=None,
            invoice_url=None,
            payment_link="https://checkout.dodopayments.com/session/cks_4WdLq8RzTn1XbK6vMc3Yp",
            metadata={},
        ),
    }


def _refunds(refunded: Doc, jpy: Doc) -> dict[str, Doc]:
    haruto = jpy["data"]
    return {
        # Haruto asks for a full refund of his yen purchase; the card network rejects it.
        "refund.failed.json": _derived(
            refunded,
            "refund.failed",
            "2026-10-18T05:13:02.640288Z",
            refund_id="ref_2WcNz6KtQb9RmX4sLd8Vy",
            payment_id=haruto["payment_id"],
            status="failed",
            amount=haruto["total_amount"],
            currency=haruto["currency"],
            is_partial=False,
            reason="Bought the same item twice",
            created_at="2026-10-18T05:12:40.207719Z",
            customer=haruto["customer"],
        ),
    }


def _disputes(opened: Doc, jpy: Doc, renewed: Doc, active: Doc) -> dict[str, Doc]:
    priya = active["data"]["customer"]
    haruto = jpy["data"]
    return {
        # Maya's dispute (the research dispute.opened): challenged, then won.
        "dispute.challenged.json": _derived(
            opened,
            "dispute.challenged",
            "2026-10-30T15:47:19.204518Z",
            dispute_status="dispute_challenged",
            remarks="Delivery confirmation and download logs submitted as evidence",
        ),
        "dispute.won.json": _derived(
            opened,
            "dispute.won",
            "2026-11-24T10:05:33.118274Z",
            dispute_status="dispute_won",
            is_resolved_by_rdr=False,
            remarks="The issuer ruled in favour of the merchant",
        ),
        # Priya queries her first renewal as a duplicate, then withdraws the inquiry.
        "dispute.cancelled.json": _derived(
            opened,
            "dispute.cancelled",
            "2026-10-09T13:02:44.570931Z",
            dispute_id="dp_7BxQm3WtLz9KcN2vRd5Yh",
            payment_id=renewed["data"]["payment_id"],
            amount="1500",
            dispute_stage="pre_dispute",
            dispute_status="dispute_cancelled",
            created_at="2026-10-06T09:30:12.331Z",
            remarks="The cardholder withdrew the inquiry",
            reason="duplicate",
            customer=priya,
        ),
        # Haruto's refund failed, so he disputes the charge; the merchant accepts the dispute.
        "dispute.accepted.json": _derived(
            opened,
            "dispute.accepted",
            "2026-10-22T01:44:10.862405Z",
            dispute_id="dp_2HtWq8NzRk5XbL1mVc7Ys",
            payment_id=haruto["payment_id"],
            amount=str(haruto["total_amount"]),
            currency=haruto["currency"],
            dispute_status="dispute_accepted",
            created_at="2026-10-20T03:18:05.447Z",
            reason="duplicate",
            customer=haruto["customer"],
        ),
        # An inquiry on Priya's first payment that nobody answered in time.
        "dispute.expired.json": _derived(
            opened,
            "dispute.expired",
            "2026-09-25T09:00:04.219683Z",
            dispute_id="dp_9LcRz4TbWq1NmK6xYd3Vs",
            payment_id="pay_7NqWb2XzKc5TmR8vLd1Ys",
            amount="1500",
            dispute_stage="pre_dispute",
            dispute_status="dispute_expired",
            created_at="2026-09-15T08:59:51.902Z",
            remarks="No response before the response deadline",
            reason="general",
            customer=priya,
        ),
        # Chloé's first (basic plan) payment, lost at pre-arbitration.
        "dispute.lost.json": _derived(
            opened,
            "dispute.lost",
            "2026-11-16T21:27:48.035192Z",
            dispute_id="dp_5MwKx1QzTr8LbN3cVd9Hs",
            payment_id="pay_6LwQz1TbXk9RmN4cVd2Hs",
            amount="1017",
            currency="CAD",
            dispute_stage="pre_arbitration",
            dispute_status="dispute_lost",
            created_at="2026-10-02T14:11:26.660Z",
            is_resolved_by_rdr=False,
            remarks="The card network upheld the cardholder's claim",
            reason="product_unacceptable",
            customer=CHLOE,
        ),
    }


def _chloe_subscription() -> dict[str, Any]:
    """Chloé's subscription as the pro plan after her upgrade: the fields every event of hers shares."""
    return {
        "subscription_id": SUB_CHLOE,
        "product_id": PRO_PLAN,
        "currency": "CAD",
        "recurring_pre_tax_amount": 1900,
        "payment_method_id": "pm_9RcTw2XbLq6NzK4mYd8Vh",
        "created_at": "2026-09-12T20:15:42.118305Z",
        "previous_billing_date": "2026-09-12T20:15:42.118305Z",
        "next_billing_date": "2026-10-12T20:15:42.118305Z",
        "expires_at": "2027-09-12T20:15:42.118305Z",
        "customer": CHLOE,
        "billing": CHLOE_BILLING,
        "metadata": {"app_user_id": "usr_07120", "plan": "pro_monthly"},
    }


def _subscriptions(active: Doc, failed: Doc, jpy: Doc) -> dict[str, Doc]:
    lukas = failed["data"]
    haruto = jpy["data"]
    chloe = _chloe_subscription()
    new_card = "pm_6TzLq9WbXm2KcR4nYd7Vs"
    priya_october = {
        "previous_billing_date": "2026-10-03T14:06:18.532741Z",
        "next_billing_date": "2026-11-03T14:06:18.532741Z",
    }
    return {
        # Priya replaces her card between renewals; the same change also fires subscription.updated.
        "subscription.update_payment_method.json": _derived(
            active,
            "subscription.update_payment_method",
            "2026-10-21T19:44:08.310552Z",
            payment_method_id=new_card,
            **priya_october,
        ),
        "subscription.updated.json": _derived(
            active,
            "subscription.updated",
            "2026-10-21T19:44:08.902114Z",
            payment_method_id=new_card,
            **priya_october,
        ),
        # Lukas's first charge failed (research payment.failed), so his new subscription fails.
        "subscription.failed.json": _derived(
            active,
            "subscription.failed",
            "2026-10-15T17:03:12.611208Z",
            subscription_id=SUB_LUKAS,
            status="failed",
            currency=lukas["currency"],
            recurring_pre_tax_amount=lukas["total_amount"],
            tax_inclusive=True,
            has_payment_method=False,
            payment_method_id=None,
            created_at=lukas["created_at"],
            previous_billing_date=lukas["created_at"],
            next_billing_date="2026-11-15T17:02:40.310962Z",
            expires_at="2027-10-15T17:02:40.310962Z",
            customer=lukas["customer"],
            billing=lukas["billing"],
            metadata={"app_user_id": "usr_05832", "plan": "pro_monthly"},
        ),
        # Chloé: upgrade, pause, resume, then a failed renewal (dunning.* follow).
        "subscription.plan_changed.json": _derived(
            active, "subscription.plan_changed", "2026-09-18T11:27:03.440921Z", **chloe
        ),
        "subscription.paused.json": _derived(
            active,
            "subscription.paused",
            "2026-09-25T08:02:51.774310Z",
            status="paused",
            paused_at="2026-09-25T08:02:51.701553Z",
            **chloe,
        ),
        "subscription.unpaused.json": _derived(active, "subscription.unpaused", "2026-10-09T17:36:20.051287Z", **chloe),
        "subscription.past_due.json": _derived(
            active,
            "subscription.past_due",
            "2026-10-12T20:16:30.887412Z",
            status="past_due",
            past_due_ends_at="2026-10-19T20:15:42.118305Z",
            **chloe,
        ),
        # Haruto's one-year yen plan reaches the end of its term.
        "subscription.expired.json": _derived(
            active,
            "subscription.expired",
            "2026-10-20T04:11:40.118733Z",
            subscription_id=SUB_HARUTO,
            status="expired",
            product_id=JP_PLAN,
            currency="JPY",
            recurring_pre_tax_amount=980,
            tax_inclusive=True,
            payment_method_id="pm_8ZrTq1WmKc6VbN3sYd5Hx",
            created_at="2025-10-20T04:11:38.502177Z",
            previous_billing_date="2026-09-20T04:11:38.502177Z",
            next_billing_date="2026-10-20T04:11:38.502177Z",
            expires_at="2026-10-20T04:11:38.502177Z",
            customer=haruto["customer"],
            billing=HARUTO_BILLING,
            metadata={"app_user_id": "usr_06204", "plan": "jp_monthly"},
        ),
    }


# ---------------------------------------------------------------------------------------------------
# families without a research sample: written from Dodo's payload models


def _ledger(
    event_type: str,
    timestamp: str,
    *,
    entry_id: str,
    customer_id: str,
    entitlement: str,
    transaction_type: str,
    amount: int,
    is_credit: bool,
    balance: tuple[int, int],
    overage: tuple[int, int] = (0, 0),
    grant_id: str | None,
    reference: tuple[str, str] | None,
    description: str,
) -> Doc:
    """A CreditLedgerEntry; amounts and balances are decimal strings, as Dodo sends them."""
    return _envelope(
        event_type,
        timestamp,
        {
            "payload_type": "CreditLedgerEntry",
            "id": entry_id,
            "business_id": BUSINESS_ID,
            "brand_id": BUSINESS_ID,
            "customer_id": customer_id,
            "credit_entitlement_id": entitlement,
            "grant_id": grant_id,
            "transaction_type": transaction_type,
            "is_credit": is_credit,
            "amount": str(amount),
            "balance_before": str(balance[0]),
            "balance_after": str(balance[1]),
            "overage_before": str(overage[0]),
            "overage_after": str(overage[1]),
            "reference_type": reference[0] if reference else None,
            "reference_id": reference[1] if reference else None,
            "description": description,
            "created_at": timestamp,
            "metadata": {},
        },
    )


def _credits(active: Doc) -> dict[str, Doc]:
    priya = active["data"]["customer"]["customer_id"]
    chloe = CHLOE["customer_id"]
    sep_grant, oct_grant = "cgr_1TbWq7XzLm4KcR9nVd2Ys", "cgr_8NcRz2WqTb5XmL1kYd6Vh"
    render_grant = "cgr_4YdKx9LmQz2TbW7nRc1Vs"
    return {
        # Priya: 1,000 API credits a month with her pro plan.
        "credit.added.json": _ledger(
            "credit.added",
            "2026-09-03T14:06:42.530118Z",
            entry_id="cle_2RbXq6TzWm9KcL3nVd8Ys",
            customer_id=priya,
            entitlement=API_CREDITS,
            transaction_type="credit_added",
            amount=1000,
            is_credit=True,
            balance=(0, 1000),
            grant_id=sep_grant,
            reference=("subscription", SUB_PRIYA),
            description="Pro plan: 1,000 API credits for the billing period",
        ),
        "credit.deducted.json": _ledger(
            "credit.deducted",
            "2026-09-24T11:05:19.648390Z",
            entry_id="cle_7LmWz3QbXt1RcN8vKd4Hs",
            customer_id=priya,
            entitlement=API_CREDITS,
            transaction_type="credit_deducted",
            amount=380,
            is_credit=False,
            balance=(560, 180),
            grant_id=sep_grant,
            reference=("meter", "mtr_5QwNb8XzRk2TmL6cYd1Vp"),
            description="Usage: 380 API calls",
        ),
        "credit.manual_adjustment.json": _ledger(
            "credit.manual_adjustment",
            "2026-09-25T09:30:00.412006Z",
            entry_id="cle_4HnTq8WbLz6XcR1mVd9Ks",
            customer_id=priya,
            entitlement=API_CREDITS,
            transaction_type="manual_adjustment",
            amount=150,
            is_credit=True,
            balance=(180, 330),
            grant_id=sep_grant,
            reference=None,
            description="Goodwill credit after the 24 Sep API outage",
        ),
        "credit.rolled_over.json": _ledger(
            "credit.rolled_over",
            "2026-10-03T14:07:03.104257Z",
            entry_id="cle_9ZcKw1RtXq5NbL8mYd3Hv",
            customer_id=priya,
            entitlement=API_CREDITS,
            transaction_type="credit_rolled_over",
            amount=330,
            is_credit=True,
            balance=(1000, 1330),
            grant_id=oct_grant,
            reference=("credit_grant", sep_grant),
            description="330 unused credits carried into the new billing period",
        ),
        "credit.rollover_forfeited.json": _ledger(
            "credit.rollover_forfeited",
            "2026-11-03T14:06:19.802771Z",
            entry_id="cle_3XbRq9LzWt2KmN7cVd5Ys",
            customer_id=priya,
            entitlement=API_CREDITS,
            transaction_type="rollover_forfeited",
            amount=210,
            is_credit=False,
            balance=(410, 200),
            grant_id=oct_grant,
            reference=("credit_grant", oct_grant),
            description="Rolled-over credits cannot roll over again: 210 credits forfeited",
        ),
        # Chloé: 300 render minutes a month; they expire, she keeps rendering while past due.
        "credit.expired.json": _ledger(
            "credit.expired",
            "2026-10-12T20:15:43.275519Z",
            entry_id="cle_6KwTz2XbQm8RcL4nYd1Vs",
            customer_id=chloe,
            entitlement=RENDER_MINUTES,
            transaction_type="credit_expired",
            amount=85,
            is_credit=False,
            balance=(85, 0),
            grant_id=render_grant,
            reference=("credit_grant", render_grant),
            description="85 unused render minutes expired at the end of the billing period",
        ),
        "credit.overage_charged.json": _ledger(
            "credit.overage_charged",
            "2026-10-13T15:22:07.918364Z",
            entry_id="cle_8RnXq4WzTb1LcK6mVd2Hy",
            customer_id=chloe,
            entitlement=RENDER_MINUTES,
            transaction_type="overage_charged",
            amount=40,
            is_credit=False,
            balance=(0, 0),
            overage=(0, 40),
            grant_id=None,
            reference=("meter", "mtr_2TbLq7XwRz9NcK4mYd8Vs"),
            description="40 render minutes used beyond a zero balance",
        ),
        "credit.overage_reset.json": _ledger(
            "credit.overage_reset",
            "2026-10-14T08:52:18.006241Z",
            entry_id="cle_1VcWz5QbXk3RmT9nLd7Ys",
            customer_id=chloe,
            entitlement=RENDER_MINUTES,
            transaction_type="overage_reset",
            amount=40,
            is_credit=True,
            balance=(0, 0),
            overage=(40, 0),
            grant_id=None,
            reference=("subscription", SUB_CHLOE),
            description="Overage settled with the renewal payment",
        ),
        "credit.balance_low.json": _envelope(
            "credit.balance_low",
            "2026-09-24T11:05:20.120853Z",
            {
                "payload_type": "CreditBalanceLow",
                "customer_id": priya,
                "brand_id": BUSINESS_ID,
                "subscription_id": SUB_PRIYA,
                "credit_entitlement_id": API_CREDITS,
                "credit_entitlement_name": "API Credits",
                "available_balance": "180",
                "subscription_credits_amount": "1000",
                "threshold_percent": 20,
                "threshold_amount": "200",
            },
        ),
    }


def _recovery(failed: Doc) -> dict[str, Doc]:
    lukas = failed["data"]
    chloe = CHLOE["customer_id"]
    abandoned = {
        "customer_id": lukas["customer"]["customer_id"],
        "brand_id": BUSINESS_ID,
        "payment_id": lukas["payment_id"],
        "abandonment_reason": "payment_failed",
        "abandoned_at": "2026-10-15T18:03:14.501236Z",
    }
    dunning = {
        "customer_id": chloe,
        "brand_id": BUSINESS_ID,
        "subscription_id": SUB_CHLOE,
        "trigger_state": "past_due",
        "created_at": "2026-10-12T20:16:31.502764Z",
    }
    return {
        # Lukas's failed first payment is followed up, and he pays through the recovery link.
        "abandoned_checkout.detected.json": _envelope(
            "abandoned_checkout.detected",
            "2026-10-15T18:03:14.552917Z",
            {**abandoned, "status": "abandoned", "recovered_payment_id": None},
        ),
        "abandoned_checkout.recovered.json": _envelope(
            "abandoned_checkout.recovered",
            "2026-10-16T07:41:29.338104Z",
            {**abandoned, "status": "recovered", "recovered_payment_id": "pay_8JqRm3WzTc6NbK1xVd4Ls"},
        ),
        # Chloé's renewal failed (subscription.past_due); a retry two days later succeeds.
        "dunning.started.json": _envelope(
            "dunning.started",
            "2026-10-12T20:16:31.557190Z",
            {**dunning, "status": "recovering", "payment_id": None},
        ),
        "dunning.recovered.json": _envelope(
            "dunning.recovered",
            "2026-10-14T08:52:17.331478Z",
            {**dunning, "status": "recovered", "payment_id": "pay_4ZxTq6LmWb1KcR8nVd3Hs"},
        ),
    }


def _grant(timestamp: str, event_type: str, **fields: Any) -> Doc:
    data: Doc = {
        "id": "",
        "business_id": BUSINESS_ID,
        "brand_id": BUSINESS_ID,
        "customer_id": "",
        "entitlement_id": "",
        "integration_type": "",
        "status": "",
        "payment_id": None,
        "subscription_id": None,
        "created_at": "",
        "updated_at": "",
        "delivered_at": None,
        "revoked_at": None,
        "revocation_reason": None,
        "error_code": None,
        "error_message": None,
        "oauth_url": None,
        "oauth_expires_at": None,
        "digital_product_delivery": None,
        "feature": None,
        "license_key": None,
        "metadata": {},
    }
    unknown = sorted(set(fields) - set(data))
    if unknown:
        raise KeyError(f"{event_type}: {unknown} not an entitlement grant field")
    data.update(fields)
    missing = sorted(k for k, v in data.items() if v == "")
    if missing:
        raise KeyError(f"{event_type}: {missing} must be set")
    return _envelope(event_type, timestamp, data)


def _entitlement_grants(paid: Doc, active: Doc) -> dict[str, Doc]:
    maya = paid["data"]
    maya_discord = {
        "id": "egr_3NbWq8XzTk1RmL5cVd7Ys",
        "customer_id": maya["customer"]["customer_id"],
        "entitlement_id": "ent_5PxWq2LmRt8KbN3cYd7Vs",
        "integration_type": "discord",
        "payment_id": maya["payment_id"],
        "created_at": "2026-10-14T09:21:49.318025Z",
    }
    return {
        # Maya's purchase grants a Discord role; she connects her account a few minutes later.
        "entitlement_grant.created.json": _grant(
            "2026-10-14T09:21:49.377164Z",
            "entitlement_grant.created",
            **maya_discord,
            status="Pending",
            updated_at="2026-10-14T09:21:49.318025Z",
        ),
        "entitlement_grant.delivered.json": _grant(
            "2026-10-14T09:34:02.815530Z",
            "entitlement_grant.delivered",
            **maya_discord,
            status="Delivered",
            updated_at="2026-10-14T09:34:02.760912Z",
            delivered_at="2026-10-14T09:34:02.760912Z",
        ),
        # Chloé's upgrade grants access to a private GitHub repository; the username does not exist.
        "entitlement_grant.failed.json": _grant(
            "2026-09-18T11:41:55.229871Z",
            "entitlement_grant.failed",
            id="egr_8KcTz4WbQx2LnR6mYd1Vs",
            customer_id=CHLOE["customer_id"],
            entitlement_id="ent_2VdRk7QzWm9XbT4cLn6Hs",
            integration_type="github",
            subscription_id=SUB_CHLOE,
            status="Failed",
            created_at="2026-09-18T11:27:04.016532Z",
            updated_at="2026-09-18T11:41:55.170448Z",
            error_code="github_user_not_found",
            error_message="The GitHub username given at checkout does not exist.",
        ),
        # Priya's Discord role goes when her subscription is cancelled.
        "entitlement_grant.revoked.json": _grant(
            "2026-11-10T08:15:37.094417Z",
            "entitlement_grant.revoked",
            id="egr_6RwLq1XzTb8KmN3cVd5Ys",
            customer_id=active["data"]["customer"]["customer_id"],
            entitlement_id="ent_5PxWq2LmRt8KbN3cYd7Vs",
            integration_type="discord",
            subscription_id=SUB_PRIYA,
            status="Revoked",
            created_at="2026-09-03T14:06:43.201776Z",
            updated_at="2026-11-10T08:15:37.031650Z",
            delivered_at="2026-09-03T14:12:10.548203Z",
            revoked_at="2026-11-10T08:15:37.031650Z",
            revocation_reason="subscription_cancelled",
        ),
    }


# ---------------------------------------------------------------------------------------------------


def build(bodies: Path = BODIES_DIR) -> dict[str, Doc]:
    """File name -> body, for every generated body (never a research sample)."""
    paid = _read(bodies, "payment.succeeded.json")
    jpy = _read(bodies, "payment.succeeded.jpy.json")
    failed = _read(bodies, "payment.failed.json")
    refunded = _read(bodies, "refund.succeeded.json")
    opened = _read(bodies, "dispute.opened.json")
    active = _read(bodies, "subscription.active.json")
    renewed = _read(bodies, "subscription.renewed.json")
    out: dict[str, Doc] = {
        **_payments(paid),
        **_refunds(refunded, jpy),
        **_disputes(opened, jpy, renewed, active),
        **_subscriptions(active, failed, jpy),
        **_credits(active),
        **_recovery(failed),
        **_entitlement_grants(paid, active),
    }
    clash = sorted(set(out) & RESEARCH_SAMPLES)
    if clash:
        raise ValueError(f"would overwrite research samples: {clash}")
    for name, doc in out.items():
        if name != f"{doc['type']}.json":
            raise ValueError(f"{name} holds a {doc['type']} body")
    return out


def render(doc: Doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def mapped_types() -> frozenset[str]:
    """The types the default mapping sends to Customer.io (everything known except the ignored ones)."""
    return events.ALL_TYPES - MappingConfig().ignored_types


def uncovered(bodies: Path) -> list[str]:
    """Mapped types without any body in `bodies`."""
    present = set()
    for path in bodies.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("type"), str):
            present.add(doc["type"])
    return sorted(mapped_types() - present)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dodo_cio_testdata.sample_bodies", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated body is missing or stale")
    parser.add_argument("--bodies", type=Path, default=BODIES_DIR)
    args = parser.parse_args(argv)

    missing_inputs = sorted(n for n in RESEARCH_SAMPLES if not (args.bodies / n).is_file())
    if missing_inputs:
        print(f"research samples missing from {args.bodies}: {', '.join(missing_inputs)}", file=sys.stderr)
        return 2
    expected = {args.bodies / name: render(doc) for name, doc in build(args.bodies).items()}
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        gaps = uncovered(args.bodies)
        for event_type in gaps:
            print(f"no body: {event_type}", file=sys.stderr)
        return 1 if stale or gaps else 0
    for path in stale:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
