"""The default Dodo -> Customer.io mapping, and the knobs to change it without touching the plumbing.

Each webhook becomes at most two Track v2 person operations, identify first (so that a campaign
triggered by the event sees current profile attributes), then the event:

* `identify` when the payload carries current customer or subscription state;
* `event` named after the Dodo type, stamped with the Dodo event time and a ULID derived from the
  webhook id, so a redelivery can never become a second Customer.io event.

Money goes out as major units computed with the currency's ISO 4217 exponent, with the raw
minor-unit integer and the currency code beside it. Dates go out as integer Unix seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from dodo_cio.mapping import attributes as attrs
from dodo_cio.mapping.profile import CONTACT_FIELDS, customer_profile, subscription_profile
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio.receiving import events
from dodo_cio.receiving.models import (
    Customer,
    CustomerRef,
    Dispute,
    DodoEvent,
    LicenseKey,
    Payment,
    Refund,
    Subscription,
)

Op = dict[str, Any]
Transform = Callable[[DodoEvent, list[Op]], list[Op]]
AttributeHook = Callable[[DodoEvent], Mapping[str, Any]]


class MappingConfigError(ValueError):
    """A customisation that cannot work (e.g. an unknown identifier strategy)."""


@dataclass(frozen=True, slots=True)
class IdentifierStrategy:
    """Which one identifier each op carries: Dodo customer id, email, or a metadata key."""

    kind: str = "customer_id"
    metadata_key: str | None = None

    @property
    def text(self) -> str:
        """The strategy as CUSTOMERIO_IDENTIFIER spells it."""
        return f"metadata:{self.metadata_key}" if self.kind == "metadata" else self.kind

    @classmethod
    def parse(cls, text: str | None) -> IdentifierStrategy:
        value = (text or "customer_id").strip()
        if value in ("", "customer_id", "id"):
            return cls()
        if value == "email":
            return cls(kind="email")
        if value.startswith("metadata:") and value[len("metadata:") :].strip():
            return cls(kind="metadata", metadata_key=value[len("metadata:") :].strip())
        raise MappingConfigError(f"identifier strategy {value!r} is not one of customer_id, email, metadata:<key>")

    def resolve(
        self, customer_id: str | None, email: str | None, metadata: Iterable[Mapping[str, Any]] = ()
    ) -> dict[str, str] | None:
        """The one identifier this strategy gives a customer, or None when the data at hand lacks it.

        None never means "use the customer id instead": that would create a second person in a
        workspace keyed by email or by the merchant's own user id. The caller resolves it from
        what the bridge has seen before (`dodo_cio.state.identity`) or parks the op until it can.
        """
        if self.kind == "email":
            return {"email": email.strip()} if email and email.strip() else None
        if self.kind == "metadata" and self.metadata_key:
            for source in metadata:
                value = source.get(self.metadata_key)
                if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                    return {"id": str(value).strip()}
            return None
        return {"id": customer_id} if customer_id else None


@dataclass(frozen=True)
class MappingConfig:
    """Everything a merchant may change about the mapping.

    event_names:        Dodo type -> Customer.io event name (default: the Dodo type verbatim).
    ignored_types:      Dodo types acknowledged but not sent (default: payouts, which have no customer).
    send_identify:      whether to update profile attributes at all.
    send_summary:       whether to keep and send the commercial summary (`total_spent`, ...:
                        dodo_cio.state.summary); needs the state table, and send_identify.
    extra_attributes:   Dodo type (or "*") -> function returning attributes added to the event op.
    removed_attributes: Dodo type (or "*") -> attribute names removed from every op of that type.
    transforms:         Dodo type (or "*") -> your own function (event, default ops) -> ops.
    exponents:          currency -> minor-unit exponent, overriding the ISO 4217 table.
    subscription_object_type_id:
                        when set, each subscription is a Customer.io object of this type related to
                        its person, instead of `subscription_*` attributes on the person.
    profile_metadata:   how the customer's Dodo metadata reaches the profile: "prefixed" puts each
                        key as `metadata_<key>`, "none" leaves it off the profile.
    contact_fields:     who owns the person's email, name and phone: "dodo" (the bridge sends the
                        values Dodo knows), "app" (the merchant's own app sets them; the bridge
                        leaves them alone, though an email the identifier strategy addresses the
                        person by still identifies them), or "auto" (the default): "app" under
                        `metadata:<key>`, whose person belongs to the merchant's app, else "dodo".
    """

    identifier: IdentifierStrategy = field(default_factory=IdentifierStrategy)
    event_names: Mapping[str, str] = field(default_factory=dict)
    ignored_types: frozenset[str] = events.PAYOUT_TYPES
    send_identify: bool = True
    send_summary: bool = True
    extra_attributes: Mapping[str, AttributeHook] = field(default_factory=dict)
    removed_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    transforms: Mapping[str, Transform] = field(default_factory=dict)
    exponents: Mapping[str, int] = field(default_factory=dict)
    subscription_object_type_id: str | None = None
    profile_metadata: str = "prefixed"
    contact_fields: str = "auto"

    def __post_init__(self) -> None:
        if self.contact_fields not in CONTACT_FIELDS_MODES:
            modes = ", ".join(CONTACT_FIELDS_MODES)
            raise MappingConfigError(f"contact_fields must be one of {modes}, not {self.contact_fields!r}")

    def contact_owner(self) -> str:
        """Who owns the contact fields, "dodo" or "app": `contact_fields`, "auto" decided by the strategy."""
        if self.contact_fields != "auto":
            return self.contact_fields
        return "app" if self.identifier.kind == "metadata" else "dodo"

    def contact_fields_sent(self) -> frozenset[str]:
        """Which contact fields (`profile.CONTACT_FIELDS`: email, name, phone) go on the profile.

        All of them when Dodo owns them; none when the merchant's app does, except under the
        `email` strategy, where the email is the identifier itself: it is Dodo's address the
        person is addressed by, so it is never another address the app set.
        """
        if self.contact_owner() == "dodo":
            return CONTACT_FIELDS
        return frozenset({"email"}) if self.identifier.kind == "email" else frozenset()

    def with_changes(self, **changes: Any) -> MappingConfig:
        return replace(self, **changes)

    def event_name(self, event_type: str) -> str:
        return self.event_names.get(event_type, event_type)


# ---------------------------------------------------------------------------------------------
# ops
#
# Keys starting with "_" are the bridge's own notes on an op. They travel with it (also in parked
# messages) and are stripped before anything is sent (`dodo_cio.mapping.limits.wire_op`):
#   _customer_id  the Dodo customer the op is about (identity resolution, state records)
#   _payment_id   a dispute that names only its payment: resolved to a customer through it
#   _state        the piece of state an identify carries ("customer", "subscription",
#                 "subscription:<id>"), so freshness is decided per piece, not per person
#   _timestamp    the Dodo event time of an object op (Track v2 objects have no timestamp field)
#   _contact      "email": the op waits for the customer's email (dodo_cio.state.identity); an identify
#                 gets it as its `email` attribute. Abandoned checkouts under customer_id only.
#   _recovery     on an abandoned checkout's event: the name it gets instead when the customer's
#                 newest succeeded payment is later than the checkout (dodo_cio.state.identity)
# An op without `identifiers`, or with one of the last two notes, is not resolved yet: it is
# never sent as it is.

CUSTOMER_ID: Final = "_customer_id"
PAYMENT_ID: Final = "_payment_id"
STATE: Final = "_state"
TIMESTAMP: Final = "_timestamp"
CONTACT: Final = "_contact"
RECOVERY: Final = "_recovery"
CUSTOMER_STATE: Final = "customer"
SUBSCRIPTION_STATE: Final = "subscription"
CONTACT_STATE: Final = "contact"  # the email an abandoned checkout gives its person (customer_id strategy)
ABANDONED_CHECKOUT: Final = "abandoned_checkout.detected"
# What an abandoned checkout is sent as when the customer paid after it, before it could be delivered:
# a recovery campaign triggered by `abandoned_checkout.detected` must not email a buyer. Renameable
# with `event_names` like a Dodo type.
CHECKOUT_FOLLOWED_BY_PAYMENT: Final = "abandoned_checkout.followed_by_payment"
PROFILE_METADATA_MODES: Final = ("prefixed", "none")
CONTACT_FIELDS_MODES: Final = ("auto", "dodo", "app")


def _about(op: Op, customer_id: str | None, payment_id: str | None = None) -> Op:
    """Note whom the op is about, for identity resolution and the state records."""
    if customer_id:
        op[CUSTOMER_ID] = customer_id
    elif payment_id:
        op[PAYMENT_ID] = payment_id
    return op


def event_op(event: DodoEvent, identifiers: Mapping[str, str] | None, name: str, attributes: dict[str, Any]) -> Op:
    op: Op = {"type": "person", "action": "event", "name": name}
    if identifiers:
        op["identifiers"] = dict(identifiers)
    op["id"] = deterministic_ulid(event.webhook_id, event.envelope.timestamp_ms)
    op["timestamp"] = event.envelope.timestamp
    op["attributes"] = attributes
    return op


def identify_op(event: DodoEvent, identifiers: Mapping[str, str] | None, attributes: dict[str, Any], state: str) -> Op:
    """`None` attribute values are removals: Dodo cleared the field, so Customer.io must drop it."""
    # The timestamp lets Customer.io order attribute updates by when they happened at Dodo.
    op: Op = {"type": "person", "action": "identify", "timestamp": event.envelope.timestamp}
    if identifiers:
        op["identifiers"] = dict(identifiers)
    op["attributes"] = attributes
    op[STATE] = state
    return op


def merge_op(primary: Mapping[str, str], secondary: Mapping[str, str], customer_id: str) -> Op:
    """The old person merged into the new one (Track v2 `merge`; Pipelines `alias`): no `identifiers`."""
    return {
        "type": "person",
        "action": "merge",
        "primary": dict(primary),
        "secondary": dict(secondary),
        CUSTOMER_ID: customer_id,
    }


def subscription_object_op(
    event: DodoEvent, object_type_id: str, sub: Subscription, person: Mapping[str, str] | None, state: dict[str, Any]
) -> Op:
    """The subscription as an object, related to its person (whose identifiers may come later)."""
    op: Op = {
        "type": "object",
        "identifiers": {"object_type_id": object_type_id, "object_id": sub.subscription_id},
        "action": "identify",
        "attributes": {"subscription_id": sub.subscription_id, "dodo_customer_id": sub.customer.customer_id, **state},
        "cio_relationships": [{"identifiers": dict(person)}] if person else [],
        STATE: f"{SUBSCRIPTION_STATE}:{sub.subscription_id}",
        TIMESTAMP: event.envelope.timestamp,  # object ops carry no timestamp of their own
    }
    return op


def _subject(event: DodoEvent) -> tuple[Customer | None, str | None, str | None]:
    """The customer object (when the payload has one), the customer id, and a payment to resolve through."""
    p = event.payload
    if isinstance(p, Payment | Subscription | Refund):
        return p.customer, p.customer.customer_id, None
    if isinstance(p, Dispute):
        if p.customer is not None:
            return p.customer, p.customer.customer_id, None
        return None, None, p.payment_id
    if isinstance(p, LicenseKey | CustomerRef):
        return None, p.customer_id, None
    return None, None, None


def _event_attributes(
    event: DodoEvent, exponents: Mapping[str, int], subscription: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    p = event.payload
    if isinstance(p, Payment):
        return attrs.payment_attributes(p, exponents)
    if isinstance(p, Subscription):
        return attrs.subscription_attributes(p, exponents, subscription)
    if isinstance(p, Refund):
        return attrs.refund_attributes(p, exponents)
    if isinstance(p, Dispute):
        return attrs.dispute_attributes(p, exponents)
    if isinstance(p, LicenseKey):
        return attrs.license_key_attributes(p)
    if isinstance(p, CustomerRef):
        return attrs.generic_attributes(p.raw, event.type)
    return None  # payouts: nobody to address


def payload_identifiers(event: DodoEvent, config: MappingConfig) -> dict[str, str] | None:
    """The person's identifiers as far as this payload alone tells them (None: resolve them later)."""
    customer, customer_id, _ = _subject(event)
    # The customer's own metadata first: it names the customer; a payment's or subscription's
    # metadata (from the checkout) is only a fallback.
    sources: list[Mapping[str, Any]] = [customer.metadata] if customer is not None else []
    metadata = event.payload.raw.get("metadata")
    if isinstance(metadata, dict):
        sources.append(metadata)
    email = customer.email if customer else payload_email(event.payload.raw)
    return config.identifier.resolve(customer_id, email, sources)


def payload_email(raw: Mapping[str, Any]) -> str | None:
    """An email a payload that names its customer by id may carry all the same (Dodo's samples do not)."""
    nested = raw.get("customer")
    for value in (nested.get("email") if isinstance(nested, dict) else None, raw.get("customer_email")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def wants_contact_email(config: MappingConfig, event_type: str = ABANDONED_CHECKOUT) -> bool:
    """Whether an abandoned checkout gives its person the customer's email (identify ops, `_contact`).

    Only under customer_id: under `email` the address is the identifier, and under `metadata:<key>`
    the person is the merchant's app's. Never when the deployment leaves the email to the app.
    """
    removed = config.removed_attributes.get("*", frozenset()) | config.removed_attributes.get(event_type, frozenset())
    return (
        config.identifier.kind == "customer_id"
        and config.send_identify
        and "email" in config.contact_fields_sent()
        and "email" not in removed
    )


def checkout_ops(event: DodoEvent, config: MappingConfig, customer_id: str, op: Op) -> list[Op]:
    """An abandoned checkout's event, noted for its recovery check, after the identify that gives its
    person the customer's email (from the payload, else resolved: dodo_cio.state.identity)."""
    op[RECOVERY] = config.event_name(CHECKOUT_FOLLOWED_BY_PAYMENT)
    if not wants_contact_email(config):
        return [op]
    attributes: dict[str, Any] = {"dodo_customer_id": customer_id}
    email = payload_email(event.payload.raw)
    if email:
        attributes["email"] = email
    contact = _about(identify_op(event, op.get("identifiers"), attributes, CONTACT_STATE), customer_id)
    if not email:
        contact[CONTACT] = op[CONTACT] = "email"  # the event waits for it: the campaign it starts emails
    return [contact, op]


def default_ops(event: DodoEvent, config: MappingConfig) -> list[Op]:
    """The mapping a careful Customer.io admin would write by hand; [] when nothing should be sent.

    Per webhook, in this order: the customer's profile (when the payload carries the customer),
    the subscription's state (on the profile, or as its own object), then the event.
    """
    p = event.payload
    # The subscription's state feeds both its identify and its event: worked out once.
    state = subscription_profile(p, config.exponents) if isinstance(p, Subscription) else None
    attributes = _event_attributes(event, config.exponents, state)
    if attributes is None:
        return []
    customer, customer_id, payment_id = _subject(event)
    identifiers = payload_identifiers(event, config)
    ops: list[Op] = []
    if config.send_identify and customer is not None:
        profile = customer_profile(customer, metadata=config.profile_metadata, contact=config.contact_fields_sent())
        ops.append(_about(identify_op(event, identifiers, profile, CUSTOMER_STATE), customer_id))
    if config.send_identify and isinstance(p, Subscription) and state is not None:
        if config.subscription_object_type_id:
            op = subscription_object_op(event, config.subscription_object_type_id, p, identifiers, state)
            ops.append(_about(op, customer_id))
        else:
            on_profile = {"subscription_id": p.subscription_id, **{f"subscription_{k}": v for k, v in state.items()}}
            ops.append(_about(identify_op(event, identifiers, on_profile, SUBSCRIPTION_STATE), customer_id))
    op = _about(event_op(event, identifiers, config.event_name(event.type), attributes), customer_id, payment_id)
    if event.type == ABANDONED_CHECKOUT and customer_id:
        return [*ops, *checkout_ops(event, config, customer_id, op)]
    ops.append(op)
    return ops


def map_event(event: DodoEvent, config: MappingConfig) -> list[Op]:
    """Default ops, then the merchant's extra/removed attributes and transforms, in that order."""
    if event.type in config.ignored_types:
        return []
    ops = default_ops(event, config)
    for key in ("*", event.type):
        hook = config.extra_attributes.get(key)
        if hook is not None:
            extra = dict(hook(event))
            for op in ops:
                if op["action"] == "event":
                    op["attributes"] = {**op["attributes"], **extra}
    removed = config.removed_attributes.get("*", frozenset()) | config.removed_attributes.get(event.type, frozenset())
    if removed:
        for op in ops:
            op["attributes"] = {k: v for k, v in op.get("attributes", {}).items() if k not in removed}
    for key in ("*", event.type):
        transform = config.transforms.get(key)
        if transform is not None:
            ops = list(transform(event, ops))
    # Ops a transform added get their own stable dedup id; the default event keeps the plain one.
    for index, op in enumerate(ops):
        if op.get("action") == "event" and not op.get("id"):
            op["id"] = deterministic_ulid(f"{event.webhook_id}#{index}", event.envelope.timestamp_ms)
    return ops
