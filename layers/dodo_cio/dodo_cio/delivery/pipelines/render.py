"""The mapping's ops, said as Data Pipelines calls: one mapping, two renderings.

The mapping (dodo_cio.mapping.mapper) decides what to say, as Track v2 shaped ops; this module decides how
the Pipelines API says it. Each op becomes exactly one call, so one op's fate is one call's fate:

* person `identify` -> `identify`: `userId`, `traits` (the op's attributes) and `timestamp`;
* person `event` -> `track`: `userId`, `event` (the op's name), `properties` (its attributes),
  `messageId` (its ULID `id`, derived from the webhook id, so a redelivery repeats it) and
  `timestamp`;
* person `merge` (an email change: dodo_cio.ingest.service) -> `alias`: `userId` the primary, `previousId`
  the secondary; Customer.io's Journeys destination merges the two people on an alias, as Track's
  merge does. `/batch` does not take it, so the client sends it to `/alias` on its own;
* object `identify` (a subscription, when CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID is set) ->
  `group`: `groupId` = the object id (the Dodo subscription id), `traits` = the object's
  attributes plus `object_type_id`, `userId` = the related person, and `relationshipAttributes`
  when the relationship carries attributes.

Timestamps are ISO-8601 in UTC and equal to the Dodo event time: the op's Unix seconds, with the
milliseconds an event's ULID carries when they agree with those seconds (the mapping stamps both
from the same Dodo time), so a track call keeps the sub-second order and an identify, which has no
ULID, falls on the whole second before it. Attribute removals (null values) stay null.

Identity, one rule for every strategy: the op's one identifier becomes `userId`.

* customer_id and metadata:<key> -> `{"id": v}` -> `userId` v.
* email -> `{"email": v}` -> `userId` v, the address itself. Pipelines needs a `userId` or an
  `anonymousId` on a `track` call; its spec lets an `identify` go by `traits.email` with an empty
  `userId`, but offers nothing of the kind for `track` or `group`, and an `anonymousId` would make
  each customer an anonymous profile to be merged later. Customer.io's Journeys destination reads
  a `userId` that is an email address as the `email` identifier (its `resolveIdentifiers`: an
  email-looking person id becomes `{email}`, `cio_<id>` becomes `{cio_id}`, anything else `{id}`),
  so the person is the one Track's `{"email": v}` addresses, on every call type alike.
* `{"cio_id": v}` (a transform may address a person so) -> `userId` `cio_<v>`, by the same rule.

The flip side of that rule: under customer_id or metadata, a value that looks like an email
address or starts with `cio_` would be read as one; Dodo customer ids (`cus_...`) never do, and a
merchant's own user ids are expected not to.

What Pipelines cannot say (a Track-only action such as `delete` or `add_device`, a phone
identifier, an op without identifiers, an object related to no person or to several: the spec's
`/batch` requires a `group` to name its person, and a call relates one) is a `RenderError`: the
client reports that op as a permanent failure with the reason, it is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dodo_cio.mapping.mapper import TIMESTAMP
from dodo_cio.platform.ulid import is_ulid, ulid_time_ms

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PERSON_ACTIONS: Final = {"identify": "identify", "event": "track"}


class RenderError(ValueError):
    """The op has no Pipelines equivalent; the message says why (it becomes the op's failure reason)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One Pipelines call: its type (the endpoint `/identify`, `/track`, `/group`) and its body.

    `body` carries no `type`: the endpoint sets it on a direct call, and `batch_item` adds it
    for `/batch`, where each call must say what it is.
    """

    type: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/{self.type}"

    def batch_item(self) -> dict[str, Any]:
        return {"type": self.type, **self.body}


def iso_time(ms: int) -> str:
    """`2026-09-03T14:06:41Z`, or `2026-09-03T14:06:41.905Z` when there are milliseconds."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def user_id(identifiers: object, whose: str = "op") -> str:
    """The `userId` for a person's Track identifiers (the rule in the module docstring)."""
    if not isinstance(identifiers, Mapping) or len(identifiers) != 1:
        raise RenderError(f"Pipelines needs exactly one person identifier for the {whose}, not {identifiers!r}")
    ((kind, value),) = identifiers.items()
    if not isinstance(value, str) or not value.strip():
        raise RenderError(f"the {whose}'s identifier {kind!r} is empty or not text")
    if kind in ("id", "email"):
        return value
    if kind == "cio_id":
        return f"cio_{value}"
    raise RenderError(f"the Pipelines API cannot address a person by {kind!r} (only id, email, cio_id)")


def _seconds(op: Mapping[str, Any], key: str) -> int | None:
    value = op.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RenderError(f"{key} must be whole Unix seconds, not {value!r}")
    return value


def _timestamp(op: Mapping[str, Any], key: str = "timestamp") -> dict[str, str]:
    """`{"timestamp": iso}` from the op's seconds (with the ULID's milliseconds when they agree), or {}."""
    seconds = _seconds(op, key)
    if seconds is None:
        return {}
    ms = seconds * 1000
    event_id = op.get("id")
    if isinstance(event_id, str) and is_ulid(event_id) and ulid_time_ms(event_id) // 1000 == seconds:
        ms = ulid_time_ms(event_id)
    return {"timestamp": iso_time(ms)}


def _attributes(op: Mapping[str, Any]) -> dict[str, Any]:
    attributes = op.get("attributes", {})
    if not isinstance(attributes, Mapping):
        raise RenderError(f"attributes must be an object, not {type(attributes).__name__}")
    return dict(attributes)


def _person(op: Mapping[str, Any], action: str) -> Call:
    body: dict[str, Any] = {"userId": user_id(op.get("identifiers"))}
    if action == "identify":
        return Call("identify", {**body, "traits": _attributes(op), **_timestamp(op)})
    name = op.get("name")
    if not isinstance(name, str) or not name:
        raise RenderError("an event op needs a name")
    body |= {"event": name, "properties": _attributes(op)}
    event_id = op.get("id")
    if event_id is not None:
        if not isinstance(event_id, str) or not event_id:
            raise RenderError(f"an event id must be text, not {event_id!r}")
        body["messageId"] = event_id
    return Call("track", {**body, **_timestamp(op)})


def _group(op: Mapping[str, Any]) -> Call:
    identifiers = op.get("identifiers")
    if not isinstance(identifiers, Mapping) or set(identifiers) != {"object_type_id", "object_id"}:
        raise RenderError(f"Pipelines addresses an object by object_type_id and object_id only, not {identifiers!r}")
    type_id, object_id = str(identifiers["object_type_id"]), identifiers["object_id"]
    if not isinstance(object_id, str) or not object_id or not type_id.isdigit():
        raise RenderError(f"object identifiers {identifiers!r} are not an object id and a type number")
    traits = {**_attributes(op), "object_type_id": type_id}
    body: dict[str, Any] = {"groupId": object_id}
    relationships = op.get("cio_relationships")
    if not isinstance(relationships, list) or len(relationships) != 1 or not isinstance(relationships[0], Mapping):
        count = len(relationships) if isinstance(relationships, list) else 0
        raise RenderError(f"a Pipelines group call relates exactly one person; this object op relates {count}")
    body["userId"] = user_id(relationships[0].get("identifiers"), "related person")
    extra = relationships[0].get("relationship_attributes")
    if extra:
        traits["relationshipAttributes"] = dict(extra)
    return Call("group", {**body, "traits": traits, **_timestamp(op, TIMESTAMP)})


def render(op: Mapping[str, Any]) -> Call:
    """The one Pipelines call that says what `op` says; RenderError when there is none."""
    kind, action = op.get("type"), op.get("action")
    if kind == "person" and isinstance(action, str) and action in _PERSON_ACTIONS:
        return _person(op, action)
    if kind == "object" and action == "identify":
        return _group(op)
    if kind == "person" and action == "merge":
        primary = user_id(op.get("primary"), "merge's primary")
        return Call("alias", {"userId": primary, "previousId": user_id(op.get("secondary"), "merge's secondary")})
    raise RenderError(f"the Pipelines API has no call for a {kind} {action!r} op (Track only)")
