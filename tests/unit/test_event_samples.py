"""events/dodo/ holds a body for every Dodo type, each usable by `dodo-cio send` and shaped exactly like Dodo's SDK.

Why: the bodies are the artefacts users open and the inputs most tests assert exact values on, so
they must not drift from what Dodo sends. Their shape is checked field by field against the pydantic
models of the pinned `dodopayments` SDK (dodo_cio_testdata.sample_bodies), and the tests below show
that check failing when the SDK grows a field: in the envelope, in `data`, in a nested object or a
list item. The signed copies in events/apigw/ must not be stale either.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dodopayments.types import CustomerLimitedDetails, Payment, PaymentSucceededWebhookEvent, RefundListItem
from dodopayments.types.payment import ProductCart
from dodopayments.types.payout_success_webhook_event import Data as PayoutData
from dodopayments.types.subscription_active_webhook_event import Data as SubscriptionActiveData
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dodo_cio.mapping.mapper import MappingConfig, map_event
from dodo_cio.receiving import events
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio_testdata import make_events, sample_bodies

ROOT = Path(__file__).resolve().parents[2]
BODIES = ROOT / "events" / "dodo"
IGNORED = BODIES / sample_bodies.IGNORED
BODY_FILES = sorted(BODIES.glob("*.json"))
IGNORED_FILES = sorted(IGNORED.glob("*.json"))
ALL_FILES = BODY_FILES + IGNORED_FILES


def _doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _types_present(files: list[Path]) -> set[str]:
    return {_doc(p)["type"] for p in files}


def _grow(monkeypatch: pytest.MonkeyPatch, model: type[BaseModel], name: str, annotation: Any, **default: Any) -> None:
    """Make `model` declare one more field, as a newer SDK release would (the walk reads model_fields)."""
    fields = {**model.model_fields, name: FieldInfo(annotation=annotation, **default)}
    monkeypatch.setattr(model, "__pydantic_fields__", fields)


class PauseReason(BaseModel):
    """A nested model a future SDK might add to subscriptions."""

    code: str


@pytest.fixture
def bodies(tmp_path: Path) -> Path:
    """A copy of events/dodo/ (ignored/ included) to break and repair."""
    return Path(shutil.copytree(BODIES, tmp_path / "dodo"))


def _problems(doc: dict[str, Any]) -> list[str]:
    return sample_bodies.walk(doc).problems


# --- coverage and behaviour of the bodies ---------------------------------------------------------


def test_every_type_dodo_cio_knows_has_a_body_named_after_it() -> None:
    assert _types_present(ALL_FILES) == events.ALL_TYPES
    assert len(events.ALL_TYPES) == 48
    assert {p.stem for p in BODY_FILES} >= events.ALL_TYPES - events.PAYOUT_TYPES  # events/dodo/<type>.json
    # what the mapping ignores lies in ignored/, and only there
    assert {p.stem for p in IGNORED_FILES} == _types_present(IGNORED_FILES) == events.PAYOUT_TYPES
    assert not _types_present(BODY_FILES) & events.PAYOUT_TYPES


@pytest.mark.parametrize("path", IGNORED_FILES, ids=lambda p: p.name)
def test_every_ignored_body_parses_and_maps_to_nothing(path: Path) -> None:
    envelope = parse_envelope(parse_json(path.read_bytes()))
    payload = parse_payload(envelope)
    assert payload is not None, f"{envelope.type} is not a known type"
    event = DodoEvent(f"msg_sample_{path.stem}", envelope, payload)
    assert map_event(event, MappingConfig()) == []
    # even if a merchant stops ignoring them, there is nobody to address
    assert map_event(event, MappingConfig(ignored_types=frozenset())) == []


def test_event_times_are_distinct() -> None:
    stamps = [_doc(p)["timestamp"] for p in ALL_FILES]
    assert len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_body_is_named_after_its_type_and_has_no_real_looking_email(path: Path) -> None:
    def emails(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [e for v in value.values() for e in emails(v)]
        if isinstance(value, list):
            return [e for v in value for e in emails(v)]
        return [value] if isinstance(value, str) and "@" in value else []

    doc = _doc(path)
    assert path.name == f"{doc['type']}.json" or path.name.startswith(f"{doc['type']}."), path.name
    for email in emails(doc):
        assert email.rsplit("@", 1)[1].split(".")[0] == "example", email


def test_signed_events_are_not_stale() -> None:
    assert make_events.main(["--check"]) == 0, "run: make events"
    assert {p.name for p in (ROOT / "events" / "apigw").glob("*.json")} == {p.name for p in BODY_FILES}


# --- the bodies against Dodo's SDK -----------------------------------------------------------------


def test_the_whole_check_passes_on_events_dodo(capsys: pytest.CaptureFixture[str]) -> None:
    """Every body has exactly the fields of Dodo's SDK models at every depth, and the SDK's types are ours."""
    assert sample_bodies.main(["--check"]) == 0, capsys.readouterr().err


def test_dodos_sdk_knows_exactly_the_types_dodo_cio_knows() -> None:
    assert sample_bodies.catalogue_problems([*events.ALL_TYPES, "payout.reversed"], events.ALL_TYPES) == [
        "payout.reversed: a webhook type in Dodo's SDK, not in dodo_cio.receiving.events"
    ]


def test_a_field_the_sdk_adds_to_a_nested_object_fails_the_check_then_fill_adds_it_as_null(
    monkeypatch: pytest.MonkeyPatch, bodies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _grow(monkeypatch, CustomerLimitedDetails, "locale", str | None, default=None)
    paid = _doc(bodies / "payment.succeeded.json")
    assert _problems(paid) == ["data.customer.locale: missing (CustomerLimitedDetails declares it)"]
    # the dispute's customer is an extra field Dodo's examples add; it is checked as the same model
    assert _problems(_doc(bodies / "dispute.opened.json")) == [
        "data.customer.locale: missing (CustomerLimitedDetails declares it)"
    ]
    assert sample_bodies.main(["--check", "--bodies", str(bodies)]) == 1
    assert "subscription.active.json: data.customer.locale: missing" in capsys.readouterr().err

    assert sample_bodies.main(["--bodies", str(bodies)]) == 0
    assert "filled payment.succeeded.json: data.customer.locale = null" in capsys.readouterr().out
    filled = _doc(bodies / "payment.succeeded.json")
    assert filled["data"]["customer"].pop("locale") is None
    assert filled == paid  # nothing else changed
    assert sample_bodies.main(["--check", "--bodies", str(bodies)]) == 0


def test_a_field_the_sdk_adds_to_list_items_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    _grow(monkeypatch, ProductCart, "price", int)
    paid = _doc(BODIES / "payment.succeeded.json")
    assert _problems(paid) == ["data.product_cart[0].price: missing (ProductCart declares it)"]
    assert sample_bodies.walk(paid, fill=True).filled == ["data.product_cart[0].price = 0"]
    assert paid["data"]["product_cart"] == [{"product_id": "pdt_7LpQz3VbKx9MwR2sYd4Tn", "quantity": 1, "price": 0}]


def test_a_field_the_sdk_adds_to_the_envelope_or_the_payload_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    _grow(monkeypatch, PaymentSucceededWebhookEvent, "api_version", str)
    _grow(monkeypatch, Payment, "receipt_url", str | None, default=None)
    assert _problems(_doc(BODIES / "payment.succeeded.json")) == [
        "data.receipt_url: missing (Payment declares it)",
        "api_version: missing (PaymentSucceededWebhookEvent declares it)",
    ]
    assert _problems(_doc(BODIES / "payment.failed.json")) == ["data.receipt_url: missing (Payment declares it)"]


def test_a_nested_model_the_sdk_adds_is_reported_until_a_body_carries_one(
    monkeypatch: pytest.MonkeyPatch, bodies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _grow(monkeypatch, SubscriptionActiveData, "pause_reason", PauseReason | None, default=None)
    assert sample_bodies.main(["--bodies", str(bodies)]) == 1  # filled with null: nothing to check it on
    assert "no body carries test_event_samples.PauseReason" in capsys.readouterr().err
    active = _doc(bodies / "subscription.active.json")
    assert active["data"]["pause_reason"] is None
    active["data"]["pause_reason"] = {"code": "customer_request", "note": "?"}
    assert _problems(active) == ["data.pause_reason.note: not a field of PauseReason"]


def test_a_model_a_body_starts_to_carry_must_leave_uncarried(bodies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bodies / "payment.succeeded.json"
    doc = _doc(path)
    doc["data"]["refunds"] = [sample_bodies.blank(RefundListItem, "refunds", doc["timestamp"])]
    path.write_text(sample_bodies.render(doc), encoding="utf-8")
    assert _problems(doc) == []
    assert sample_bodies.main(["--check", "--bodies", str(bodies)]) == 1
    assert "refund_list_item.RefundListItem is carried now: take it out of UNCARRIED" in capsys.readouterr().err


def test_unknown_missing_and_mistyped_fields_are_problems() -> None:
    doc = _doc(BODIES / "dispute.opened.json")
    doc["data"]["customer"]["surprise"] = 1
    del doc["data"]["customer"]["phone_number"]  # Optional, but Dodo sends it as null
    doc["data"]["reason"] = 5
    doc["data"]["amount"] = 4900  # the SDK declares a decimal string; strict validation says so
    assert _problems(doc) == [
        "data.customer.phone_number: missing (CustomerLimitedDetails declares it)",
        "data.customer.surprise: not a field of CustomerLimitedDetails",
        "data.reason: not a valid str",
        "data.amount: Input should be a valid string",
    ]
    assert _problems({**doc, "type": "payment.refunded"}) == [
        "type: 'payment.refunded' is not a webhook type of Dodo's SDK"
    ]


def test_lists_optionals_and_unions_are_walked_into() -> None:
    class Card(BaseModel):
        last_four: str

    class Bank(BaseModel):
        iban: str

    class Holder(BaseModel):
        items: list[Card]
        meta: dict[str, str | int | bool]
        method: Card | Bank | None = None

    walk = sample_bodies.Walk()
    walk.obj(
        {"items": [{"last_four": "4242"}, {"x": 1}], "meta": {"a": 1}, "method": {"iban": "DE89", "bic": "X"}},
        Holder,
        "",
    )
    assert walk.problems == [
        "items[1].last_four: missing (Card declares it)",
        "items[1].x: not a field of Card",
        "method.bic: not a field of Bank",  # the union member the value validates as
    ]
    assert walk.carried == {Holder, Card, Bank}
    walk = sample_bodies.Walk()
    walk.obj({"items": [], "meta": {}, "method": None}, Holder, "")
    assert walk.problems == [] and walk.carried == {Holder}


def test_fill_writes_every_field_of_a_body_given_only_the_values_that_matter() -> None:
    seed: dict[str, Any] = {
        "business_id": "bus_Q7kd2LmRw9XpA3tVz8YcE",
        "type": "payout.success",
        "timestamp": "2026-12-01T10:00:00Z",
        "data": {"payout_id": "pout_x", "amount": 100, "status": "success"},
    }
    walk = sample_bodies.walk(seed, fill=True)
    assert walk.problems == []
    assert set(seed["data"]) == set(PayoutData.model_fields)
    assert seed["data"]["remarks"] is None and seed["data"]["fee"] == 0
    assert (
        seed["data"]["created_at"] == "2026-12-01T10:00:00Z"
        and seed["data"]["payment_method"] == "sample_payment_method"
    )


def test_the_same_customer_is_the_same_in_every_body(bodies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bodies / "refund.failed.json"
    doc = _doc(path)
    doc["data"]["customer"]["name"] = "H. Sato"
    path.write_text(sample_bodies.render(doc), encoding="utf-8")
    credit = bodies / "credit.added.json"
    credit.write_text(credit.read_text(encoding="utf-8").replace("cus_4PwLx9QmTz2NbK6cYr8Vd", "cus_nobody"))
    assert sample_bodies.main(["--check", "--bodies", str(bodies)]) == 1
    err = capsys.readouterr().err
    assert "refund.failed.json: customer " in err and " differs from the one in " in err
    assert "credit.added.json: customer_id cus_nobody is no customer any body carries" in err


def test_a_missing_body_or_one_in_the_wrong_folder_is_reported(
    bodies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bodies / "credit.balance_low.json").unlink()
    (bodies / "ignored" / "payout.failed.json").rename(bodies / "payout.failed.json")
    assert sample_bodies.main(["--check", "--bodies", str(bodies)]) == 1
    err = capsys.readouterr().err
    assert "no body: credit.balance_low\n" in err and "no body: payout.failed (in ignored/)" in err
