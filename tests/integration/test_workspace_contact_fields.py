"""Contact fields the merchant's app set survive Dodo's webhooks (issue 17, part 4), in the workspace model.

The same harness as `test_workspace_sequences` (the real ingest handler, the sandbox, every strategy, both
subscription modes, both APIs, the model with and without timestamp ordering): the merchant's app first
identifies the person itself (a Track request to the same workspace, so it is replayed first on both
APIs), then Dodo's webhooks arrive. Dodo's customer object carries `phone_number` and usually as null,
and may carry a null name: neither may delete what the app set. Under `metadata:<key>` the app owns the
person, so by default the checkout email does not replace the app's either.
"""

from __future__ import annotations

from typing import Any

import pytest
import test_workspace_sequences as harness
from test_workspace_sequences import CUSTOMER, DAY, IDENTIFIERS, T0, World, both_orderings

from dodo_cio.delivery.track import TrackClient

# The harness's fixtures: `world` (one deployment per strategy, subscription mode and API) needs `api`.
api = harness.api
world = harness.world

APP_PHONE = "+14155552671"
APP_EMAIL = "maya.app@example.com"  # the address the app signed Maya up with; the checkout used another


def app_identifies(world: World, at: int, **attributes: Any) -> None:
    """The merchant's own app identifies the person, by the identifier the bridge is deployed with."""
    op = {
        "type": "person",
        "identifiers": IDENTIFIERS[world.strategy],
        "action": "identify",
        "timestamp": at,
        "attributes": attributes,
    }
    client = TrackClient(world.bridge.sandbox.base_url, "it-site", "it-api-key-9f8e7d")
    assert client.send([op]).delivered


def app_attributes(world: World) -> dict[str, Any]:
    """What the app sets: a phone and a name, and under customer_id or metadata its own email address
    (under `email` the address is the identifier, and the app addresses Maya by Dodo's)."""
    own_email = {} if world.strategy == "email" else {"email": APP_EMAIL}
    return {"phone": APP_PHONE, "first_name": "Maya", "last_name": "F.", **own_email}


def dodo_webhooks(world: World, **customer: Any) -> None:
    """A realistic run for one customer: checkout, subscription, a renewal, a refund, a dunning."""
    who = {"customer": {**CUSTOMER, **customer}}
    world.send("payment.succeeded", T0, payment_id="pay_1", subscription_id="sub_1", **who)
    world.send("subscription.active", T0 + 1, subscription_id="sub_1", **who)
    world.send("subscription.renewed", T0 + 30 * DAY, subscription_id="sub_1", **who)
    world.send("refund.succeeded", T0 + 31 * DAY, payment_id="pay_1", **who)
    world.send("dunning.started", T0 + 60 * DAY, subscription_id="sub_1")  # names only the customer id
    world.drain()


@pytest.mark.parametrize("dodo_name", [None, CUSTOMER["name"]], ids=["name-null", "name-known"])
def test_an_app_set_phone_survives_dodo_webhooks_with_phone_number_null(world: World, dodo_name: str | None) -> None:
    app_identifies(world, T0 - DAY, **app_attributes(world))
    dodo_webhooks(world, phone_number=None, name=dodo_name)  # a null is never a removal
    for ws in both_orderings(world):
        person = world.person(ws)
        attributes = person.attributes
        assert attributes["phone"] == APP_PHONE
        assert attributes["dodo_customer_id"] == CUSTOMER["customer_id"]
        # By default (auto) Dodo owns the email and name under customer_id and email, the app under metadata:<key>.
        app_owns = world.strategy.startswith("metadata:")
        assert attributes["email"] == (APP_EMAIL if app_owns else CUSTOMER["email"])
        names = (attributes.get("name"), attributes["first_name"], attributes["last_name"])
        assert names == ((None, "Maya", "F.") if dodo_name is None or app_owns else (dodo_name, "Maya", "Fernandes"))
        assert [e.name for e in ws.events(person)][-1] == "dunning.started"


@pytest.mark.parametrize("mode", ["app", "dodo"])
def test_the_deploy_parameter_decides_who_owns_them(world: World, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """CustomerioContactFields=app: Dodo's known phone and name do not replace the app's, under every
    strategy, and under `email` the person is still the one addressed by Dodo's email. =dodo: they do."""
    monkeypatch.setenv("CUSTOMERIO_CONTACT_FIELDS", mode)  # read when the ingest service is built, at the first send
    app_identifies(world, T0 - DAY, **app_attributes(world))
    dodo_webhooks(world, phone_number="+15550001111")
    for ws in both_orderings(world):
        person = world.person(ws)  # one person: the identifier never depends on who owns the fields
        attributes = person.attributes
        if mode == "app":
            assert (attributes["phone"], attributes["first_name"], attributes["last_name"]) == (APP_PHONE, "Maya", "F.")
            assert attributes["email"] == (CUSTOMER["email"] if world.strategy == "email" else APP_EMAIL)
        else:
            assert (attributes["phone"], attributes["first_name"], attributes["last_name"]) == (
                "+15550001111",
                "Maya",
                "Fernandes",
            )
            assert attributes["email"] == CUSTOMER["email"]
