"""The default Dodo -> Track v2 mapping over the sample bodies, and every customisation knob."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, MappingConfigError, Op, map_event
from dodo_cio.platform import secret_names
from dodo_cio.platform.ulid import ulid_time_ms
from dodo_cio.receiving import events
from dodo_cio.receiving.models import DodoEvent
from support.mapped_events import (
    WEBHOOK_ID,
    customer_ref,
    event_of,
    json_len,
    money_is_complete,
    no_bare_amount,
    ops_of,
    unix,
)
from support.samples import SAMPLES, load_sample

SAMPLE_NAMES = sorted(p.name for p in SAMPLES.glob("*.json"))
OTHER_WEBHOOK_ID = "msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC1"

ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")

# samples whose customer is a full object (identify expected), read from the bodies themselves
WITH_CUSTOMER = {
    path.name
    for path in SAMPLES.glob("*.json")
    if isinstance(json.loads(path.read_text()).get("data", {}).get("customer"), dict)
}


def amount(attrs: dict[str, Any], name: str) -> tuple[Any, ...]:
    """The four attributes one amount becomes: major units, minor units, currency, display string."""
    return tuple(attrs[name + suffix] for suffix in ("", "_minor", "_currency", "_display"))


def the_event(ops: list[Op]) -> Op:
    found = [op for op in ops if op["action"] == "event"]
    assert len(found) == 1
    return found[0]


def customer_id_of(doc: dict[str, Any]) -> str:
    data = doc["data"]
    if isinstance(data.get("customer"), dict):
        return str(data["customer"]["customer_id"])
    return str(data["customer_id"])


# -------------------------------------------------------------------------------------------------
# shape of the ops, every sample


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_maps_to_well_formed_ops(name: str) -> None:
    doc = load_sample(name)
    ops = ops_of(doc)
    is_subscription = doc["type"].startswith("subscription.")
    expected_states = (
        (["customer", "subscription"] if is_subscription else ["customer"]) if name in WITH_CUSTOMER else []
    )
    if doc["type"] == "abandoned_checkout.detected":  # an identify gives the person an email (test_abandoned_checkout)
        expected_states = ["contact"]
    assert [op["action"] for op in ops] == ["identify"] * len(expected_states) + ["event"]
    assert [op.get("_state") for op in ops[:-1]] == expected_states
    assert "_state" not in ops[-1]
    ts = unix(doc["timestamp"])
    for op in ops:
        assert op["type"] == "person"
        assert op["identifiers"] == {"id": customer_id_of(doc)}
        assert op["_customer_id"] == customer_id_of(doc)
        assert op["timestamp"] == ts
        assert type(op["timestamp"]) is int
        assert isinstance(op["attributes"], dict)
    event = ops[-1]
    assert event["name"] == doc["type"]
    assert ULID_RE.fullmatch(event["id"])
    assert ulid_time_ms(event["id"]) == unix(doc["timestamp"], timedelta(milliseconds=1))
    if name in WITH_CUSTOMER:
        identify = ops[0]
        assert "name" not in identify
        assert "id" not in identify
        assert identify["attributes"]["dodo_customer_id"] == customer_id_of(doc)
    json.dumps(ops, allow_nan=False)  # plain JSON, nothing exotic

    # the event id is stable per webhook id: same event time, different entropy for another one
    assert the_event(ops_of(copy.deepcopy(doc)))["id"] == event["id"]
    other = the_event(ops_of(doc, webhook_id=OTHER_WEBHOOK_ID))["id"]
    assert other != event["id"]
    assert ulid_time_ms(other) == ulid_time_ms(event["id"])

    # dates are integer Unix seconds; None: Dodo cleared the date (a removal)
    dates = [(k, v) for op in ops for k, v in op["attributes"].items() if _date_like(k) and v is not None]
    for key, value in dates:
        assert type(value) is int, (key, value)
        assert 1_700_000_000 < value < 2_100_000_000, (key, value)  # card_expires_at may lie years ahead
    assert len(dates) >= (0 if name == "credit.balance_low.json" else 1)  # Dodo's low balance carries no date

    # no raw card or holder data: card expiry is forwarded on purpose, only as numbers
    for op in ops:
        card_keys = {k for k in op["attributes"] if k.startswith("card_exp")}
        assert card_keys <= {"card_exp_month", "card_exp_year", "card_expires_at"}
        for key in card_keys:
            assert type(op["attributes"][key]) is int
    for needle in ("card_holder_name", "Congress Ave", "Torstrasse", "Meguro", "three_ds"):
        assert needle not in json.dumps(ops)

    # compact, amounts named and complete, no secret names; profile values within Customer.io's 1000 bytes
    out = event["attributes"]
    assert None not in out.values()
    no_bare_amount(out)
    money_is_complete(out)
    assert not any(secret_names.is_secret_key(k) for k in out)
    for op in ops[:-1]:
        assert all(json_len(v) <= 1000 for v in op["attributes"].values()), name
    if name.startswith("credit."):  # Dodo's decimal strings go out as numbers
        numbers = [k for k in ("credit_amount", "balance_after", "available_balance") if k in out]
        assert numbers and all(isinstance(out[k], int | float) for k in numbers), doc["type"]


def _date_like(key: str) -> bool:
    return key.endswith(("_at", "_date", "_start"))


# -------------------------------------------------------------------------------------------------
# payments and money


def test_payment_succeeded_full_mapping() -> None:
    doc = load_sample("payment.succeeded.json")
    _, event = ops_of(doc)  # the customer identify: test_subscription_active_identify, test_contact_fields
    assert event["attributes"] == {
        "payment_id": "pay_8fTq2WbXn4LcRk7YvP1sD",
        "status": "succeeded",
        "total_amount": 49,
        "total_amount_minor": 4900,
        "total_amount_currency": "USD",
        "total_amount_display": "$49.00",
        "tax_amount": 0,
        "tax_amount_minor": 0,
        "tax_amount_currency": "USD",
        "tax_amount_display": "$0.00",
        "settlement_amount": 49,
        "settlement_amount_minor": 4900,
        "settlement_amount_currency": "USD",
        "settlement_amount_display": "$49.00",
        "payment_method": "card",
        "card_last_four": "4242",
        "card_network": "visa",
        "card_type": "credit",
        "card_issuing_country": "US",
        "card_exp_month": 8,
        "card_exp_year": 2029,
        "card_expires_at": unix("2029-09-01T00:00:00Z"),
        "product_ids": ["pdt_7LpQz3VbKx9MwR2sYd4Tn"],
        "product_cart": [{"product_id": "pdt_7LpQz3VbKx9MwR2sYd4Tn", "quantity": 1}],
        "product_quantity": 1,
        "is_multi_subscription": False,
        "retry_attempt": 0,
        "is_update_payment_method": False,
        "invoice_id": "inv_4KdPz7WnRb2YqT9sLm1Xc",
        "invoice_url": "https://live.dodopayments.com/invoices/payments/pay_8fTq2WbXn4LcRk7YvP1sD",
        "payment_link": "https://checkout.dodopayments.com/session/cks_5GhWm1PzQ8sVd3LxN7oTb",
        "billing_country": "US",
        "digital_products_delivered": True,
        "created_at": unix("2026-10-14T09:21:31.884120Z"),
        "metadata": {"app_user_id": "usr_01927", "utm_source": "newsletter"},
    }
    assert type(event["attributes"]["total_amount"]) is int  # a whole amount goes out as an integer
    assert type(event["attributes"]["total_amount_minor"]) is int


def test_payment_failed_mapping() -> None:
    _, event = ops_of(load_sample("payment.failed.json"))
    attrs = event["attributes"]
    assert amount(attrs, "total_amount") == (19, 1900, "EUR", "€19.00")
    assert (attrs["tax_amount"], attrs["tax_amount_currency"]) == (3.61, "EUR")
    assert (attrs["settlement_amount"], attrs["settlement_amount_currency"]) == (20.54, "USD")
    assert attrs["error_code"] == "INSUFFICIENT_FUNDS"
    assert attrs["error_message"].startswith("The card has insufficient funds")
    assert attrs["charge_type"] == "new"
    assert attrs["subscription_id"] == "sub_3QwLz8NbVk5TrY2mHd7Xc"
    assert attrs["card_type"] == "debit"
    assert "product_ids" not in attrs  # product_cart is null
    assert "metadata" not in attrs  # empty metadata is not sent
    assert "invoice_id" not in attrs  # null values are dropped


def test_a_merchants_exponent_override_reaches_the_amounts() -> None:
    """Stripe treats MGA as zero-decimal, ISO as two. Defaults: test_money; upper-cased codes: test_attributes."""
    doc = load_sample("payment.succeeded.json")
    doc["data"].update(currency="MGA", total_amount=123456)
    attrs = the_event(ops_of(doc, MappingConfig(exponents={"MGA": 0})))["attributes"]
    assert amount(attrs, "total_amount") == (123456, 123456, "MGA", "MGA 123,456")
    assert type(attrs["total_amount"]) is int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4111111111111111", "1111"),
        ("4111 1111 1111 4242", "4242"),
        ("**** **** **** 0119", "0119"),
        ("4242", "4242"),
        ("12", "12"),
        *[(raw, None) for raw in ("", "****", None, 4242)],  # no digits: left out
    ],
)
def test_only_last_four_card_digits_survive(raw: Any, expected: str | None) -> None:
    doc = load_sample("payment.succeeded.json")
    doc["data"]["card_last_four"] = raw
    ops = ops_of(doc)
    assert the_event(ops)["attributes"].get("card_last_four") == expected
    digits = "".join(c for c in str(raw) if c.isdigit())
    if len(digits) > 4:
        assert digits[:-4] not in json.dumps(ops)


def test_secret_metadata_keys_are_removed() -> None:
    """Which names are secrets: test_attributes' tables; here, that their values never leave."""
    doc = load_sample("payment.succeeded.json")
    doc["data"]["metadata"] = {
        "app_user_id": "usr_01927",
        "seats": 3,
        "x-api-key": "sk_live_AAAA",
        "client_secret": "cs_BBBB",
        "password": "hunter2-CCCC",
        "card_number": "4111111111111111",
        "nested": {"x": 1},
    }
    ops = ops_of(doc)
    assert the_event(ops)["attributes"]["metadata"] == {"app_user_id": "usr_01927", "seats": 3}
    for leaked in ("AAAA", "BBBB", "CCCC", "4111111111111111"):
        assert leaked not in json.dumps(ops)


def test_only_secret_metadata_means_no_metadata_attribute() -> None:
    doc = load_sample("payment.succeeded.json")
    doc["data"]["metadata"] = {"api_key": "sk_live_x"}
    assert "metadata" not in the_event(ops_of(doc))["attributes"]


# -------------------------------------------------------------------------------------------------
# subscriptions


def test_subscription_active_identify() -> None:
    doc = load_sample("subscription.active.json")
    customer, identify, event = ops_of(doc)
    assert (customer["_state"], identify["_state"]) == ("customer", "subscription")
    assert customer["attributes"] == {
        "email": "priya.raman@example.co.uk",
        "name": "Priya Raman",
        "first_name": "Priya",
        "last_name": "Raman",
        "phone": "+447700900481",
        "dodo_customer_id": "cus_4PwLx9QmTz2NbK6cYr8Vd",
    }
    assert identify["attributes"] == {
        "subscription_id": "sub_6HkWz3RqLb9XmT2vNc5Yd",
        "subscription_status": "active",
        "subscription_product_id": "pdt_2XcRm8TzWq4KbL7nYd1Vs",
        "subscription_recurring_amount": 15,
        "subscription_recurring_amount_minor": 1500,
        "subscription_recurring_amount_currency": "USD",
        "subscription_recurring_amount_display": "$15.00",
        "subscription_quantity": 1,
        "subscription_tax_inclusive": False,
        "subscription_billing_interval": "month",
        "subscription_billing_interval_count": 1,
        "subscription_next_billing_date": unix("2026-10-03T14:06:18.532741Z"),
        "subscription_current_period_start": unix("2026-09-03T14:06:18.532741Z"),
        "subscription_cancel_at_period_end": False,
        "subscription_expires_at": unix("2027-09-03T14:06:18.532741Z"),
        "subscription_trial_period_days": 0,
        "subscription_started_at": unix("2026-09-03T14:06:18.532741Z"),
        "subscription_has_payment_method": True,
        "subscription_billing_country": "GB",
        "subscription_addon_count": 0,
        # sent by Dodo as null or empty: removals, so a stale value cannot linger on the profile
        "subscription_cancelled_at": None,
        "subscription_cancellation_feedback": None,
        "subscription_paused_at": None,
        "subscription_past_due_ends_at": None,
        "subscription_customer_business_name": None,
        "subscription_discount_code": None,
        "subscription_discount_name": None,
        "subscription_discount_cycles_remaining": None,
        "subscription_addon_ids": None,
        "subscription_meter_names": None,
        "subscription_credit_balances": None,
        "subscription_credits_remaining": None,
        "subscription_scheduled_product_id": None,
        "subscription_scheduled_product_name": None,
        "subscription_scheduled_change_at": None,
        "subscription_trial_ends_at": None,  # trial_period_days 0: no trial
    }
    # the event carries the same state unprefixed (test_attributes' subscription event test)
    assert event["attributes"]["metadata"] == {"app_user_id": "usr_04411", "plan": "pro_monthly"}


def test_subscription_cancelled() -> None:
    _, identify, event = ops_of(load_sample("subscription.cancelled.json"))
    assert identify["attributes"]["subscription_status"] == "cancelled"
    assert identify["attributes"]["subscription_cancelled_at"] == unix("2026-11-10T08:15:36.482771Z")
    attrs = event["attributes"]
    assert attrs["cancelled_at"] == unix("2026-11-10T08:15:36.482771Z")
    assert attrs["cancelled_by"] == "customer"
    assert attrs["cancellation_feedback"] == "too_expensive"
    assert attrs["cancellation_comment"] == "Switching to the annual plan next quarter"
    # the canceller's own contact data is not copied into the event
    assert "cancelled_by_email" not in attrs
    assert json.dumps(attrs).count("priya.raman@example.co.uk") == 0


def test_a_renewal_names_its_payment() -> None:
    *_, renewed = ops_of(load_sample("subscription.renewed.json"))
    assert renewed["attributes"]["payment_id"] == "pay_3LmTq7XbWz1KcR5nYd9Vh"


def test_subscription_scheduled_change_and_cancel_at_period_end() -> None:
    doc = load_sample("subscription.active.json")
    doc["data"]["cancel_at_next_billing_date"] = True
    doc["data"]["payment_frequency_interval"] = "Year"
    doc["data"]["payment_frequency_count"] = 2
    doc["data"]["scheduled_change"] = {"product_id": "pdt_NEW", "effective_at": "2026-10-03T14:06:18Z"}
    _, identify, event = ops_of(doc)
    assert identify["attributes"]["subscription_cancel_at_period_end"] is True
    assert identify["attributes"]["subscription_billing_interval"] == "year"
    assert identify["attributes"]["subscription_billing_interval_count"] == 2
    assert event["attributes"]["scheduled_product_id"] == "pdt_NEW"
    assert event["attributes"]["scheduled_change_at"] == unix("2026-10-03T14:06:18Z")


def test_bad_dates_are_dropped_not_fatal() -> None:
    doc = load_sample("subscription.active.json")
    doc["data"]["next_billing_date"] = "soon"
    doc["data"]["expires_at"] = 12  # numbers are read as Unix seconds
    _, identify, event = ops_of(doc)
    # an unreadable date is a removal on the profile (the key was sent), never a bad value
    assert identify["attributes"]["subscription_next_billing_date"] is None
    assert "next_billing_date" not in event["attributes"]
    assert event["attributes"]["expires_at"] == 12


# -------------------------------------------------------------------------------------------------
# refunds, disputes, license keys, customer refs (payouts: test_event_samples)


def test_refund_mapping() -> None:
    _, event = ops_of(load_sample("refund.succeeded.json"))
    attrs = event["attributes"]
    assert amount(attrs, "refund_amount") == (24.5, 2450, "USD", "$24.50")
    assert attrs["is_partial"] is True
    assert attrs["refund_id"] == "ref_7YbLq4WzTn1KcR9mXd3Vs"
    assert attrs["payment_id"] == "pay_8fTq2WbXn4LcRk7YvP1sD"
    assert attrs["reason"] == "Customer requested a partial refund for an unused seat"


@pytest.mark.parametrize("field", ["amount", "currency"])
def test_refund_without_amount_still_sends_the_event(field: str) -> None:
    doc = load_sample("refund.succeeded.json")
    doc["data"][field] = None
    ops = ops_of(doc)
    event = the_event(ops)
    assert event["name"] == "refund.succeeded"
    for key in ("refund_amount", "refund_amount_minor", "refund_amount_currency", "refund_amount_display"):
        assert key not in event["attributes"]
    assert event["attributes"]["refund_id"] == "ref_7YbLq4WzTn1KcR9mXd3Vs"


def test_dispute_mapping() -> None:
    _, event = ops_of(load_sample("dispute.opened.json"))
    attrs = event["attributes"]
    assert amount(attrs, "dispute_amount") == (49, 4900, "USD", "$49.00")
    assert attrs["dispute_stage"] == "dispute"
    assert attrs["dispute_status"] == "dispute_opened"
    assert attrs["reason"] == "product_not_received"
    assert "remarks" not in attrs


def test_license_key_never_carries_the_key() -> None:
    doc = load_sample("license_key.created.json")
    key = doc["data"]["key"]
    ops = ops_of(doc)
    assert [op["action"] for op in ops] == ["event"]
    attrs = ops[0]["attributes"]
    assert "key" not in attrs
    assert attrs["license_key_id"] == "lic_9RxTm2QbWk6NzL3cYd8Vs"
    assert attrs["activations_limit"] == 3
    assert attrs["instances_count"] == 0
    assert attrs["status"] == "active"
    assert "expires_at" not in attrs
    for config in (
        MappingConfig(),
        MappingConfig(identifier=IdentifierStrategy.parse("email")),
        MappingConfig(identifier=IdentifierStrategy.parse("metadata:app_user_id")),
        MappingConfig(send_identify=False),
    ):
        dump = json.dumps(ops_of(doc, config))
        assert key not in dump
        assert key.replace("-", "") not in dump


def test_customer_ref_mapping() -> None:
    doc = customer_ref(
        {
            "payload_type": "CreditLedgerEntry",
            "business_id": "bus_1",
            "customer_id": "cus_A",
            "amount": 100,
            "balance": 12.5,
            "is_expired": False,
            "created_at": "2026-10-14T09:21:40Z",
            "expiry_date": "not a date",
            "secret_token": "tok_SHOULD_NOT_LEAK",
            "nested": {"x": 1},
            "items": [1, 2],
        }
    )
    ops = ops_of(doc)
    assert len(ops) == 1
    event = ops[0]
    assert event["identifiers"] == {"id": "cus_A"}
    assert event["_customer_id"] == "cus_A"
    assert event["name"] == "credit.added"
    assert event["timestamp"] == unix("2026-10-14T09:21:47.250Z")
    assert event["attributes"] == {
        "customer_id": "cus_A",
        "credit_amount": 100,  # a credit count, not money: never a bare `amount`
        "balance": 12.5,
        "is_expired": False,
        "created_at": unix("2026-10-14T09:21:40Z"),
        "expiry_date": "not a date",
    }


def test_customer_ref_nested_customer() -> None:
    doc = customer_ref({"customer": {"customer_id": "cus_N", "email": "n@example.com"}}, "dunning.started")
    ops = ops_of(doc)
    assert [op["action"] for op in ops] == ["event"]
    assert ops[0]["identifiers"] == {"id": "cus_N"}
    assert "customer" not in ops[0]["attributes"]


# -------------------------------------------------------------------------------------------------
# identifier strategies


@pytest.mark.parametrize(
    ("strategy", "sample", "customer", "expected"),
    [
        ("email", "payment.succeeded.json", {}, {"email": "maya.fernandes@example.com"}),
        ("email", "payment.succeeded.json", {"email": "  maya@example.com "}, {"email": "maya@example.com"}),
        ("email", "payment.succeeded.json", {"email": "   "}, None),
        ("email", "license_key.created.json", None, None),  # license keys carry no email
        ("metadata:app_user_id", "payment.succeeded.json", {}, {"id": "usr_01927"}),
        ("metadata:app_user_id", "subscription.renewed.json", {}, {"id": "usr_04411"}),
        ("metadata:app_user_id", "payment.failed.json", {}, None),  # empty metadata
        ("metadata: app_user_id ", "payment.failed.json", {"metadata": {"app_user_id": 1927}}, {"id": "1927"}),
        ("metadata:app_user_id", "payment.failed.json", {"metadata": {"app_user_id": True}}, None),  # not an id
        ("metadata:app_user_id", "payment.failed.json", {"metadata": {"app_user_id": "  "}}, None),
    ],
)
def test_identifier_strategies(
    strategy: str, sample: str, customer: dict[str, Any] | None, expected: dict[str, str] | None
) -> None:
    """Without the identifier the ops are left unresolved, with no fallback to the customer id: that would
    create a second person in a workspace keyed by email or the app's own id."""
    doc = load_sample(sample)
    if customer is not None:
        doc["data"]["customer"].update(customer)
    ops = ops_of(doc, MappingConfig(identifier=IdentifierStrategy.parse(strategy)))
    assert len(ops) == len(ops_of(doc))  # nothing dropped
    for op in ops:
        if expected is None:
            assert "identifiers" not in op
            assert op["_customer_id"] == customer_id_of(doc)  # what the resolver works from
        else:
            assert op["identifiers"] == expected


@pytest.mark.parametrize("text", [None, "", "  ", "customer_id", "id"])
def test_default_identifier_strategy(text: str | None) -> None:
    assert IdentifierStrategy.parse(text) == IdentifierStrategy()
    assert IdentifierStrategy.parse(text).kind == "customer_id"


@pytest.mark.parametrize("text", ["phone", "cio_id", "metadata:", "metadata:   ", "e-mail", "customer"])
def test_invalid_identifier_strategy(text: str) -> None:
    with pytest.raises(MappingConfigError) as info:
        IdentifierStrategy.parse(text)
    assert text.strip() in str(info.value)
    assert isinstance(info.value, ValueError)


# -------------------------------------------------------------------------------------------------
# customisation


def test_event_names_rename() -> None:
    config = MappingConfig(event_names={"payment.succeeded": "Purchase Completed"})
    assert the_event(ops_of(load_sample("payment.succeeded.json"), config))["name"] == "Purchase Completed"
    assert the_event(ops_of(load_sample("payment.failed.json"), config))["name"] == "payment.failed"
    # the rename does not change the dedup id
    assert (
        the_event(ops_of(load_sample("payment.succeeded.json"), config))["id"]
        == the_event(ops_of(load_sample("payment.succeeded.json")))["id"]
    )


def test_ignored_types() -> None:
    config = MappingConfig(ignored_types=frozenset({"payment.succeeded"}))
    assert ops_of(load_sample("payment.succeeded.json"), config) == []
    assert len(ops_of(load_sample("payment.failed.json"), config)) == 2


def test_send_identify_false() -> None:
    ops = ops_of(load_sample("subscription.active.json"), MappingConfig(send_identify=False))
    assert [op["action"] for op in ops] == ["event"]


def test_extra_attributes_star_and_type() -> None:
    calls: list[str] = []

    def everywhere(event: DodoEvent) -> dict[str, Any]:
        calls.append(event.type)
        return {"source": "dodo", "env": "prod"}

    config = MappingConfig(
        extra_attributes={
            "*": everywhere,
            "payment.succeeded": lambda e: {"env": "staging", "webhook": e.webhook_id},
        }
    )
    identify, event = ops_of(load_sample("payment.succeeded.json"), config)
    assert event["attributes"]["source"] == "dodo"
    assert event["attributes"]["env"] == "staging"  # the type-specific hook runs after "*"
    assert event["attributes"]["webhook"] == WEBHOOK_ID
    assert event["attributes"]["payment_id"] == "pay_8fTq2WbXn4LcRk7YvP1sD"
    assert not {"source", "env", "webhook"} & set(identify["attributes"])
    _, other = ops_of(load_sample("refund.succeeded.json"), config)
    assert other["attributes"]["env"] == "prod"
    assert "webhook" not in other["attributes"]
    assert calls == ["payment.succeeded", "refund.succeeded"]


def test_removed_attributes() -> None:
    config = MappingConfig(
        removed_attributes={
            "*": frozenset({"name", "metadata"}),
            "payment.succeeded": frozenset({"card_last_four", "phone"}),
        }
    )
    identify, event = ops_of(load_sample("payment.succeeded.json"), config)
    assert "name" not in identify["attributes"]
    assert "metadata" not in event["attributes"]
    assert "card_last_four" not in event["attributes"]
    assert identify["attributes"]["email"] == "maya.fernandes@example.com"
    identify, event = ops_of(load_sample("payment.failed.json"), config)
    assert "name" not in identify["attributes"]
    assert identify["attributes"]["phone"] == "+4915112345678"
    assert event["attributes"]["card_last_four"] == "0119"


def test_transform_added_event_gets_its_own_id() -> None:
    def add_first_purchase(event: DodoEvent, ops: list[Op]) -> list[Op]:
        base = ops[-1]
        return [
            *ops,
            {
                "type": "person",
                "identifiers": dict(base["identifiers"]),
                "action": "event",
                "name": "first_purchase",
                "timestamp": base["timestamp"],
                "attributes": {"payment_id": base["attributes"]["payment_id"]},
            },
        ]

    config = MappingConfig(transforms={"payment.succeeded": add_first_purchase})
    ops = ops_of(load_sample("payment.succeeded.json"), config)
    assert [op.get("name") for op in ops] == [None, "payment.succeeded", "first_purchase"]
    default_id, added_id = ops[1]["id"], ops[2]["id"]
    assert ULID_RE.fullmatch(added_id)
    assert added_id != default_id
    assert default_id == the_event(ops_of(load_sample("payment.succeeded.json")))["id"]
    assert ulid_time_ms(added_id) == ulid_time_ms(default_id)
    again = ops_of(load_sample("payment.succeeded.json"), config)
    assert again[2]["id"] == added_id  # still deterministic for retries
    other = ops_of(load_sample("payment.succeeded.json"), config, webhook_id=OTHER_WEBHOOK_ID)
    assert other[2]["id"] != added_id


def test_transforms_run_star_first_and_may_drop_everything() -> None:
    order: list[str] = []

    def star(event: DodoEvent, ops: list[Op]) -> list[Op]:
        order.append("*")
        return ops

    def typed(event: DodoEvent, ops: list[Op]) -> list[Op]:
        order.append(event.type)
        return []

    config = MappingConfig(transforms={"*": star, "payment.succeeded": typed})
    assert ops_of(load_sample("payment.succeeded.json"), config) == []
    assert order == ["*", "payment.succeeded"]


def test_transform_keeps_an_id_it_set_itself() -> None:
    def with_id(event: DodoEvent, ops: list[Op]) -> list[Op]:
        return [*ops, {**ops[-1], "name": "copy", "id": "01JB0000000000000000000000"}]

    ops = ops_of(load_sample("refund.succeeded.json"), MappingConfig(transforms={"*": with_id}))
    assert ops[-1]["id"] == "01JB0000000000000000000000"


def test_with_changes_returns_a_new_config() -> None:
    base = MappingConfig()
    changed = base.with_changes(send_identify=False)
    assert base.send_identify is True
    assert changed.send_identify is False
    assert changed.ignored_types == events.PAYOUT_TYPES


def test_unicode_and_long_names_pass_through_mapping() -> None:
    long_name = "支払い完了 💳 " * 40  # far over Customer.io's 100 bytes: limits.py deals with that
    long_key = "ключ_" * 60
    config = MappingConfig(
        event_names={"payment.succeeded": long_name},
        extra_attributes={"*": lambda e: {long_key: "値" * 2000, "émoji 🎉": "✓"}},
    )
    event = the_event(ops_of(load_sample("payment.succeeded.json"), config))
    assert event["name"] == long_name
    assert event["attributes"][long_key] == "値" * 2000
    assert event["attributes"]["émoji 🎉"] == "✓"


def test_mapping_does_not_mutate_the_payload() -> None:
    doc = load_sample("payment.succeeded.json")
    event = event_of(doc)
    before = copy.deepcopy(dict(event.data))
    config = MappingConfig(
        removed_attributes={"*": frozenset({"metadata"})},
        extra_attributes={"*": lambda e: {"x": 1}},
    )
    map_event(event, config)
    map_event(event, config)
    assert dict(event.data) == before
