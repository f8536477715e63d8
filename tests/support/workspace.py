"""An in-memory Customer.io workspace: replay the Track v2 ops the bridge sent, then assert on the end state.

Tests that push a realistic run of Dodo webhooks through the bridge care about what the workspace ends up
holding (people, attributes, events, objects, relationships), not about request bytes. An op Customer.io's
schema would reject raises `WorkspaceError`, so it fails the test instead of vanishing; ops Customer.io
accepts but does nothing with are listed in `dropped`.

[spec] = Customer.io's Track OpenAPI (v2 op schemas, v1 identify text); [assumed] = our reading.
- [spec] A person op names exactly one of id/email/cio_id/phone (a non-empty string); merge takes `primary`
  and `secondary` (id/email/cio_id) and no `identifiers`; event needs `name`. Only what the bridge sends is
  modeled (person identify/event/merge, object identify relating people from the object's side): other valid
  actions (delete, add/delete_relationships, page, devices, suppress...), `cio_object_id`, a person's own
  `cio_relationships`, `relationship_attributes` and `attributes._update` raise too, so a test never
  silently skips them.
- [spec] `email` matches case-insensitively; `cio_id` is generated on creation and never changes.
- [spec] identify creates the person. If the op's identifier matches
  nobody but the body's `id`/`email` matches someone, that person is updated and gets the op's identifier.
  An `id`/`email` attribute held by a different person is not applied and goes to `conflicts` (Customer.io
  answers 200 and logs an "Attribute Update Failure").
- [spec for objects; assumed for people] an attribute set to None or "" is removed.
- [spec] `timestamp` (integer Unix seconds) orders rapid attribute updates. [assumed] With
  `order_by_timestamp`, a write or removal is ignored when that attribute was last written by a strictly
  newer op; no timestamp means "now", newer than any; ties go to the later arrival. Objects use the same clock.
- [spec] An event whose `id` was already seen in the workspace is ignored. [assumed] No dedup window.
- [spec] merge: `primary` must exist; the secondary is deleted. [assumed] Secondary attributes fill only
  what the primary lacks; its events and relationships move over.
- [assumed] an event or an object's relationship creates an unknown person addressed by id/email/phone;
  an unknown cio_id is dropped (the spec says so for identify).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

PERSON_IDS = ("id", "email", "cio_id", "phone")
NO_PHONE_IDS = ("id", "email", "cio_id")  # what merge and v2_cio_relationships accept
NOT_MODELED = {"page", "screen", "add_device", "delete_device", "suppress", "unsuppress", "identify_anonymous"}
NOT_MODELED |= {"delete", "add_relationships", "delete_relationships"}  # valid, but the bridge never sends them
NOW = float("inf")  # the clock value of an op without a timestamp

ObjectKey = tuple[str, str]  # (object_type_id, object_id)
PersonRef = tuple[str, str]  # (identifier name, value)


class WorkspaceError(ValueError):
    """The op is malformed: Customer.io would reject it (400/207), so the test should fail loudly."""


@dataclass(frozen=True)
class Event:
    name: str
    id: str | None
    timestamp: int | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Conflict:
    """An identifier attribute Customer.io would refuse to apply ("Attribute Update Failure")."""

    cio_id: str  # the person the op addressed
    attribute: str
    value: Any
    owner_cio_id: str  # who already holds the value


@dataclass(frozen=True)
class PersonView:
    """A read-only snapshot; ask the workspace again after applying more ops."""

    cio_id: str
    attributes: Mapping[str, Any]
    events: tuple[Event, ...]
    objects: frozenset[ObjectKey]

    @property
    def identifiers(self) -> dict[str, str]:
        found = {k: self.attributes[k] for k in ("id", "email", "phone") if k in self.attributes}
        return {**found, "cio_id": self.cio_id}


@dataclass(frozen=True)
class ObjectView:
    type_id: str
    object_id: str
    attributes: Mapping[str, Any]
    people: frozenset[str]  # cio_ids of related people


@dataclass
class _Record:
    """Attributes plus, per attribute, the timestamp of the op that last wrote (or removed) it."""

    attributes: dict[str, Any] = field(default_factory=dict)
    clock: dict[str, float] = field(default_factory=dict)

    def write(self, values: Mapping[str, Any], ts: float, ordered: bool) -> None:
        for name, value in values.items():
            if ordered and self.clock.get(name, -NOW) > ts:
                continue  # a newer op already wrote this attribute
            self.clock[name] = ts  # kept after a removal too, so an older write cannot resurrect it
            if value is None or value == "":
                self.attributes.pop(name, None)
            else:
                self.attributes[name] = copy.deepcopy(value)

    def fill_from(self, other: _Record) -> None:
        for name, value in other.attributes.items():
            if name not in self.attributes:
                self.attributes[name], self.clock[name] = value, other.clock.get(name, NOW)


@dataclass
class _Person:
    cio_id: str
    record: _Record = field(default_factory=_Record)
    events: list[Event] = field(default_factory=list)


def _one_identifier(raw: Any, where: str, allowed: tuple[str, ...] = PERSON_IDS) -> PersonRef:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise WorkspaceError(f"{where} must hold exactly one of {allowed}, got {raw!r}")
    ((key, value),) = raw.items()
    if key not in allowed or not isinstance(value, str) or not value.strip():
        raise WorkspaceError(f"{where} must be one of {allowed} with a non-empty string value, got {raw!r}")
    return key, value


def _object_key(raw: Any, where: str) -> ObjectKey:
    if isinstance(raw, Mapping) and set(raw) == {"object_type_id", "object_id"}:
        type_id, object_id = raw["object_type_id"], raw["object_id"]
        if isinstance(type_id, str) and isinstance(object_id, str) and type_id and object_id:
            return (type_id, object_id)
    if isinstance(raw, Mapping) and "cio_object_id" in raw:
        raise WorkspaceError(f"{where}: cio_object_id is valid in Customer.io but not modeled here")
    raise WorkspaceError(f"{where} must be {{object_type_id, object_id}} as non-empty strings, got {raw!r}")


def _mapping(op: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = op.get(name) or {}
    if not isinstance(value, Mapping):
        raise WorkspaceError(f"{name} must be an object, got {value!r}")
    return copy.deepcopy(dict(value))


def _relationships(op: Mapping[str, Any]) -> list[PersonRef]:
    """An object's validated `cio_relationships` items, before anything changes."""
    items = op.get("cio_relationships")
    if items is None:
        return []
    if not isinstance(items, list):
        raise WorkspaceError(f"cio_relationships must be a list, got {items!r}")
    if not all(isinstance(item, Mapping) for item in items):
        raise WorkspaceError(f"each cio_relationships item must be an object, got {items!r}")
    if any("relationship_attributes" in item for item in items):
        raise WorkspaceError("relationship_attributes are valid in Customer.io but not modeled here")
    where = "cio_relationships[{}].identifiers"
    return [_one_identifier(it.get("identifiers"), where.format(i), NO_PHONE_IDS) for i, it in enumerate(items)]


def _timestamp(op: Mapping[str, Any]) -> float:
    ts = op.get("timestamp")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
        raise WorkspaceError(f"timestamp must be an integer (Unix seconds), got {ts!r}")
    return NOW if ts is None else float(ts)


class Workspace:
    """One Customer.io workspace. `apply*` change it; `person`, `people`, `object`... return snapshots."""

    def __init__(self, *, order_by_timestamp: bool = True) -> None:
        self.order_by_timestamp = order_by_timestamp
        self.conflicts: list[Conflict] = []
        self.dropped: list[tuple[str, Mapping[str, Any]]] = []  # (reason, op)
        self._people: dict[str, _Person] = {}  # by cio_id, in creation order
        self._objects: dict[ObjectKey, _Record] = {}
        self._relations: set[tuple[str, ObjectKey]] = set()  # (cio_id, object key)
        self._event_ids: set[str] = set()
        self._next_cio_id = itertools.count(0xA3000001)

    def apply_batch(self, ops: Iterable[Mapping[str, Any]]) -> None:
        for index, op in enumerate(ops):
            try:
                self.apply(op)
            except WorkspaceError as exc:
                raise WorkspaceError(f"batch[{index}]: {exc}") from exc

    def apply(self, op: Mapping[str, Any]) -> None:
        if not isinstance(op, Mapping):
            raise WorkspaceError(f"an op must be an object, got {op!r}")
        kind, action = op.get("type"), op.get("action")
        if action in NOT_MODELED:
            raise WorkspaceError(f"action {action!r} is valid in Customer.io but not modeled here")
        if kind == "person" and action == "merge":
            self._merge(op)
        elif kind == "person" and action in ("identify", "event"):
            ref = _one_identifier(op.get("identifiers"), "identifiers")
            (self._identify if action == "identify" else self._event)(op, ref, _timestamp(op))
        elif kind == "object" and action == "identify":
            self._identify_object(op, _object_key(op.get("identifiers"), "identifiers"))
        else:
            raise WorkspaceError(f"unknown type/action {kind!r}/{action!r}")

    def _identify_object(self, op: Mapping[str, Any], key: ObjectKey) -> None:
        ts, attrs = _timestamp(op), _mapping(op, "attributes")
        rels = _relationships(op)
        self._objects.setdefault(key, _Record()).write(attrs, ts, self.order_by_timestamp)
        for ref in rels:
            person = self._find_or_create(op, ref, ts)
            if person is not None:
                self._relations.add((person.cio_id, key))

    def _identify(self, op: Mapping[str, Any], ref: PersonRef, ts: float) -> None:
        attrs = _mapping(op, "attributes")
        if "cio_relationships" in op or "_update" in attrs:
            raise WorkspaceError("a person's cio_relationships or _update are valid in Customer.io but not modeled")
        person = self._find(*ref)
        if person is None and ref[0] == "cio_id":
            self.dropped.append((f"no person with cio_id {ref[1]!r}", op))
            return
        if person is None:  # nobody holds the op's identifier: an id/email in the body may name someone
            for name in ("id", "email"):
                if person is None and name != ref[0] and isinstance(attrs.get(name), str) and attrs[name]:
                    person = self._find(name, attrs[name])
            attrs = {ref[0]: ref[1], **attrs} if person is not None else attrs
        person = person or self._create(ref, ts)
        for name in [n for n in ("id", "email") if attrs.get(n) not in (None, "")]:  # removals never conflict
            value = attrs[name]
            owner = self._find(name, value) if isinstance(value, str) else None
            if owner is not None and owner is not person:
                del attrs[name]
                self.conflicts.append(Conflict(person.cio_id, name, value, owner.cio_id))
        person.record.write(attrs, ts, self.order_by_timestamp)

    def _event(self, op: Mapping[str, Any], ref: PersonRef, ts: float) -> None:
        name, event_id, attrs = op.get("name"), op.get("id"), _mapping(op, "attributes")
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(f"event needs a non-empty string name, got {name!r}")
        if event_id is not None and not isinstance(event_id, str):
            raise WorkspaceError(f"event id must be a string, got {event_id!r}")
        if event_id is not None and event_id in self._event_ids:
            return  # Customer.io ignores a repeated event id
        person = self._find_or_create(op, ref, ts)
        if person is not None:
            person.events.append(Event(name.strip(), event_id, op.get("timestamp"), MappingProxyType(attrs)))
            if event_id is not None:
                self._event_ids.add(event_id)

    def _merge(self, op: Mapping[str, Any]) -> None:
        if "identifiers" in op:
            raise WorkspaceError("merge takes primary and secondary, not identifiers")
        primary = self._find(*_one_identifier(op.get("primary"), "primary", NO_PHONE_IDS))
        secondary = self._find(*_one_identifier(op.get("secondary"), "secondary", NO_PHONE_IDS))
        if primary is None or secondary is None or primary is secondary:
            missing = "primary" if primary is None else "secondary" if secondary is None else ""
            self.dropped.append((f"{missing} does not exist" if missing else "merge of a person with itself", op))
            return
        del self._people[secondary.cio_id]  # first, so its id/email can move without a clash
        primary.record.fill_from(secondary.record)
        primary.events.extend(secondary.events)
        moved = {(cio_id, key) for cio_id, key in self._relations if cio_id == secondary.cio_id}
        self._relations = (self._relations - moved) | {(primary.cio_id, key) for _, key in moved}

    def _find(self, name: str, value: str) -> _Person | None:
        if name == "cio_id":
            return self._people.get(value)
        return next((p for p in self._people.values() if _same(name, p.record.attributes.get(name), value)), None)

    def _create(self, ref: PersonRef, ts: float) -> _Person:
        person = _Person(cio_id=f"{next(self._next_cio_id):x}")
        person.record.write({ref[0]: ref[1]}, ts, self.order_by_timestamp)
        self._people[person.cio_id] = person
        return person

    def _find_or_create(self, op: Mapping[str, Any], ref: PersonRef, ts: float) -> _Person | None:
        """[assumed] id/email/phone create the person; an unknown cio_id drops the op (or that item)."""
        person = self._find(*ref)
        if person is None and ref[0] == "cio_id":
            self.dropped.append((f"no person with cio_id {ref[1]!r}", op))
            return None
        return person or self._create(ref, ts)

    def person(
        self, *, id: str | None = None, email: str | None = None, cio_id: str | None = None, phone: str | None = None
    ) -> PersonView | None:
        """Exactly one identifier, matched the way Customer.io matches it (email case-insensitively)."""
        given = {k: v for k, v in {"id": id, "email": email, "cio_id": cio_id, "phone": phone}.items() if v is not None}
        found = self._find(*_one_identifier(given, "person()"))
        return None if found is None else self._person_view(found)

    @property
    def people(self) -> list[PersonView]:
        return [self._person_view(p) for p in self._people.values()]

    def object(self, type_id: str, object_id: str) -> ObjectView | None:
        return self._object_view((type_id, object_id)) if (type_id, object_id) in self._objects else None

    @property
    def objects(self) -> list[ObjectView]:
        return [self._object_view(key) for key in self._objects]

    def related_objects(self, person: PersonView) -> list[ObjectView]:
        return [self._object_view(key) for cio_id, key in self._relations if cio_id == person.cio_id]

    def events(self, person: PersonView, name: str | None = None) -> list[Event]:
        """The person's events in arrival order (after a merge: the primary's, then the secondary's)."""
        found = self._people.get(person.cio_id)
        return [e for e in (found.events if found else []) if name is None or e.name == name]

    def _person_view(self, person: _Person) -> PersonView:
        keys = frozenset(key for cio_id, key in self._relations if cio_id == person.cio_id)
        attrs = MappingProxyType(copy.deepcopy(person.record.attributes))
        return PersonView(person.cio_id, attrs, tuple(person.events), keys)

    def _object_view(self, key: ObjectKey) -> ObjectView:
        people = frozenset(cio_id for cio_id, k in self._relations if k == key)
        return ObjectView(key[0], key[1], MappingProxyType(copy.deepcopy(self._objects[key].attributes)), people)


def _same(name: str, held: Any, value: Any) -> bool:
    """Identifier equality: email is case-insensitive in Customer.io, the others are exact."""
    if name == "email" and isinstance(held, str) and isinstance(value, str):
        return held.casefold() == value.casefold()
    return held is not None and held == value


# -- Pipelines calls, said as the Track ops the model replays ------------------------------------------


def _pipelines_person(user_id: Any) -> dict[str, str]:
    """`userId` as the person Customer.io's Journeys destination reads it: an email, `cio_<id>`, else `id`."""
    if not isinstance(user_id, str) or not user_id:
        raise WorkspaceError(f"a Pipelines call needs a non-empty userId, got {user_id!r}")
    if user_id.startswith("cio_"):
        return {"cio_id": user_id.removeprefix("cio_")}
    return {"email": user_id} if "@" in user_id else {"id": user_id}


def _pipelines_seconds(call: Mapping[str, Any]) -> dict[str, int]:
    raw = call.get("timestamp")
    if raw is None:
        return {}
    from datetime import datetime

    return {"timestamp": int(datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp())}


def track_op_of_call(call: Mapping[str, Any], kind: str | None = None) -> dict[str, Any]:
    """One Pipelines call (its `type`, or `kind` from the endpoint's path) as the Track v2 op it stands for.

    identify -> person identify (`traits` as attributes, a null trait removes it); track -> person event
    (`messageId` as the event id, which the model deduplicates on); group -> object identify with one
    relationship to `userId` (`traits.object_type_id` taken out of the traits).
    """
    kind = str(call.get("type") or kind)
    when = _pipelines_seconds(call)
    if kind == "identify":
        return {"type": "person", "action": "identify", "identifiers": _pipelines_person(call.get("userId")),
                "attributes": _mapping(call, "traits"), **when}  # fmt: skip
    if kind == "track":
        return {"type": "person", "action": "event", "identifiers": _pipelines_person(call.get("userId")),
                "name": call.get("event"), "id": call.get("messageId"),
                "attributes": _mapping(call, "properties"), **when}  # fmt: skip
    if kind == "group":
        traits = _mapping(call, "traits")
        type_id = traits.pop("object_type_id", None)
        if "relationshipAttributes" in traits:
            raise WorkspaceError("relationshipAttributes are valid in Pipelines but not modeled here")
        relationship = {"identifiers": _pipelines_person(call.get("userId"))}
        return {"type": "object", "action": "identify",
                "identifiers": {"object_type_id": type_id, "object_id": call.get("groupId")},
                "attributes": traits, "cio_relationships": [relationship], **when}  # fmt: skip
    if kind == "alias":  # Customer.io's Journeys destination merges on an alias, as Track's merge
        return {"type": "person", "action": "merge", "primary": _pipelines_person(call.get("userId")),
                "secondary": _pipelines_person(call.get("previousId"))}  # fmt: skip
    raise WorkspaceError(f"Pipelines call type {kind!r} is not modeled here")


def track_ops_of_calls(calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`sandbox.accepted_calls()` (each with its `type`) as Track ops, in order: what `apply_batch` takes."""
    return [track_op_of_call(call) for call in calls]


def track_ops_of_request(path: str, body: Any) -> list[dict[str, Any]]:
    """The calls of one recorded Pipelines request (`/v1/batch` or one call's own endpoint) as Track ops."""
    if not isinstance(body, Mapping):
        return []
    if path.endswith("/batch"):
        batch = body.get("batch")
        return [track_op_of_call(c) for c in batch if isinstance(c, Mapping)] if isinstance(batch, list) else []
    return [track_op_of_call(body, path.rsplit("/", 1)[-1])]


def use_pipelines(bridge: Any, monkeypatch: Any) -> None:
    """Deploy the in-process bridge (tests/integration/conftest.py) with CustomerioApi=pipelines: the sandbox's
    /v1 and its key in SSM; the Track credentials removed (a Pipelines deployment neither needs nor reads them)."""
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    monkeypatch.setenv("CUSTOMERIO_PIPELINES_URL", bridge.sandbox.pipelines_url)
    from support.aws import SSM_PATH as path

    bridge.ssm.put_parameter(
        Name=f"{path}/customerio-pipelines-api-key", Value=bridge.sandbox.pipelines_key, Type="SecureString"
    )
    for track_only in ("customerio-site-id", "customerio-api-key"):
        bridge.ssm.delete_parameter(Name=f"{path}/{track_only}")
