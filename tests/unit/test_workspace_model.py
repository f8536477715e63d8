"""The in-memory Customer.io workspace (tests/support/workspace.py): each rule it models, and that it
rejects what Customer.io's schema rejects. Other suites trust its end state, so every rule here is one
that would let a wrong bridge pass if the model got it wrong."""

from __future__ import annotations

from typing import Any

import pytest

from dodo_cio_local.sandbox import TrackV2Validator
from support.workspace import Workspace, WorkspaceError, track_ops_of_calls, track_ops_of_request

ULID_1 = "01JB8Z6Q2W3E4R5T6Y7V8X9M0P"
ULID_2 = "01JB8Z6Q2W3E4R5T6Y7V8X9M0Q"
SUB = {"object_type_id": "1", "object_id": "sub_1"}


def identify(ident: dict[str, str], attrs: dict[str, Any], ts: int | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "person", "identifiers": ident, "action": "identify", "attributes": attrs, **extra}
    if ts is not None:
        op["timestamp"] = ts
    return op


def event(ident: dict[str, str], name: str, event_id: str | None = None, **attrs: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "person", "identifiers": ident, "action": "event", "name": name}
    if event_id is not None:
        op["id"] = event_id
    return {**op, "timestamp": 1_700_000_000, "attributes": attrs}


def obj(action: str, attrs: dict[str, Any] | None = None, rels: list[Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "object", "identifiers": SUB, "action": action}
    if attrs is not None:
        op["attributes"] = attrs
    if rels is not None:
        op["cio_relationships"] = rels
    return op


def merge(primary: dict[str, str], secondary: dict[str, str]) -> dict[str, Any]:
    return {"type": "person", "action": "merge", "primary": primary, "secondary": secondary}


# ---- people: identify -------------------------------------------------------------------------


def test_identify_creates_then_merges_attributes_into_the_same_person() -> None:
    ws = Workspace()
    ws.apply(identify({"id": "cus_1"}, {"plan": "pro", "seats": 3}))
    first = ws.person(id="cus_1")
    assert first is not None and first.cio_id
    ws.apply(identify({"id": "cus_1"}, {"plan": "team"}))
    after = ws.person(id="cus_1")
    assert after is not None and after.cio_id == first.cio_id
    assert dict(after.attributes) == {"id": "cus_1", "plan": "team", "seats": 3}
    assert after.identifiers == {"id": "cus_1", "cio_id": first.cio_id}
    assert len(ws.people) == 1
    assert ws.person(cio_id=first.cio_id) == after


def test_email_identifier_matches_case_insensitively() -> None:
    ws = Workspace()
    ws.apply(identify({"email": "Maya@Example.com"}, {"first_name": "Maya"}))
    ws.apply(identify({"email": "maya@example.COM"}, {"last_name": "Roy"}))
    assert len(ws.people) == 1
    maya = ws.person(email="MAYA@EXAMPLE.COM")
    assert maya is not None
    assert maya.attributes["email"] == "Maya@Example.com"  # as first written
    assert {"first_name", "last_name"} <= set(maya.attributes)
    assert ws.person(id="Maya@Example.com") is None  # an email is not an id


@pytest.mark.parametrize("removal", [None, ""])
def test_none_or_empty_string_removes_an_attribute_and_creates_nothing(removal: Any) -> None:
    ws = Workspace()
    ws.apply(identify({"id": "cus_1"}, {"plan": "pro", "seats": 3}))
    ws.apply(identify({"id": "cus_1"}, {"plan": removal, "note": removal}))  # `note` was never set
    person = ws.person(id="cus_1")
    assert person is not None and dict(person.attributes) == {"id": "cus_1", "seats": 3}


def test_an_unknown_cio_id_or_merge_primary_is_dropped_not_created() -> None:
    ws = Workspace()
    ws.apply(identify({"cio_id": "a3000999"}, {"plan": "pro"}))
    ws.apply(event({"cio_id": "a3000999"}, "paid"))
    assert ws.people == []
    ws.apply_batch([identify({"id": "cus_2"}, {}), merge({"id": "cus_1"}, {"id": "cus_2"})])
    assert [reason for reason, _ in ws.dropped] == ["no person with cio_id 'a3000999'"] * 2 + ["primary does not exist"]
    assert ws.person(id="cus_2") is not None  # nothing was merged away


def test_snapshots_are_read_only_and_do_not_follow_later_ops() -> None:
    ws = Workspace()
    source: dict[str, Any] = {"plan": "pro", "limits": {"seats": 3}}
    ws.apply(identify({"id": "cus_1"}, source))
    source["limits"]["seats"] = 99  # the caller's dict is not the workspace's
    person = ws.person(id="cus_1")
    assert person is not None
    with pytest.raises(TypeError):
        person.attributes["plan"] = "x"  # type: ignore[index]
    ws.apply(identify({"id": "cus_1"}, {"plan": "team"}))
    assert person.attributes["plan"] == "pro" and person.attributes["limits"] == {"seats": 3}


# ---- people: conflicts ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "held", "claimed"), [("email", "a@example.com", "A@example.com"), ("id", "c1", "c1")])
def test_an_identifier_owned_by_another_person_is_a_conflict_not_an_update(name: str, held: str, claimed: str) -> None:
    ws = Workspace()
    ws.apply_batch([identify({"phone": "+1"}, {name: held}), identify({"phone": "+2"}, {})])
    ws.apply(identify({"phone": "+2"}, {name: claimed, "plan": "pro"}))
    second, owner = ws.person(phone="+2"), ws.person(**{name: held})
    assert second is not None and name not in second.attributes and second.attributes["plan"] == "pro"
    assert owner is not None and owner.attributes["phone"] == "+1"
    [conflict] = ws.conflicts
    assert (conflict.cio_id, conflict.attribute, conflict.value) == (second.cio_id, name, claimed)
    assert conflict.owner_cio_id == owner.cio_id


def test_identifiers_in_the_body_land_on_the_one_person_without_a_conflict() -> None:
    ws = Workspace()
    ws.apply(identify({"email": "maya@example.com"}, {"plan": "free"}))
    # Spec: a new id with an email that already belongs to someone updates that someone.
    ws.apply(identify({"id": "cus_9"}, {"email": "maya@example.com", "plan": "pro"}))
    assert ws.person(id="cus_9") == ws.person(email="maya@example.com")
    ws.apply(identify({"email": "maya@example.com"}, {"id": "cus_1"}))  # an id attribute sets the identifier
    assert ws.person(id="cus_1") == ws.person(email="maya@example.com")
    ws.apply(identify({"id": "cus_1"}, {"email": "new@example.com"}))  # changing an identifier the person holds
    assert ws.person(email="new@example.com") == ws.person(id="cus_1")
    assert len(ws.people) == 1 and ws.conflicts == []


# ---- ordering ---------------------------------------------------------------------------------


ACTIVE, PENDING = {"status": "active"}, {"status": "pending"}


@pytest.mark.parametrize(
    ("ordered", "writes", "expected"),
    [  # writes: (attributes, timestamp) in arrival order
        pytest.param(
            True,
            [({**ACTIVE, "plan": "pro"}, 200), ({**PENDING, "seats": 2}, 100)],
            {**ACTIVE, "plan": "pro", "seats": 2},  # per attribute: the late op sets what the newer never wrote
            id="older-write-loses",
        ),
        pytest.param(True, [(ACTIVE, 200), ({"status": "paused"}, 200)], {"status": "paused"}, id="tie-later-wins"),
        pytest.param(True, [({"plan": None}, 300), ({"plan": "pro"}, 100)], {}, id="older-write-after-removal"),
        pytest.param(True, [({"seats": 5}, 300), ({"seats": ""}, 100)], {"seats": 5}, id="older-removal-ignored"),
        pytest.param(
            True,
            [({"plan": "pro"}, 100), ({"plan": "team"}, None), ({"plan": "free"}, 2_000_000_000)],
            {"plan": "team"},
            id="no-timestamp-is-now",
        ),
        pytest.param(
            False,
            [(ACTIVE, 200), (PENDING, 100), ({"plan": None}, 300), ({"plan": "pro"}, 100)],
            {**PENDING, "plan": "pro"},
            id="ordering-off-last-arrival-wins",
        ),
    ],
)
def test_attribute_ordering(ordered: bool, writes: list[tuple[dict[str, Any], int | None]], expected: Any) -> None:
    ws = Workspace(order_by_timestamp=ordered)
    ws.apply_batch([identify({"id": "cus_1"}, attrs, ts) for attrs, ts in writes])
    person = ws.person(id="cus_1")
    assert person is not None and dict(person.attributes) == {"id": "cus_1", **expected}


# ---- events -----------------------------------------------------------------------------------


def test_event_is_recorded_with_its_fields_and_creates_an_unknown_person() -> None:
    ws = Workspace()
    ws.apply(event({"email": "new@example.com"}, "payment.succeeded", ULID_1, amount=49.0))
    person = ws.person(email="new@example.com")
    assert person is not None
    [recorded] = ws.events(person)
    assert (recorded.name, recorded.id, recorded.timestamp) == ("payment.succeeded", ULID_1, 1_700_000_000)
    assert dict(recorded.attributes) == {"amount": 49.0}
    assert person.events == (recorded,)
    assert "amount" not in person.attributes  # event data is not profile data


def test_event_with_a_known_id_is_ignored_workspace_wide() -> None:
    ws = Workspace()
    ws.apply(event({"id": "cus_1"}, "payment.succeeded", ULID_1))
    ws.apply(event({"id": "cus_1"}, "payment.succeeded", ULID_1))  # SQS redelivery
    ws.apply(event({"id": "cus_2"}, "payment.succeeded", ULID_1))  # same id, other person
    ws.apply(event({"id": "cus_1"}, "payment.succeeded", ULID_2))
    ws.apply_batch([event({"id": "cus_1"}, "note"), event({"id": "cus_1"}, "note")])  # no id: no dedup
    cus_1 = ws.person(id="cus_1")
    assert cus_1 is not None
    assert [e.id for e in ws.events(cus_1, name="payment.succeeded")] == [ULID_1, ULID_2]
    assert len(ws.events(cus_1, name="note")) == 2
    assert ws.person(id="cus_2") is None  # the ignored event created nobody


# ---- merge ------------------------------------------------------------------------------------


def test_merge_fills_missing_attributes_moves_events_and_relationships_then_deletes_secondary() -> None:
    ws = Workspace()
    ws.apply_batch(
        [
            identify({"id": "cus_1"}, {"plan": "pro"}),
            identify({"email": "maya@example.com"}, {"plan": "free", "city": "Pune"}),
            event({"id": "cus_1"}, "first", ULID_1),
            event({"email": "maya@example.com"}, "second", ULID_2),
            obj("identify", rels=[{"identifiers": {"email": "maya@example.com"}}]),
        ]
    )
    ws.apply(merge({"id": "cus_1"}, {"email": "maya@example.com"}))
    assert len(ws.people) == 1
    merged = ws.person(id="cus_1")
    assert merged is not None and ws.person(email="maya@example.com") == merged  # the email moved over
    assert (merged.attributes["plan"], merged.attributes["city"]) == ("pro", "Pune")  # primary wins
    assert [e.name for e in ws.events(merged)] == ["first", "second"]
    assert [o.object_id for o in ws.related_objects(merged)] == ["sub_1"]
    view = ws.object("1", "sub_1")
    assert view is not None and view.people == {merged.cio_id}


# ---- objects and relationships ----------------------------------------------------------------


def test_object_identify_creates_updates_and_removes_attributes() -> None:
    ws = Workspace()
    ws.apply(obj("identify", {"status": "active", "plan": "pro"}))
    ws.apply(obj("identify", {"status": "cancelled", "plan": ""}))
    view = ws.object("1", "sub_1")
    assert view is not None and dict(view.attributes) == {"status": "cancelled"}
    assert [(o.type_id, o.object_id) for o in ws.objects] == [("1", "sub_1")]
    assert ws.object("2", "sub_1") is None


def test_object_attributes_follow_the_timestamp_rule_and_relationships_create_the_person() -> None:
    ws = Workspace()
    for ts, value in ((200, "new"), (100, "old")):
        ws.apply({**obj("identify", {"status": value}, [{"identifiers": {"id": "cus_1"}}]), "timestamp": ts})
    view, person = ws.object("1", "sub_1"), ws.person(id="cus_1")
    assert view is not None and person is not None
    assert (view.attributes["status"], view.people, person.objects) == ("new", {person.cio_id}, {("1", "sub_1")})
    assert [(o.type_id, o.object_id) for o in ws.related_objects(person)] == [("1", "sub_1")]


# ---- batches ----------------------------------------------------------------------------------


def test_a_malformed_op_in_a_batch_is_named_by_its_index() -> None:
    ws = Workspace()
    batch = [identify({"id": "cus_1"}, {}), {"type": "person", "identifiers": {}, "action": "identify"}]
    with pytest.raises(WorkspaceError, match=r"batch\[1\]: identifiers must hold exactly one"):
        ws.apply_batch(batch)


# ---- malformed ops ----------------------------------------------------------------------------

MALFORMED: dict[str, dict[str, Any]] = {
    "no identifier": identify({}, {}),
    "two identifiers": identify({"id": "cus_1", "email": "a@example.com"}, {}),
    "non-string id": {"type": "person", "identifiers": {"id": 7}, "action": "identify"},
    "empty id": identify({"id": ""}, {}),
    "unknown action": {"type": "person", "identifiers": {"id": "cus_1"}, "action": "track"},
    "unknown type": {"type": "customer", "identifiers": {"id": "cus_1"}, "action": "identify"},
    "event without name": {"type": "person", "identifiers": {"id": "cus_1"}, "action": "event"},
    "merge with identifiers": {**merge({"id": "a"}, {"id": "b"}), "identifiers": {"id": "a"}},
    "merge without secondary": {"type": "person", "action": "merge", "primary": {"id": "a"}},
    "merge by phone": merge({"phone": "+14155552671"}, {"id": "b"}),
    "relationships not a list": {**identify({"id": "a"}, {}), "cio_relationships": {"identifiers": SUB}},
    "relationship without object_id": {
        **identify({"id": "a"}, {}),
        "cio_relationships": [{"identifiers": {"object_type_id": "1"}}],
    },
    "string timestamp": identify({"id": "cus_1"}, {}, ts=None, timestamp="1700000000"),
    "boolean timestamp": identify({"id": "cus_1"}, {}, ts=None, timestamp=True),
    "attributes not an object": {"type": "person", "identifiers": {"id": "a"}, "action": "identify", "attributes": [1]},
    "object without object_id": {"type": "object", "identifiers": {"object_type_id": "1"}, "action": "identify"},
    "object relationship with two ids": obj("identify", rels=[{"identifiers": {"id": "a", "email": "a@x.io"}}]),
}
NOT_MODELED: dict[str, dict[str, Any]] = {
    "page": {"type": "person", "identifiers": {"id": "a"}, "action": "page", "name": "/pricing"},
    "delete": {"type": "person", "identifiers": {"id": "a"}, "action": "delete"},
    "add_relationships": {**obj("add_relationships", rels=[{"identifiers": {"id": "a"}}])},
    "cio_object_id": {"type": "object", "identifiers": {"cio_object_id": "ob1"}, "action": "identify"},
    "_update": identify({"id": "a"}, {"_update": True}),
    "person-side relationships": {**identify({"id": "a"}, {}), "cio_relationships": [{"identifiers": SUB}]},
    "relationship_attributes": obj(
        "identify", rels=[{"identifiers": {"id": "a"}, "relationship_attributes": {"r": 1}}]
    ),
}


@pytest.mark.parametrize("op", list(MALFORMED.values()) + list(NOT_MODELED.values()), ids=[*MALFORMED, *NOT_MODELED])
def test_malformed_or_unmodeled_ops_raise_and_change_nothing(op: dict[str, Any]) -> None:
    ws = Workspace()
    with pytest.raises(WorkspaceError):
        ws.apply(op)
    assert ws.people == [] and ws.objects == [] and ws.dropped == []


# ---- agreement with the contract schema the bridge is tested against -------------------------


@pytest.fixture(scope="module")
def contract() -> TrackV2Validator:
    return TrackV2Validator.from_path()


# Where the model is knowingly stricter than the derived schema, and why.
STRICTER = {
    # The spec text says merge takes no `identifiers`, but the schema allows extra properties.
    "merge with identifiers",
    # The contract rejects every object-side relationship item (see below), so agreeing proves nothing.
    "object relationship with two ids",
}


@pytest.mark.parametrize("name", [n for n in MALFORMED if n not in STRICTER])
def test_what_the_model_rejects_the_contract_rejects(contract: TrackV2Validator, name: str) -> None:
    assert contract.entity_errors(MALFORMED[name]), f"{name}: the model is stricter than Customer.io's schema"


def test_the_valid_shapes_used_here_pass_the_contract(contract: TrackV2Validator) -> None:
    # Object-side cio_relationships are left out: the published v2_cio_relationships oneOf has no
    # `required`, so every person identifier matches all three branches and no item can validate.
    ops = [
        identify({"id": "cus_1"}, {"plan": None}, ts=100),
        event({"id": "cus_1"}, "payment.succeeded", ULID_1, amount=49.0),
        merge({"id": "cus_1"}, {"email": "m@example.com"}),
        obj("identify", {"status": "active", "plan": ""}),
    ]
    assert {i: contract.entity_errors(op) for i, op in enumerate(ops) if contract.entity_errors(op)} == {}


# -- Pipelines calls replayed as Track ops (track_ops_of_calls) ---------------------------------------

ISO_1 = "2023-11-14T22:13:20Z"  # 1_700_000_000
ISO_2 = "2023-11-14T22:13:21Z"


def replay(*calls: dict[str, Any]) -> Workspace:
    ws = Workspace()
    ws.apply_batch(track_ops_of_calls(calls))
    return ws


def test_pipelines_identify_sets_traits_and_a_null_trait_removes_the_attribute() -> None:
    first = {"type": "identify", "userId": "cus_1", "traits": {"plan": "pro", "coupon": "X"}, "timestamp": ISO_1}
    ws = replay(first, {"type": "identify", "userId": "cus_1", "traits": {"coupon": None}, "timestamp": ISO_2})
    person = ws.person(id="cus_1")
    assert person is not None and dict(person.attributes) == {"id": "cus_1", "plan": "pro"}
    assert track_ops_of_calls([first])[0]["timestamp"] == 1_700_000_000
    # userId read as Customer.io's Journeys destination reads it: an email, cio_<id>, else an id.
    assert replay({**first, "userId": "Maya@Example.com"}).person(email="maya@example.com") is not None
    assert [op["identifiers"] for op in track_ops_of_calls([{**first, "userId": "cio_a3000001"}])] == [
        {"cio_id": "a3000001"}
    ]


def test_pipelines_track_is_an_event_keyed_by_message_id() -> None:
    call = {"type": "track", "userId": "cus_1", "event": "payment.succeeded", "messageId": ULID_1,
            "properties": {"amount": 900}, "timestamp": ISO_1}  # fmt: skip
    ws = replay(call, call, {**call, "messageId": ULID_2, "properties": {"amount": 100}})
    person = ws.person(id="cus_1")
    assert person is not None
    events = ws.events(person, "payment.succeeded")
    assert [(e.id, e.timestamp, dict(e.attributes)) for e in events] == [
        (ULID_1, 1_700_000_000, {"amount": 900}),
        (ULID_2, 1_700_000_000, {"amount": 100}),
    ]


def test_pipelines_group_is_an_object_related_to_the_user() -> None:
    traits = {"status": "active", "object_type_id": "1"}
    ws = replay({"type": "group", "userId": "maya@example.com", "groupId": "sub_1", "traits": traits})
    found, person = ws.object("1", "sub_1"), ws.person(email="maya@example.com")
    assert found is not None and person is not None
    assert dict(found.attributes) == {"status": "active"}  # the type is not an attribute
    assert found.people == {person.cio_id}


def test_a_pipelines_request_takes_its_call_type_from_the_batch_or_the_path() -> None:
    identify_call: dict[str, Any] = {"userId": "cus_1", "traits": {"plan": "pro"}}
    typed = {"type": "identify", **identify_call}
    batch = {"batch": [typed, {"type": "track", "userId": "cus_1", "event": "x"}]}
    assert [op["action"] for op in track_ops_of_request("/v1/batch", batch)] == ["identify", "event"]
    assert track_ops_of_request("/v1/identify", identify_call) == track_ops_of_calls([typed])


@pytest.mark.parametrize(
    "call",
    [
        {"type": "page", "userId": "cus_1", "name": "home"},
        {"type": "identify", "anonymousId": "anon_1", "traits": {}},
        {"type": "track", "userId": "", "event": "x"},
        {"type": "group", "userId": "u", "groupId": "g", "traits": {"relationshipAttributes": {}}},
    ],
)
def test_an_unmodeled_pipelines_call_raises(call: dict[str, Any]) -> None:
    with pytest.raises(WorkspaceError):
        track_ops_of_calls([call])
