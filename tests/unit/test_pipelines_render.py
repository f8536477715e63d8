"""Pipelines rendering: the real mapping over every sample, each identifier strategy and both
subscription modes, said as Data Pipelines calls the published spec accepts.

The spec is read through `tests/contract/pipelines_v1.schema.json`, derived from Customer.io's
published Pipelines OpenAPI (see `tests/contract/derive_pipelines_schema.py` for the source and the
two readings issue 12 asks for: `oneOf` as `anyOf`, a direct call's `type` added from its path).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dodo_cio.delivery.pipelines import Call, RenderError, render
from dodo_cio.delivery.pipelines.render import iso_time, user_id
from dodo_cio.mapping.mapper import CUSTOMER_ID, PAYMENT_ID, IdentifierStrategy, MappingConfig, Op, map_event
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio.state.identity import Known, Resolver
from support.samples import SAMPLES, load_sample

SCHEMA = json.loads((Path(__file__).parents[1] / "contract" / "pipelines_v1.schema.json").read_text())
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.glob("*.json"))
WEBHOOK_ID = "msg_2fQxH8mZ3nV7kT1pR9sW4yL6bC0"
STRATEGIES = ["customer_id", "email", "metadata:app_user_id"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def validator(entry: str) -> Draft202012Validator:
    return Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{entry}"})


CALL_VALIDATORS = {kind: validator(f"{kind}_call") for kind in ("identify", "track", "group")}
BATCH_VALIDATOR = validator("batch_request")


def spec_errors(calls: list[Call]) -> list[str]:
    """Each call as a direct request (its `type` added from the path) and all of them as one batch."""
    errors = [f"/{c.type}: {e.message}" for c in calls for e in CALL_VALIDATORS[c.type].iter_errors(c.batch_item())]
    batch = {"batch": [c.batch_item() for c in calls]}
    return errors + [f"/batch: {e.message}" for e in BATCH_VALIDATOR.iter_errors(batch)]


def mapped(name: str, config: MappingConfig, webhook_id: str = WEBHOOK_ID) -> tuple[dict[str, Any], list[Op]]:
    doc = load_sample(name)
    envelope = parse_envelope(parse_json(json.dumps(doc).encode()))
    payload = parse_payload(envelope)
    assert payload is not None
    return doc, map_event(DodoEvent(webhook_id, envelope, payload), config)


def stand_in(strategy: IdentifierStrategy, customer_id: str) -> dict[str, str]:
    """What the directory would know of a customer the payload does not describe."""
    if strategy.kind == "email":
        return {"email": f"{customer_id}@example.test"}
    return {"id": f"app-{customer_id}" if strategy.kind == "metadata" else customer_id}


def resolved(ops: list[Op], strategy: IdentifierStrategy) -> list[Op]:
    """The ops after identity resolution (the real Resolver, with everything it needs known)."""
    known = Known()
    for op in ops:
        customer_id = op.get(CUSTOMER_ID) or f"cus_of_{op.get(PAYMENT_ID)}"
        known.customers[customer_id] = stand_in(strategy, customer_id)
        if op.get(PAYMENT_ID):
            known.payments[op[PAYMENT_ID]] = customer_id
    ready, unresolved = Resolver(strategy).resolve(ops, known)
    assert not unresolved
    return ready


def expected_user(doc: dict[str, Any], strategy: str) -> str | None:
    """Read from the sample body itself, not through the mapping: who the payload says the person is."""
    data = doc["data"]
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else None
    if strategy == "customer_id":
        return customer["customer_id"] if customer else data.get("customer_id")
    if strategy == "email":
        return customer["email"] if customer else None
    metadata = data.get("metadata") if customer else None
    return (metadata or {}).get("app_user_id")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_call(op: Op, call: Call, dodo_time: datetime) -> None:
    """The rules of the module docstring, checked against the op the call came from."""
    if op["type"] == "object":
        assert call.type == "group"
        assert call.body["groupId"] == op["identifiers"]["object_id"]
        assert call.body["traits"] == {**op["attributes"], "object_type_id": op["identifiers"]["object_type_id"]}
        assert call.body["userId"] == next(iter(op["cio_relationships"][0]["identifiers"].values()))
        precision = timedelta(seconds=1)
    elif op["action"] == "identify":
        assert call.type == "identify"
        assert call.body["traits"] == op["attributes"]  # null values (removals) included
        precision = timedelta(seconds=1)
    else:
        assert call.type == "track"
        assert (call.body["event"], call.body["properties"], call.body["messageId"]) == (
            op["name"],
            op["attributes"],
            op["id"],
        )
        precision = timedelta(milliseconds=1)
    if op["type"] == "person":
        assert call.body["userId"] == next(iter(op["identifiers"].values()))
    stamped = when(call.body["timestamp"])
    assert stamped.tzinfo == UTC
    assert stamped == EPOCH + (dodo_time - EPOCH) // precision * precision


@pytest.mark.parametrize("objects", [None, "1"], ids=["subscription-on-profile", "subscription-objects"])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_renders_to_calls_the_spec_accepts(name: str, strategy: str, objects: str | None) -> None:
    identifier = IdentifierStrategy.parse(strategy)
    doc, ops = mapped(name, MappingConfig(identifier=identifier, subscription_object_type_id=objects))
    for op in ops:
        if not op.get("identifiers") and not op.get("cio_relationships"):
            with pytest.raises(RenderError):  # an unresolved op is never sent as it is
                render(op)
    ops = resolved(ops, identifier)
    calls = [render(op) for op in ops]
    assert spec_errors(calls) == []
    for op, call in zip(ops, calls, strict=True):
        check_call(op, call, when(doc["timestamp"]))
    person = expected_user(doc, strategy)
    if person is not None:  # the payload names the person: every call is about them
        assert {c.body["userId"] for c in calls} == {person}
    kinds = [c.type for c in calls]
    assert kinds[-1] == "track" and kinds.count("track") == 1  # which subscriptions are groups: tests/contract


def test_the_samples_exercise_removals_objects_and_every_strategy() -> None:
    """Guards the sweep above against passing vacuously."""
    _, ops = mapped("payment.succeeded.json", MappingConfig())
    assert None not in render(ops[0]).body["traits"].values()  # phone_number: null is unknown, not a removal
    _, ops = mapped("subscription.active.json", MappingConfig())
    assert None in render(ops[1]).body["traits"].values()  # subscription state Dodo cleared
    _, ops = mapped("subscription.active.json", MappingConfig(subscription_object_type_id="1"))
    assert [render(op).type for op in ops] == ["identify", "group", "track"]
    doc, ops = mapped(
        "payment.succeeded.json", MappingConfig(identifier=IdentifierStrategy.parse("metadata:app_user_id"))
    )
    assert {render(op).body["userId"] for op in ops} == {doc["data"]["metadata"]["app_user_id"]}


def test_a_ulid_that_disagrees_with_the_timestamp_is_not_trusted_for_milliseconds() -> None:
    _, ops = mapped("payment.succeeded.json", MappingConfig())
    event = {**ops[-1], "timestamp": ops[-1]["timestamp"] + 5}
    assert render(event).body["timestamp"] == iso_time(event["timestamp"] * 1000)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_700_000_000_000, "2023-11-14T22:13:20Z"),
        (1_700_000_000_004, "2023-11-14T22:13:20.004Z"),
    ],
)
def test_iso_time(ms: int, text: str) -> None:
    assert iso_time(ms) == text


def test_a_cio_id_is_the_user_id_with_its_prefix() -> None:
    # an id or an email is the userId as it is: every sample's calls in the sweep above
    assert user_id({"cio_id": "a1b2c3"}) == "cio_a1b2c3"


PERSON = {"type": "person", "identifiers": {"id": "cus_1"}, "timestamp": 1_700_000_000, "attributes": {}}
OBJECT = {
    "type": "object",
    "action": "identify",
    "identifiers": {"object_type_id": "1", "object_id": "sub_1"},
    "attributes": {"status": "active"},
    "cio_relationships": [{"identifiers": {"id": "cus_1"}}],
}


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        ({**PERSON, "action": "delete"}, "no call for a person 'delete' op"),
        ({**PERSON, "action": "add_device", "device": {"token": "t"}}, "no call for a person 'add_device' op"),
        ({"type": "person", "action": "merge", "primary": {"id": "a"}, "secondary": {"phone": "+1"}}, "by 'phone'"),
        ({**OBJECT, "action": "delete"}, "no call for a object 'delete' op"),
        ({**PERSON, "action": "identify", "identifiers": {"phone": "+15555550100"}}, "by 'phone'"),
        (
            {**PERSON, "action": "identify", "identifiers": {"id": "a", "email": "a@b.c"}},
            "exactly one person identifier",
        ),
        ({**PERSON, "action": "identify", "identifiers": {}}, "exactly one person identifier"),
        ({**PERSON, "action": "identify", "identifiers": {"id": " "}}, "empty"),
        ({**PERSON, "action": "event"}, "needs a name"),
        ({**PERSON, "action": "event", "name": "x", "timestamp": 1.5e9}, "whole Unix seconds"),
        ({**PERSON, "action": "identify", "attributes": ["x"]}, "must be an object"),
        ({**OBJECT, "cio_relationships": [{"identifiers": {"id": "a"}}, {"identifiers": {"id": "b"}}]}, "relates 2"),
        ({**OBJECT, "cio_relationships": []}, "relates 0"),
        ({key: value for key, value in OBJECT.items() if key != "cio_relationships"}, "relates 0"),
        ({**OBJECT, "identifiers": {"cio_object_id": "x"}}, "object_type_id and object_id only"),
        ({**OBJECT, "identifiers": {"object_type_id": "companies", "object_id": "x"}}, "type number"),
        ({**OBJECT, "cio_relationships": [{"identifiers": {"phone": "+1"}}]}, "by 'phone'"),
    ],
)
def test_what_pipelines_cannot_say_is_a_render_error_with_the_reason(op: dict[str, Any], reason: str) -> None:
    with pytest.raises(RenderError, match=reason.replace("(", r"\(").replace("+", r"\+")):
        render(op)


def test_group_keeps_relationship_attributes() -> None:
    related = {
        **OBJECT,
        "cio_relationships": [{"identifiers": {"email": "a@b.c"}, "relationship_attributes": {"role": "payer"}}],
    }
    call = render(related)
    assert (call.body["userId"], call.body["traits"]["relationshipAttributes"]) == ("a@b.c", {"role": "payer"})
    assert spec_errors([call]) == []


def test_the_spec_wants_a_group_to_name_its_person() -> None:
    """Why an object op related to nobody is a RenderError rather than a call Customer.io would refuse."""
    call = render(OBJECT)
    alone = Call("group", {key: value for key, value in call.body.items() if key != "userId"})
    assert spec_errors([call]) == []
    assert [e.split(":")[0] for e in spec_errors([alone])] == ["/batch"]
