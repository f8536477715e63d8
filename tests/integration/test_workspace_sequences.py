"""What a Customer.io workspace ends up holding after realistic sequences of Dodo webhooks.

Each sequence goes through the real ingest handler (moto for AWS, the local sandbox for Customer.io),
parked deliveries are drained by the real retry handler, and everything the sandbox accepted (on
Pipelines: its calls, said as Track ops) is replayed in order into `support.workspace`. The assertions
are what a marketer sees, under each identifier strategy, both subscription modes, both APIs, and with
the model ordering updates by timestamp or not (Customer.io does not promise to drop a late older one).
Bodies start from the samples in `events/dodo/` (shaped like `dodopayments` 1.123.0).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.destination import APIS, PIPELINES, TRACK
from dodo_cio_local.event_source import SqsEventSource
from dodo_cio_local.handler_modules import load_retry_module
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.pipelines_v1 import is_pipelines_path
from support.workspace import PersonView, Workspace, track_ops_of_calls, use_pipelines

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "dodo"
CUSTOMER = {
    "customer_id": "cus_maya",
    "email": "maya@example.com",
    "name": "Maya Fernandes",
    "phone_number": None,
    "metadata": {"app_user_id": "user-42"},
}
IDENTIFIERS = {
    "customer_id": {"id": "cus_maya"},
    "email": {"email": "maya@example.com"},
    "metadata:app_user_id": {"id": "user-42"},
}
# The email the bridge puts on the person (CustomerioContactFields=auto): under metadata:<key> the merchant's
# app owns the person and its email, so the checkout's address is not sent (unit: test_contact_fields).
EMAIL_SENT = {"customer_id": "maya@example.com", "email": "maya@example.com", "metadata:app_user_id": None}
OBJECT_TYPE = "3"
T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
DAY = 86400
_ids = itertools.count(1)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    bridge: Any
    retry: SqsEventSource
    strategy: str
    object_type: str | None
    api: str = TRACK

    # -- Dodo's side ----------------------------------------------------------------------------

    def body(self, event_type: str, at: int, **data: Any) -> bytes:
        sample = SAMPLES / f"{event_type}.json"
        if not sample.exists():
            sample = next(SAMPLES.glob(f"{event_type.split('.', maxsplit=1)[0]}.*.json"))
        doc = json.loads(sample.read_text())
        doc["type"], doc["timestamp"] = event_type, iso(at)
        payload = doc["data"]
        if "customer" in payload or event_type.startswith(("payment.", "subscription.", "refund.")):
            payload["customer"] = copy.deepcopy(CUSTOMER)
        elif "customer_id" in payload:
            payload["customer_id"] = CUSTOMER["customer_id"]
        payload.update(data)
        return json.dumps(doc).encode()

    def send(self, event_type: str, at: int, **data: Any) -> int:
        webhook_id = f"msg_seq_{next(_ids)}"
        status, _ = self.bridge.send(self.body(event_type, at, **data), webhook_id=webhook_id, timestamp=None)
        assert status in (200, 202), (event_type, status)
        return status

    def drain(self) -> None:
        self.retry.drain(max_polls=10)

    def use_dodo_api(self, dodo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Deploy with a dodo-api-key, Maya known to the Dodo API stand-in `dodo`."""
        from support.aws import SSM_PATH

        dodo.add_customer({**copy.deepcopy(CUSTOMER), "created_at": iso(T0 - DAY), "business_id": "bus_1"})
        monkeypatch.setenv("DODO_API_URL", dodo.base_url)
        monkeypatch.setattr(self.bridge.app, "_service", None)  # both functions built again with the URL
        paced_retry_service(monkeypatch)
        ssm = self.bridge.ssm
        ssm.put_parameter(Name=f"{SSM_PATH}/dodo-api-key", Value=dodo.api_key, Type="SecureString", Overwrite=True)

    # -- Customer.io's side ---------------------------------------------------------------------

    def accepted_ops(self) -> list[dict[str, Any]]:
        """Every op Customer.io accepted, as Track ops in arrival order: the Track requests (all of them on a
        Track deployment; on a Pipelines one only a backfill's, which comes first), then the Pipelines calls."""
        sandbox = self.bridge.sandbox
        ops = []
        for request in sandbox.requests:
            if not 200 <= request.status < 300 or is_pipelines_path(request.path):
                continue
            rejected = {e["batch_index"] for e in (request.response or {}).get("errors", [])}
            assert not rejected, f"Customer.io rejected ops: {request.response}"
            ops.extend(request.json.get("batch", [request.json]))
        if self.api == PIPELINES:
            assert sandbox.dropped_calls() == [], "Customer.io dropped Pipelines calls"
            ops.extend(track_ops_of_calls(sandbox.accepted_calls()))
        else:
            assert sandbox.accepted_calls() == [], "a Track deployment sent Pipelines calls"
        return ops

    def workspace(self, *, ordered: bool = True) -> Workspace:
        ws = Workspace(order_by_timestamp=ordered)
        ws.apply_batch(self.accepted_ops())
        assert self.bridge.dead_lettered() == [], "nothing may reach the DLQ in these sequences"
        return ws

    def person(self, ws: Workspace) -> PersonView:
        assert len(ws.people) == 1, f"expected one person, found {[p.identifiers for p in ws.people]}"
        person = ws.person(**IDENTIFIERS[self.strategy])
        assert person is not None
        return person

    def subscription(self, ws: Workspace, subscription_id: str) -> dict[str, Any]:
        """The subscription's attributes as a marketer reads them, in either mode."""
        person = self.person(ws)
        if self.object_type is None:
            attrs = dict(person.attributes)
            assert attrs.get("subscription_id") == subscription_id
            return {k.removeprefix("subscription_"): v for k, v in attrs.items() if k.startswith("subscription_")}
        obj = ws.object(self.object_type, subscription_id)
        assert obj is not None, f"no object for {subscription_id}"
        assert (self.object_type, subscription_id) in person.objects
        return dict(obj.attributes)


def paced_retry_service(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The retry function's service built afresh from the environment, its backoff one second with no jitter."""
    module = load_retry_module()
    monkeypatch.setattr(module, "_service", None)
    service = module.service()
    service.policy = BackoffPolicy(base=1, cap=1)
    service.rng = lambda: 0.0
    return service


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest, bridge: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every sequence on both APIs: the bridge deployed with CustomerioApi=track, then =pipelines."""
    if request.param == PIPELINES:
        use_pipelines(bridge, monkeypatch)
    return str(request.param)


@pytest.fixture(
    params=[
        pytest.param((strategy, mode), id=f"{strategy}-{'objects' if mode else 'profile'}")
        for strategy in IDENTIFIERS
        for mode in (None, OBJECT_TYPE)
    ]
)
def world(bridge: Any, api: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[World]:
    strategy, mode = request.param
    monkeypatch.setenv("CUSTOMERIO_IDENTIFIER", strategy)
    if mode:
        monkeypatch.setenv("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", mode)
    else:
        monkeypatch.delenv("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", raising=False)
    assert paced_retry_service(monkeypatch).settings.customerio_api == api
    source = SqsEventSource(
        bridge.sqs,
        bridge.queue_url,
        load_retry_module().lambda_handler,
        context_factory=lambda: FakeLambdaContext(function_name="dodo-customerio-retry"),
    )
    yield World(bridge, source, strategy, mode, api)


def both_orderings(world: World) -> list[Workspace]:
    return [world.workspace(ordered=True), world.workspace(ordered=False)]


# -- sequences ------------------------------------------------------------------------------------


def test_renewal_with_the_payment_stamped_later_keeps_the_new_billing_date(world: World) -> None:
    old_next, new_next = T0 + 30 * DAY, T0 + 60 * DAY
    world.send("subscription.active", T0, subscription_id="sub_1", next_billing_date=iso(old_next))
    # The renewal: Dodo stamps the payment a second after the subscription event, and sends it first.
    world.send("payment.succeeded", T0 + 30 * DAY + 1, subscription_id="sub_1", payment_id="pay_2")
    world.send("subscription.renewed", T0 + 30 * DAY, subscription_id="sub_1", next_billing_date=iso(new_next))
    for ws in both_orderings(world):
        sub = world.subscription(ws, "sub_1")
        assert sub["next_billing_date"] == new_next
        assert [e.name for e in ws.events(world.person(ws))] == [
            "subscription.active",
            "payment.succeeded",
            "subscription.renewed",
        ]


def test_unpause_and_a_plan_change_remove_what_they_clear(world: World) -> None:
    change = {"product_id": "pdt_team", "effective_at": iso(T0 + DAY), "product_name": "Team"}
    pending = {"subscription_id": "sub_1", "product_id": "pdt_solo", "scheduled_change": change}
    world.send("subscription.paused", T0, status="paused", paused_at=iso(T0), **pending)
    paused = world.subscription(world.workspace(), "sub_1")
    assert (paused["paused_at"], paused["status"], paused["scheduled_product_id"]) == (T0, "paused", "pdt_team")
    world.send("subscription.unpaused", T0 + DAY, status="active", paused_at=None, **pending)
    world.send(
        "subscription.plan_changed", T0 + 2 * DAY, **{**pending, "product_id": "pdt_team", "scheduled_change": None}
    )
    for ws in both_orderings(world):
        sub = world.subscription(ws, "sub_1")
        assert (sub["status"], sub["product_id"]) == ("active", "pdt_team")
        assert not {"paused_at", "scheduled_product_id", "scheduled_change_at"} & set(sub), sub


def test_an_email_change_leaves_one_person(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import dodo_cio.ingest.service

    monkeypatch.setattr(dodo_cio.ingest.service, "MERGE_DELAY_SECONDS", 0)  # the merge waits on the retry queue
    world.send("payment.succeeded", T0, payment_id="pay_1")
    world.send("subscription.active", T0 + 5, subscription_id="sub_1")
    moved = {**copy.deepcopy(CUSTOMER), "email": "maya.new@example.com"}
    world.send("payment.succeeded", T0 + DAY, payment_id="pay_2", customer=moved)
    world.send("dunning.started", T0 + DAY + 1, subscription_id="sub_1")  # names only the customer id
    world.drain()  # the merge
    world.send("subscription.updated", T0 + 10, subscription_id="sub_1")  # older, still the old address
    world.drain()
    for ws in both_orderings(world):
        assert len(ws.people) == 1, [p.identifiers for p in ws.people]
        (person,) = ws.people
        if world.strategy == "email":  # the old person merged into the new one
            assert ws.person(email="maya.new@example.com") is not None
            assert ws.person(email="maya@example.com") is None
        elif world.strategy == "customer_id":  # addressed by id: the email is an attribute that changes
            assert person.attributes.get("email") == "maya.new@example.com"
        names = [e.name for e in ws.events(person)]
        assert sorted(names) == sorted(
            ["payment.succeeded", "subscription.active", "payment.succeeded", "dunning.started", "subscription.updated"]
        )
        assert person.attributes["payments_count"] == 2
        if world.object_type is not None:  # the subscription relates to the one person left
            assert [o.object_id for o in ws.related_objects(person)] == ["sub_1"]


def test_backfill_then_webhooks_land_on_the_same_person(world: World) -> None:
    """`dodo-cio backfill` writes the same person and subscription state the webhooks then update."""
    from dodo_cio.configuration.settings import Settings
    from dodo_cio.delivery.track import TrackClient
    from dodo_cio_cli.backfill_source import OpBuilder, listings
    from dodo_cio_local.dodo_standin import make_subscription

    mapping = Settings.from_env().mapping()
    customer = {**copy.deepcopy(CUSTOMER), "created_at": iso(T0 - 90 * DAY), "business_id": "bus_1"}
    subscription = {**make_subscription(1, "active", customer), "subscription_id": "sub_1", "customer": customer}
    builder = OpBuilder(mapping)
    customers_listing, active_listing = listings(("active",))
    read_at = T0 - DAY
    ops = [
        *builder.build(customers_listing, customer, read_at).ops,
        *builder.build(active_listing, subscription, read_at).ops,
    ]
    client = TrackClient(world.bridge.sandbox.base_url, "it-site", "it-api-key-9f8e7d")
    assert client.send(ops).delivered
    world.send("subscription.on_hold", T0, subscription_id="sub_1", status="on_hold")
    world.send("dunning.started", T0 + 1, subscription_id="sub_1")
    # Track's object schema has no timestamp, so the backfill's object write counts as "now" (its arrival).
    # On Pipelines the webhook's group call carries the Dodo event time (render.py), T0, a time before that
    # arrival: a workspace ordering object attributes by timestamp keeps the backfill's state for the object.
    # Person attributes carry a timestamp on both APIs (the backfill's read time), so on_hold wins there.
    stale_object = world.api == PIPELINES and world.object_type is not None
    for ws, ordered in zip(both_orderings(world), (True, False), strict=True):
        person = world.person(ws)
        assert person.attributes.get("email") == EMAIL_SENT[world.strategy]
        expected = "active" if stale_object and ordered else "on_hold"
        assert world.subscription(ws, "sub_1")["status"] == expected
        # The on_hold webhook carries the customer, so the dunning that names only the id follows it.
        assert [e.name for e in ws.events(person)] == ["subscription.on_hold", "dunning.started"]
