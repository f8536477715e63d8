"""What each Dodo object becomes in Customer.io: profile state and event attributes.

Payloads start from the sample bodies in events/dodo/ and are enriched with the nested shapes of
Dodo's SDK 1.123.0 models (discounts, add-ons, meters, credit cart, custom fields, a scheduled
change), which the samples leave empty. `test_enriched_payloads_are_valid_sdk_models` checks
that the enrichments are shapes Dodo's own models accept.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from dodo_cio.mapping import attributes as attrs
from dodo_cio.mapping import payload_fields
from dodo_cio.mapping import profile as profiles
from dodo_cio.platform import secret_names
from dodo_cio.receiving.models import (
    Payment,
    Refund,
    parse_subscription,
)
from support.mapped_events import customer, json_len, money_is_complete, no_bare_amount, unix
from support.samples import load_sample

PROFILE_VALUE_BYTES = 1000  # Customer.io's identify limit, restated on purpose
DAY = 86_400


def data(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(load_sample(name)["data"])
    return payload


def discount(code: str, *, kind: str, amount: int, position: int, **extra: Any) -> dict[str, Any]:
    """A `DiscountDetail` as the SDK declares it."""
    return {
        "amount": amount,
        "business_id": "bus_Q7kd2LmRw9XpA3tVz8YcE",
        "code": code,
        "created_at": "2026-08-01T00:00:00Z",
        "discount_id": f"dsc_{code}",
        "metadata": {},
        "position": position,
        "preserve_on_plan_change": False,
        "restricted_to": [],
        "times_used": 12,
        "type": kind,
        **extra,
    }


def rich_subscription() -> dict[str, Any]:
    """Priya's subscription with a trial, two stacked discounts, add-ons, a meter, API credits,
    checkout answers and a scheduled upgrade."""
    sub = data("subscription.active.json")
    sub.update(
        trial_period_days=14,
        trial_amount=100,
        has_payment_method=False,
        customer_business_name="Raman Analytics Ltd",
        discount_id="dsc_LAUNCH20",
        discount_cycles_remaining=2,
        discounts=[
            # listed out of stack order on purpose: position decides
            discount("LOYAL5", kind="flat", amount=500, position=1),
            discount("LAUNCH20", kind="percentage", amount=2000, position=0, name="Launch offer", cycles_remaining=2),
        ],
        addons=[{"addon_id": "adn_extra_seat", "quantity": 3}, {"addon_id": "adn_priority_support", "quantity": 1}],
        meters=[
            {
                "currency": "USD",
                "free_threshold": 1000,
                "measurement_unit": "API call",
                "meter_id": "mtr_5QbWz1XkLm8RcT3n",
                "name": "API calls",
                "price_per_unit": "0.002",
            }
        ],
        credit_entitlement_cart=[
            {
                "credit_entitlement_id": "cent_3VbQx8LmTz1WkR6nYd2Hc",
                "credit_entitlement_name": "API Credits",
                "credits_amount": "1000",
                "overage_balance": "0",
                "overage_behavior": "forgive_at_reset",
                "overage_enabled": False,
                "product_id": "pdt_2XcRm8TzWq4KbL7nYd1Vs",
                "remaining_balance": "180.5",
                "rollover_enabled": False,
                "unit": "credits",
            }
        ],
        custom_field_responses=[
            {"key": "company_size", "value": "11-50"},
            {"key": "referral_token", "value": "rt_9f2c"},  # a secret by its name: never forwarded
        ],
        scheduled_change={
            "id": "spc_7MxQ2",
            "addons": [{"addon_id": "adn_extra_seat", "name": "Extra seat", "quantity": 3}],
            "created_at": "2026-09-20T10:00:00Z",
            "effective_at": "2026-10-03T14:06:18.532741Z",
            "product_id": "pdt_8PkRw3ZxNq5TmY1c",
            "quantity": 1,
            "product_name": "Pro Annual",
            "product_description": "Pro, billed yearly",
        },
    )
    return sub


def rich_payment() -> dict[str, Any]:
    """Maya's purchase: $19.99 with tax, two products, a discount code and checkout answers."""
    pay = data("payment.succeeded.json")
    pay.update(
        total_amount=1999,
        tax=166,
        settlement_amount=1999,
        settlement_tax=166,
        product_cart=[
            {"product_id": "pdt_7LpQz3VbKx9MwR2sYd4Tn", "quantity": 1},
            {"product_id": "pdt_3TmRk8WzQn2LbY6c", "quantity": 2},
        ],
        discount_id="dsc_SPRING10",
        discounts=[discount("SPRING10", kind="percentage", amount=1000, position=0, name="Spring sale")],
        custom_field_responses=[{"key": "github_username", "value": "mayaf"}, {"key": "password", "value": "hunter2"}],
        refund_status="partial",
    )
    pay["metadata"].update(tokens_purchased=500, secret_santa="yes", stripe_secret="sk_live_x", apiKey="k_1")
    return pay


# -------------------------------------------------------------------------------------------------
# the secret filter


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "APIKey",
        "X-Api-Key",
        "apikey",
        "api_key_value",
        "key",
        "secret_key",
        "license_key",
        "stripeSecretKey",
        "secret",
        "client_secret",
        "clientSecret",
        "stripe_secret",
        "webhook.secret",
        "token",
        "access_token",
        "reset_token",
        "api_tokens",
        "password",
        "password_hash",
        "password_confirmation",
        "passwd",
        "card_number",
        "cardNumber",
        "cc_number",
        "cvv",
        "CVC",
        "cvv2",
        "pan",
        "card_pan",
    ],
)
def test_secret_names(name: str) -> None:
    assert secret_names.is_secret_key(name), name


@pytest.mark.parametrize(
    "name",
    [
        "tokens_purchased",
        "secret_santa",
        "keyboard",
        "monkey",
        "key_count",
        "license_key_id",
        "password_reset_at",
        "passport_country",
        "japan",
        "company",
        "app_user_id",
        "plan",
        "",
        "_",
        "value",
    ],
)
def test_names_that_only_contain_a_secret_word(name: str) -> None:
    assert not secret_names.is_secret_key(name), name


# -------------------------------------------------------------------------------------------------
# the customer profile


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Maya Fernandes", ("Maya Fernandes", "Maya", "Fernandes")),
        ("Chloé Tremblay", ("Chloé Tremblay", "Chloé", "Tremblay")),
        ("Mary Ann van der Berg", ("Mary Ann van der Berg", "Mary", "Ann van der Berg")),
        ("  Haruto   Sato ", ("Haruto Sato", "Haruto", "Sato")),
        ("", (None, None, None)),
    ],
)
def test_name_is_split_into_first_and_last(name: str | None, expected: tuple[str | None, ...]) -> None:
    profile = profiles.customer_profile(customer(email="maya.fernandes@example.com", name=name))
    # None: left out (an unknown or empty name, or no last word, never clears what the app set)
    assert (profile.get("name"), profile.get("first_name"), profile.get("last_name")) == expected


def test_profile_metadata_prefixed_or_none() -> None:
    meta = {"app_user_id": "usr_1", "tokens_purchased": 3, "api_key": "k", "nested": {"a": 1}}
    cust = customer(email="maya.fernandes@example.com", name="Maya", metadata=meta)
    prefixed = profiles.customer_profile(cust, metadata="prefixed")
    assert prefixed["metadata_app_user_id"] == "usr_1"
    assert prefixed["metadata_tokens_purchased"] == 3
    assert not any(k in prefixed for k in ("metadata_api_key", "metadata_nested", "metadata"))
    assert not any(k.startswith("metadata") for k in profiles.customer_profile(cust, metadata="none"))
    assert profiles.customer_profile(cust) == prefixed  # prefixed is the default


# -------------------------------------------------------------------------------------------------
# the subscription state


def test_subscription_state_carries_what_marketers_segment_on() -> None:
    raw = rich_subscription()
    state = profiles.subscription_profile(parse_subscription(raw), {})
    created = unix(raw["created_at"])
    # the recurring amount: test_mapping pins it on the same plan; money_is_complete below, its type
    assert state["trial_ends_at"] == created + 14 * DAY
    assert state["has_payment_method"] is False
    assert state["billing_country"] == "GB"
    assert state["customer_business_name"] == "Raman Analytics Ltd"
    assert state["discount_code"] == "LAUNCH20"  # first in the stack, not first in the list
    assert state["discount_name"] == "Launch offer"
    assert state["discount_cycles_remaining"] == 2
    assert state["addon_ids"] == ["adn_extra_seat", "adn_priority_support"]
    assert state["addon_count"] == 4
    assert state["meter_names"] == ["API calls"]
    assert state["credit_balances"] == [
        {
            "credit_entitlement_id": "cent_3VbQx8LmTz1WkR6nYd2Hc",
            "name": "API Credits",
            "unit": "credits",
            "remaining_balance": 180.5,
            "overage_balance": 0,
        }
    ]
    assert state["credits_remaining"] == 180.5
    assert state["scheduled_product_id"] == "pdt_8PkRw3ZxNq5TmY1c"
    assert state["scheduled_product_name"] == "Pro Annual"
    assert state["scheduled_change_at"] == unix("2026-10-03T14:06:18Z")
    no_bare_amount(state)
    money_is_complete(state)


def test_subscription_state_values_fit_the_profile_limit() -> None:
    raw = rich_subscription()
    raw["addons"] = [{"addon_id": f"adn_{i:04d}_{'x' * 20}", "quantity": 2} for i in range(100)]
    state = profiles.subscription_profile(parse_subscription(raw), {})
    assert all(json_len(v) <= PROFILE_VALUE_BYTES for v in state.values())
    assert 0 < len(state["addon_ids"]) < 100  # the ids that fit, in order
    assert state["addon_ids"][0].startswith("adn_0000")
    assert state["addon_count"] == 200  # the count still covers them all


def test_subscription_state_null_is_a_removal_absent_is_left_alone() -> None:
    raw = rich_subscription()
    raw.update(scheduled_change=None, discounts=[], addons=[], meters=[], credit_entitlement_cart=[], billing=None)
    raw["customer_business_name"] = None
    for absent in ("has_payment_method", "cancellation_feedback", "paused_at"):
        del raw[absent]
    state = profiles.subscription_profile(parse_subscription(raw), {})
    # every key Dodo sent as null or empty clears its attribute (test_mapping pins them all on a sample);
    # these two are decided by other fields: discounts, not the deprecated count beside them, and billing
    for cleared in ("discount_cycles_remaining", "billing_country"):
        assert cleared in state and state[cleared] is None, cleared
    assert state["addon_count"] == 0
    for absent in ("has_payment_method", "cancellation_feedback", "paused_at"):
        assert absent not in state


def test_deprecated_discount_cycles_count_when_discounts_are_absent() -> None:
    raw = rich_subscription()
    del raw["discounts"]
    state = profiles.subscription_profile(parse_subscription(raw), {})
    assert state["discount_cycles_remaining"] == 2
    assert "discount_code" not in state


MISSING: Any = object()  # the key is taken out of the payload


@pytest.mark.parametrize(
    ("change", "days"),
    [
        ({"trial_period_days": 7}, 7),
        ({"trial_period_days": 0}, None),
        ({"trial_period_days": None}, None),
        ({"trial_period_days": -3}, None),
        ({"trial_period_days": MISSING}, MISSING),  # the length unknown: the profile is left alone
        ({"created_at": MISSING}, MISSING),  # the start unknown: likewise
    ],
)
def test_trial_ends_at(change: dict[str, Any], days: Any) -> None:
    raw = rich_subscription()
    created = unix(raw["created_at"])
    raw.update(change)
    for key in [k for k, v in change.items() if v is MISSING]:
        del raw[key]
    state = profiles.subscription_profile(parse_subscription(raw), {})
    if days is MISSING:
        assert "trial_ends_at" not in state
    else:
        assert state["trial_ends_at"] == (created + days * DAY if days else None)


def test_cleared_recurring_amount_removes_all_four() -> None:
    raw = rich_subscription()
    raw["recurring_pre_tax_amount"] = None
    state = profiles.subscription_profile(parse_subscription(raw), {})
    assert {k: state[k] for k in state if k.startswith("recurring_amount")} == dict.fromkeys(
        ("recurring_amount", "recurring_amount_minor", "recurring_amount_currency", "recurring_amount_display")
    )
    del raw["recurring_pre_tax_amount"]
    assert not any(k.startswith("recurring_amount") for k in profiles.subscription_profile(parse_subscription(raw), {}))


# -------------------------------------------------------------------------------------------------
# subscription events


def test_subscription_event_carries_state_and_full_lists() -> None:
    raw = rich_subscription()
    out = attrs.subscription_attributes(parse_subscription(raw), {})
    assert out["recurring_amount_display"] == "$15.00"  # the state's names
    assert out["trial_amount"] == 1
    assert out["trial_amount_display"] == "$1.00"
    assert out["trial_ends_at"] == unix(raw["created_at"]) + 14 * DAY
    assert out["discounts"] == [
        {"code": "LAUNCH20", "name": "Launch offer", "type": "percentage", "percent_off": 20, "cycles_remaining": 2},
        {"code": "LOYAL5", "type": "flat"},  # a flat amount's unit is not documented: no amount
    ]
    assert out["addons"] == [
        {"addon_id": "adn_extra_seat", "quantity": 3},
        {"addon_id": "adn_priority_support", "quantity": 1},
    ]
    assert out["meters"] == [
        {"meter_id": "mtr_5QbWz1XkLm8RcT3n", "name": "API calls", "unit": "API call", "free_threshold": 1000}
        | {"price_per_unit": 0.002}
    ]
    assert out["credit_balances"][0]["remaining_balance"] == 180.5
    assert out["custom_fields"] == {"company_size": "11-50"}
    assert out["scheduled_product_name"] == "Pro Annual"
    assert out["scheduled_quantity"] == 1
    assert out["previous_billing_date"] == unix(raw["previous_billing_date"])
    assert out["created_at"] == unix(raw["created_at"])
    assert "current_period_start" not in out and "started_at" not in out
    assert None not in out.values()
    no_bare_amount(out)
    money_is_complete(out)


# -------------------------------------------------------------------------------------------------
# payment events


def test_payment_event() -> None:
    out = attrs.payment_attributes(Payment.parse(rich_payment()), {})
    # the amounts: test_mapping's full payment.succeeded dict and test_payment_failed_mapping
    assert out["product_cart"] == [
        {"product_id": "pdt_7LpQz3VbKx9MwR2sYd4Tn", "quantity": 1},
        {"product_id": "pdt_3TmRk8WzQn2LbY6c", "quantity": 2},
    ]
    assert out["product_ids"] == ["pdt_7LpQz3VbKx9MwR2sYd4Tn", "pdt_3TmRk8WzQn2LbY6c"]
    assert out["product_quantity"] == 3
    assert out["discount_code"] == "SPRING10"
    assert out["discounts"] == [{"code": "SPRING10", "name": "Spring sale", "type": "percentage", "percent_off": 10}]
    assert out["custom_fields"] == {"github_username": "mayaf"}
    assert out["refund_status"] == "partial"
    assert None not in out.values()
    no_bare_amount(out)
    money_is_complete(out)


@pytest.mark.parametrize(
    ("month", "year", "expected"),
    [
        ("08", "2029", (8, 2029, datetime(2029, 9, 1, tzinfo=UTC))),
        ("12", "2027", (12, 2027, datetime(2028, 1, 1, tzinfo=UTC))),
        (3, 2030, (3, 2030, datetime(2030, 4, 1, tzinfo=UTC))),
        ("1", "29", (1, 2029, datetime(2029, 2, 1, tzinfo=UTC))),
        ("13", "2029", (None, 2029, None)),
        ("08", None, (8, None, None)),
        ("aa", "bb", (None, None, None)),
    ],
)
def test_card_expiry(month: object, year: object, expected: tuple[Any, ...]) -> None:
    raw = data("payment.succeeded.json")
    raw.update(card_exp_month=month, card_exp_year=year)
    out = attrs.payment_attributes(Payment.parse(raw), {})
    exp_month, exp_year, expires = expected
    assert out.get("card_exp_month") == exp_month
    assert out.get("card_exp_year") == exp_year
    assert out.get("card_expires_at") == (int(expires.timestamp()) if expires else None)


# -------------------------------------------------------------------------------------------------
# refunds, disputes, license keys


def test_a_refunds_network_reference_is_forwarded() -> None:
    """The amounts of refunds and disputes: test_mapping and the every-sample test below."""
    raw = data("refund.succeeded.json")
    raw.update(network_reference="74537604221431003881865", network_reference_type="ARN")
    traced = attrs.refund_attributes(Refund.parse(raw), {})
    assert (traced["network_reference"], traced["network_reference_type"]) == ("74537604221431003881865", "ARN")


# -------------------------------------------------------------------------------------------------
# credits, entitlements and the other loosely documented families


def test_credit_amounts_go_out_as_numbers() -> None:
    out = attrs.generic_attributes(data("credit.added.json"), "credit.added")
    assert out["credit_amount"] == 1000
    assert (out["balance_before"], out["balance_after"]) == (0, 1000)
    assert all(type(out[k]) is int for k in ("credit_amount", "balance_before", "overage_after"))
    assert out["credit_id"] == "cle_2RbXq6TzWm9KcL3nVd8Ys"
    assert "amount" not in out


def test_credit_balance_low_as_numbers() -> None:
    out = attrs.generic_attributes(data("credit.balance_low.json"), "credit.balance_low")
    assert (out["available_balance"], out["subscription_credits_amount"], out["threshold_amount"]) == (180, 1000, 200)


@pytest.mark.parametrize(
    ("text", "sent"),
    [("12.5", 12.5), ("-40", -40), ("1000.00", 1000), ("1e3", "1e3"), ("12,5", "12,5"), ("n/a", "n/a")],
)
def test_credit_decimal_strings(text: str, sent: object) -> None:
    raw = data("credit.deducted.json")
    raw["amount"] = text
    out = attrs.generic_attributes(raw, "credit.deducted")
    assert out["credit_amount"] == sent
    assert type(out["credit_amount"]) is type(sent)


def test_only_credit_families_convert_decimal_strings() -> None:
    raw = data("dunning.started.json")
    raw["reference_id"] = "12345"
    assert attrs.generic_attributes(raw, "dunning.started")["reference_id"] == "12345"


def test_entitlement_grant_nested_objects_without_secrets() -> None:
    raw = data("entitlement_grant.delivered.json")
    raw.update(
        integration_type="license_key",
        license_key={
            "id": "lic_9RxTm2QbWk6NzL3cYd8Vs",
            "activations_used": 1,
            "key": "5f0c2a9e-7b41-4d3a-9c6e-18b2f4a7d930",
            "status": "active",
            "activations_limit": 3,
            "expires_at": "2027-10-14T09:21:49Z",
        },
        feature={"feature_id": "feat_export", "feature_type": "boolean"},
        digital_product_delivery={
            "files": [{"file_id": "f1", "file_name": "guide.pdf", "url": "https://s3.example.com/presigned?sig=abc"}],
            "external_url": "https://example.com/downloads",
            "instructions": "Unzip and open index.html",
        },
        metadata={"campaign": "launch", "api_token": "t_1"},
    )
    out = attrs.generic_attributes(raw, "entitlement_grant.delivered")
    text = json.dumps(out)
    assert "5f0c2a9e" not in text and "presigned" not in text and "t_1" not in text
    assert out["license_key_id"] == "lic_9RxTm2QbWk6NzL3cYd8Vs"
    assert out["license_key_status"] == "active"
    assert out["license_key_activations_used"] == 1
    assert out["license_key_expires_at"] == unix("2027-10-14T09:21:49Z")
    assert (out["feature_id"], out["feature_type"]) == ("feat_export", "boolean")
    assert out["delivery_external_url"] == "https://example.com/downloads"
    assert out["delivery_file_count"] == 1
    assert out["metadata"] == {"campaign": "launch"}
    assert out["entitlement_grant_id"] == raw["id"]


def test_generic_secret_filter_by_whole_words() -> None:
    raw = {"customer_id": "cus_1", "tokens_purchased": 5, "access_token": "t", "key": "k", "monkey": "m"}
    out = attrs.generic_attributes(raw, "credit.added")
    assert out == {"customer_id": "cus_1", "tokens_purchased": 5, "monkey": "m"}


# -------------------------------------------------------------------------------------------------
# every sample


def test_money_that_no_json_number_holds_is_left_out() -> None:
    assert payload_fields.money("total_amount", 10**400, "USD", {}) == {}
    assert payload_fields.money("total_amount", 10**400, "JPY", {}) == {}
    assert payload_fields.money("total_amount", None, "USD", {}) == {}
    assert payload_fields.money("total_amount", 100, None, {}) == {}
    assert payload_fields.money("total_amount", 100, "  ", {}) == {}
    assert payload_fields.money("total_amount", 100, "usd", {}) == {
        "total_amount": 1,
        "total_amount_minor": 100,
        "total_amount_currency": "USD",
        "total_amount_display": "$1.00",
    }


def test_enriched_payloads_are_valid_sdk_models() -> None:
    """The nested shapes used above are the ones Dodo's SDK declares (when it is installed)."""
    pytest.importorskip("dodopayments")
    from dodopayments.types import Payment as SdkPayment
    from dodopayments.types.subscription_active_webhook_event import Data as SdkSubscription

    SdkSubscription.model_validate(rich_subscription())
    SdkPayment.model_validate(rich_payment())
