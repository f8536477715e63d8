"""The sample bodies in events/dodo/ checked field by field against Dodo's SDK models, which also fill them in.

Why this and not a generator: the bodies are what users open and what the tests assert exact values
on, so their values live in the files and are edited there. Their shape (which fields, how nested,
which types) is Dodo's, and Dodo publishes it as the pydantic models of its Python SDK (`dodopayments`,
a pinned dev dependency). Walking those models, instead of writing shapes out here, makes a new SDK
release that adds a field a failing check rather than a silent gap, and lets a new body be written
as only the values that matter:

    .venv/bin/python -m dodo_cio_testdata.sample_bodies           # fill in what the SDK declares, then check
    .venv/bin/python -m dodo_cio_testdata.sample_bodies --check   # only report (what the unit tests run)

`make events` runs the first, then re-signs events/apigw/. The rules, for every body:

* envelope: exactly the fields of the SDK's webhook model for its `type` (business_id, type, timestamp,
  data), and the whole body validates against that model in strict mode (types, enums, required fields);
* every object at any depth has every field its SDK model declares and no other (except EXTRA_FIELDS).
  An Optional field must be present too, null when unset, because that is how Dodo sends it; a
  non-null value is checked as the inner type. List items are each checked; dict keys (metadata) are
  free. A value of a Union of several types is checked as the first member it validates as, as
  pydantic picks it (in SDK 1.123.0 the only such unions are metadata scalars);
* a null or an empty list holds no object to check, so the SDK models that no body carries are listed
  in UNCARRIED: the check fails when that list is wrong, e.g. when the SDK adds a nested model;
* each type in dodo_cio.receiving.events has a body (in ignored/ for types the default mapping drops), and Dodo's
  SDK knows exactly those types;
* a customer is the same object in every body that carries it, and a body naming only a customer_id
  names one of them, so the bodies keep telling the consistent stories events/README.md describes.

Filling (the default run) adds each missing declared field: null where the SDK allows it (what Dodo
sends), [] / {} for lists and maps, the plainest value of its type otherwise (printed, to review).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

from dodopayments.types import CustomerLimitedDetails, UnwrapWebhookEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

from dodo_cio.mapping.mapper import MappingConfig
from dodo_cio.receiving import events

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BODIES_DIR: Final = REPO_ROOT / "events" / "dodo"
IGNORED: Final = "ignored"  # events/dodo/ignored/: types the default mapping acknowledges and drops

Doc = dict[str, Any]
Model = type[BaseModel]

# Fields Dodo's example payloads carry in `data` beyond the SDK's per-event models, with their types:
# payload_type everywhere (the schemas dropped it in OpenAPI 1.70), and a customer and reason on disputes.
# Optional: Dodo documents no payload_type for payouts, recovery, dunning or entitlement payloads.
_PAYLOAD_TYPE: Final[dict[str, Any]] = {"payload_type": str}
EXTRA_FIELDS: Final[dict[str, dict[str, Any]]] = {
    events.DISPUTE: {**_PAYLOAD_TYPE, "customer": CustomerLimitedDetails, "reason": str},
}

# SDK models that no body carries an instance of (only null or []), so their fields go unchecked.
# `module.Class`; the check fails when this differs from what the bodies leave out.
UNCARRIED: Final = frozenset(
    {
        "addon_cart_response_item.AddonCartResponseItem",
        "credit_entitlement_cart_response.CreditEntitlementCartResponse",
        "custom_field_response.CustomFieldResponse",
        "digital_product_delivery.DigitalProductDelivery",
        "digital_product_delivery_file.DigitalProductDeliveryFile",
        "discount_detail.DiscountDetail",
        "feature.Feature",
        "license_key_grant.LicenseKeyGrant",
        "meter_cart_response_item.MeterCartResponseItem",
        "meter_credit_entitlement_cart_response.MeterCreditEntitlementCartResponse",
        "refund_list_item.RefundListItem",
        "scheduled_plan_change.Addon",
        "scheduled_plan_change.ScheduledPlanChange",
        "subscription_service_period.SubscriptionServicePeriod",
    }
)


@cache
def event_models() -> dict[str, Model]:
    """Event type -> the SDK's webhook model, read off the `type` literal of each UnwrapWebhookEvent member."""
    union = typing.get_args(UnwrapWebhookEvent)[0]  # Annotated[Union[...], discriminator]
    members: tuple[Model, ...] = typing.get_args(union)
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}


def model_name(model: Model) -> str:
    """`module.Class`: every subscription event has its own class named `Data`, so the module tells them apart."""
    return f"{model.__module__.rsplit('.', 1)[-1]}.{model.__qualname__}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _strip(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """(origin, args) with Annotated unwrapped; a plain class is its own origin."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_origin(tp) or tp, typing.get_args(tp)


def _validates(value: Any, tp: Any) -> bool:
    try:
        TypeAdapter(tp).validate_json(json.dumps(value), strict=True)
    except ValidationError:
        return False
    return True


def reachable(model: Model, found: set[Model] | None = None) -> set[Model]:
    """Every SDK model a body of `model` may hold at any depth (`model` included)."""
    found = set() if found is None else found
    pending: list[Any] = [model]
    while pending:
        origin, args = _strip(pending.pop())
        if _is_model(origin) and origin not in found:
            found.add(origin)
            pending.extend(f.annotation for f in origin.model_fields.values())
        elif origin is not typing.Literal:
            pending.extend(args)
    return found


def blank(tp: Any, name: str, now: str) -> Any:
    """The value `fill` gives a declared field a body lacks: null if allowed, else the plainest of its type."""
    origin, args = _strip(tp)
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else blank(args[0], name, now)
    if _is_model(origin):
        return {n: blank(f.annotation, n, now) for n, f in origin.model_fields.items()}
    plain: dict[Any, Any] = {list: [], dict: {}, bool: False, int: 0, float: 0.0, dt.datetime: now}
    if origin is typing.Literal:
        return args[0]
    return plain.get(origin, f"sample_{name}")


@dataclass
class Walk:
    """One pass over a body: what is missing, unknown or filled, and which SDK models it carries."""

    now: str = ""  # the envelope timestamp, the value a filled datetime gets
    fill: bool = False
    data_extras: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    carried: set[Model] = field(default_factory=set)

    def value(self, value: Any, tp: Any, path: str, extras: dict[str, Any] | None = None) -> None:
        origin, args = _strip(tp)
        if value is None:  # allowed or not, the strict validation of the whole body says
            return
        if _is_model(origin):
            self.obj(value, origin, path, extras)
        elif origin is list and isinstance(value, list):
            for i, item in enumerate(value):
                self.value(item, args[0], f"{path}[{i}]")
        elif origin is dict and isinstance(value, dict):
            for key, item in value.items():
                self.value(item, args[1], _join(path, key))
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in args if a is not type(None)]
            if len(members) > 1:  # the one it validates as; none: the strict validation reports the value
                members = [a for a in members if _validates(value, a)]
            if members:
                self.value(value, members[0], path)

    def obj(self, value: Any, model: Model, path: str, extras: dict[str, Any] | None = None) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: not an object ({model.__name__})")
            return
        self.carried.add(model)
        declared = model.model_fields
        for name, info in declared.items():
            if name in value:  # `data`, the payload, is where Dodo's examples add fields
                extras_here = self.data_extras if not path and name == "data" else None
                self.value(value[name], info.annotation, _join(path, name), extras_here)
            elif self.fill:
                value[name] = blank(info.annotation, name, self.now)
                self.filled.append(f"{_join(path, name)} = {json.dumps(value[name], ensure_ascii=False)}")
            else:
                self.problems.append(f"{_join(path, name)}: missing ({model.__name__} declares it)")
        for name in sorted(value.keys() - declared.keys()):
            extra = (extras or {}).get(name)
            if extra is None:
                self.problems.append(f"{_join(path, name)}: not a field of {model.__name__}")
                continue
            self.value(value[name], extra, _join(path, name))
            if not _validates(value[name], extra):  # the SDK's validation does not look at fields it lacks
                self.problems.append(f"{_join(path, name)}: not a valid {getattr(extra, '__name__', extra)}")


def walk(doc: Doc, *, fill: bool = False) -> Walk:
    """Check (or, with `fill`, complete in place) one webhook body against the SDK model of its type."""
    now, event_type = doc.get("timestamp"), str(doc.get("type"))
    extras = EXTRA_FIELDS.get(events.family(event_type) or "", _PAYLOAD_TYPE)
    result = Walk(now=now if isinstance(now, str) else "", fill=fill, data_extras=extras)
    model = event_models().get(event_type)
    if model is None:
        result.problems.append(f"type: {event_type!r} is not a webhook type of Dodo's SDK")
        return result
    result.obj(doc, model, "")
    try:
        model.model_validate_json(json.dumps(doc), strict=True)
    except ValidationError as err:
        result.problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
    return result


def catalogue_problems(sdk_types: Iterable[str], known: frozenset[str]) -> list[str]:
    """Types Dodo's SDK and dodo_cio.receiving.events disagree on: a new SDK type needs a family (and a body)."""
    sdk = set(sdk_types)
    return [f"{t}: a webhook type in Dodo's SDK, not in dodo_cio.receiving.events" for t in sorted(sdk - known)] + [
        f"{t}: in dodo_cio.receiving.events, not a webhook type in Dodo's SDK" for t in sorted(known - sdk)
    ]


def story_problems(docs: dict[str, Doc]) -> list[str]:
    """A customer carried in full is the same in every body; a bare customer_id names one of them."""
    customers: dict[str, tuple[str, Any]] = {}
    problems = []
    payloads = {name: doc["data"] for name, doc in docs.items() if isinstance(doc.get("data"), dict)}
    for name, data in payloads.items():
        customer = data.get("customer")
        if isinstance(customer, dict):
            first, known = customers.setdefault(str(customer.get("customer_id")), (name, customer))
            if known != customer:
                problems.append(f"{name}: customer {customer.get('customer_id')} differs from the one in {first}")
    for name, data in payloads.items():
        customer_id = data.get("customer_id")
        if customer_id is not None and customer_id not in customers:
            problems.append(f"{name}: customer_id {customer_id} is no customer any body carries")
    return problems


def body_files(bodies: Path) -> list[Path]:
    return sorted([*bodies.glob("*.json"), *(bodies / IGNORED).glob("*.json")])


def coverage_problems(bodies: Path, docs: dict[str, Doc]) -> list[str]:
    """Each known type has a body, in ignored/ exactly when the default mapping drops it."""
    ignored = MappingConfig().ignored_types
    where = {(p.parent.name == IGNORED, docs[str(p.relative_to(bodies))].get("type")) for p in body_files(bodies)}
    return [
        f"no body: {t}" + (f" (in {IGNORED}/)" if t in ignored else "")
        for t in sorted(events.ALL_TYPES)
        if (t in ignored, t) not in where
    ]


def check(bodies: Path, *, fill: bool = False) -> tuple[list[str], dict[Path, Doc], list[str]]:
    """(problems, bodies that `fill` changed, what it filled) for every body under `bodies`."""
    docs: dict[str, Doc] = {}
    problems: list[str] = []
    changed: dict[Path, Doc] = {}
    filled: list[str] = []
    carried: set[Model] = set()
    for path in body_files(bodies):
        name = str(path.relative_to(bodies))
        docs[name] = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(docs[name], dict):
            problems.append(f"{name}: not a JSON object")
            docs[name] = {}
            continue
        result = walk(docs[name], fill=fill)
        problems += [f"{name}: {p}" for p in result.problems]
        filled += [f"{name}: {f}" for f in result.filled]
        carried |= result.carried
        if result.filled:
            changed[path] = docs[name]
    problems += catalogue_problems(event_models(), events.ALL_TYPES)
    problems += coverage_problems(bodies, docs)
    problems += story_problems(docs)
    possible: set[Model] = set()
    for doc in docs.values():
        if doc.get("type") in event_models():
            reachable(event_models()[doc["type"]], possible)
    uncarried = {model_name(m) for m in possible - carried}
    problems += [f"no body carries {m} (add one, or add it to UNCARRIED)" for m in sorted(uncarried - UNCARRIED)]
    problems += [f"{m} is carried now: take it out of UNCARRIED" for m in sorted(UNCARRIED - uncarried)]
    return problems, changed, filled


def render(doc: Doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dodo_cio_testdata.sample_bodies", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report; exit 1 on any problem")
    parser.add_argument("--bodies", type=Path, default=BODIES_DIR)
    args = parser.parse_args(argv)

    if not body_files(args.bodies):
        print(f"no *.json bodies in {args.bodies}", file=sys.stderr)
        return 2
    problems, changed, filled = check(args.bodies, fill=not args.check)
    for line in filled:
        print(f"filled {line}")
    for path, doc in changed.items():
        path.write_text(render(doc), encoding="utf-8")
        print(f"wrote {path}")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
