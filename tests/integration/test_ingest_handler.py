"""The ingest handler end to end in-process: every answer the issue promises, and what reaches Customer.io."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.budget import Budget
from dodo_cio.delivery.destination import PIPELINES, TRACK
from dodo_cio.delivery.track import EMAIL_BY_ID_SETTING
from dodo_cio.ingest.service import BUDGET_SPENT
from dodo_cio.state.table import StateTable
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.sandbox import ScriptedResponse
from support.apigw import http_api_event, signed_event
from support.bodies import PAYMENT, SAMPLES, body, changed, with_data
from support.emf import emitted_metrics
from support.workspace import use_pipelines

pytestmark = pytest.mark.network


# -- happy path -------------------------------------------------------------------------------


def test_every_sample_is_delivered_in_one_accepted_request(bridge, api: str) -> None:
    """One warm container per API, the sandbox reset between samples (a bridge per sample cost a moto setup each)."""
    for name, raw in SAMPLES.items():
        bridge.sandbox.reset()
        assert bridge.send(raw, webhook_id=f"msg_{api}_{name}") == (200, {"status": "delivered"}), name
        (request,) = bridge.sandbox.requests  # one HTTPS request per webhook
        assert request.status == 200, name
        if api == PIPELINES:
            assert request.path.startswith("/v1/"), name
            assert {k.lower(): v for k, v in request.headers.items()}["x-strict-mode"] == "1"
            calls = bridge.sandbox.accepted_calls()
            assert calls and bridge.sandbox.dropped_calls() == [], name
            assert [call["userId"] for call in calls if "userId" in call], "each call addresses a person"
    assert bridge.parked() == []


def test_identify_and_event_go_in_one_batch(bridge) -> None:
    bridge.send(SAMPLES["subscription.active.json"], webhook_id="msg_batch1")
    (request,) = bridge.sandbox.requests
    assert request.path == "/api/v2/batch"
    actions = [op["action"] for op in request.json["batch"]]
    # The customer's own fields and the subscription's state are separate pieces of state, each
    # with its own freshness (dodo_cio.state.table), so they are two identifies; then the event, then
    # the customer's summary (its subscription aggregates: dodo_cio.state.summary).
    assert actions == ["identify", "identify", "event", "identify"]


def test_a_redelivery_gets_the_stored_answer_marked_replayed_and_nothing_is_sent_again(bridge) -> None:
    """The redelivery spells the id header `Webhook-Id`: the duplicate check reads it whatever its case."""
    event = signed_event(PAYMENT, bridge.secret, webhook_id="msg_same")
    recased = {**event, "headers": {("Webhook-Id" if k == "webhook-id" else k): v for k, v in event["headers"].items()}}
    first, again = (bridge.app.lambda_handler(e, FakeLambdaContext()) for e in (event, recased))
    assert (first["statusCode"], json.loads(first["body"])) == (200, {"status": "delivered"})
    assert "idempotent-replayed" not in first["headers"] and again["headers"]["idempotent-replayed"] == "true"
    assert (again["statusCode"], again["body"]) == (200, first["body"])  # Dodo sees the same answer
    bridge.send(PAYMENT, webhook_id="msg_other")
    ids = [op["id"] for op in bridge.sandbox.accepted_ops() if op["action"] == "event"]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert len(bridge.sandbox.requests) == 2


def test_a_redelivery_of_a_parked_webhook_queues_nothing_more(bridge) -> None:
    bridge.sandbox.script(503)
    assert bridge.send(PAYMENT, webhook_id="msg_parked_once")[0] == 202
    assert bridge.send(PAYMENT, webhook_id="msg_parked_once") == (202, {"status": "queued"})
    assert len(bridge.parked()) == 1
    assert len(bridge.sandbox.requests) == 1


def test_a_concurrent_duplicate_gets_409_not_2xx(bridge) -> None:
    """Unit-tested in test_idempotency.py; here the in-progress 409 reaches Dodo through the handler (README)."""
    import threading

    bridge.sandbox.script(ScriptedResponse(200, action="stall", delay=0.8))
    results: list[tuple[int, dict[str, Any]]] = []
    first = threading.Thread(target=lambda: results.append(bridge.send(PAYMENT, webhook_id="msg_concurrent")))
    first.start()
    time.sleep(0.3)
    second = bridge.send(PAYMENT, webhook_id="msg_concurrent")
    first.join()
    assert second[0] == 409 and "error" in second[1]
    assert results == [(200, {"status": "delivered"})]
    assert len(bridge.sandbox.requests) == 1


def test_state_table_unreachable_is_a_503_and_nothing_is_sent(bridge) -> None:
    import boto3

    boto3.client("dynamodb").delete_table(TableName="dodo-cio-state")
    assert bridge.send(PAYMENT)[0] == 503
    assert bridge.sandbox.requests == [] and bridge.parked() == []


def _at(raw: bytes, timestamp: str) -> bytes:
    return changed(raw, lambda d: d.update(timestamp=timestamp))


def test_an_older_event_arriving_late_does_not_roll_the_profile_back(bridge) -> None:
    newer = _at(SAMPLES["subscription.cancelled.json"], "2026-10-20T10:00:00Z")
    older = _at(SAMPLES["subscription.active.json"], "2026-10-01T10:00:00Z")
    assert bridge.send(newer)[0] == 200
    assert bridge.send(older)[0] == 200
    ops = bridge.sandbox.accepted_ops()
    identifies = [op for op in ops if op["action"] == "identify" and "subscription_status" in op["attributes"]]
    events = [op for op in ops if op["action"] == "event"]
    assert [op["attributes"]["subscription_status"] for op in identifies] == ["cancelled"]
    # The older event is still delivered, with its own (older) time: 2026-10-20 and 2026-10-01, 10:00 UTC.
    assert [(op["name"], op["timestamp"]) for op in events] == [
        ("subscription.cancelled", 1_792_490_400),
        ("subscription.active", 1_790_848_800),
    ]


def test_rotated_secret_is_picked_up_without_waiting_for_the_cache(bridge) -> None:
    assert bridge.send(PAYMENT)[0] == 200  # secrets now cached
    new = b"rotated-in-ssm-while-warm-0000000"
    bridge.ssm.put_parameter(
        Name="/dodo-customerio/webhook-secret",
        Value="whsec_" + base64.b64encode(new).decode(),
        Type="SecureString",
        Overwrite=True,
    )
    assert bridge.invoke(signed_event(PAYMENT, new))[0] == 200


# -- bad input: each answer, a JSON error, nothing queued, nothing sent ------------------------


OVERSIZE = changed(PAYMENT, lambda d: d["data"]["metadata"].update(pad="x" * (257 * 1024)))


def _body_changed(event: dict[str, Any]) -> dict[str, Any]:
    event["body"] = event["body"].replace("4900", "4901")
    return event


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda secret: http_api_event(PAYMENT, {}), 401, id="no signature headers"),
        pytest.param(lambda secret: signed_event(PAYMENT, b"some-other-secret-entirely"), 401, id="wrong secret"),
        pytest.param(
            lambda secret: signed_event(PAYMENT, secret, timestamp=int(time.time()) - 360), 401, id="6 min old"
        ),
        pytest.param(lambda secret: _body_changed(signed_event(PAYMENT, secret)), 401, id="body changed after signing"),
        # Verification comes before parsing: a body that is not even JSON, badly signed, is a 401 (not a 400).
        pytest.param(lambda secret: signed_event(b"{not json", b"wrong-secret-wrong-secret"), 401, id="unsigned junk"),
        pytest.param(lambda secret: signed_event(OVERSIZE, secret), 413, id="body over 256 KB"),
    ],
)
def test_bad_input_gets_a_json_error_and_nothing_is_sent_or_queued(bridge, make: Any, status: int) -> None:
    got, answer = bridge.invoke(make(bridge.secret))
    assert got == status and "error" in answer, answer
    assert bridge.sandbox.requests == [] and bridge.parked() == [] and bridge.quarantined() == []
    if status == 413:
        assert answer["limit_bytes"] == 256 * 1024


def test_payout_is_ignored_by_default(bridge) -> None:
    payout = body({"type": "payout.success", "timestamp": "2026-10-14T09:21:47Z", "data": {"payout_id": "po_1"}})
    status, answer = bridge.send(payout)
    assert (status, answer["status"]) == (200, "ignored")
    assert bridge.sandbox.requests == []


def test_dispute_with_null_customer_reaches_the_payments_customer(bridge) -> None:
    payment = with_data("payment.succeeded.json", payment_id="pay_disputed")
    assert bridge.send(payment)[0] == 200
    body = with_data("dispute.opened.json", customer=None, payment_id="pay_disputed")
    status, answer = bridge.send(body)
    assert (status, answer["status"]) == (200, "delivered")
    (dispute,) = [op for op in bridge.sandbox.accepted_ops() if op.get("name") == "dispute.opened"]
    assert dispute["identifiers"] == {"id": json.loads(payment)["data"]["customer"]["customer_id"]}


def test_dispute_for_a_payment_never_seen_is_parked_not_dropped(bridge) -> None:
    body = with_data("dispute.opened.json", customer=None, payment_id="pay_unseen")
    status, answer = bridge.send(body)
    assert (status, answer["status"]) == (202, "queued")
    assert bridge.sandbox.requests == []
    (message,) = bridge.parked()
    assert message["body"]["last_error"]["kind"] == "config"
    assert "pay_unseen" in message["body"]["last_error"]["reason"]


# -- failures downstream -----------------------------------------------------------------------


def test_customerio_down_parks_the_event_and_answers_2xx(bridge) -> None:
    bridge.sandbox.script(503)
    code, body = bridge.send(PAYMENT, webhook_id="msg_parked")
    assert (code, body) == (202, {"status": "queued"})
    (message,) = bridge.parked()
    parked = message["body"]
    assert parked["webhook_id"] == "msg_parked"
    assert parked["event_type"] == "payment.succeeded"
    assert parked["attempts"] == 1
    assert parked["last_error"]["kind"] == "transient" and parked["last_error"]["status"] == 503
    # the profile, the event, and the commercial summary (dodo_cio.state.summary), all waiting together
    assert [op["action"] for op in parked["ops"]] == ["identify", "event", "identify"]
    assert parked["ops"][2]["_state"] == "summary" and parked["ops"][2]["attributes"]["payments_count"] == 1
    assert parked["customer_id"] == "cus_2RfYk8HcWq5NzT1mLb9Xe"
    assert "maya" not in json.dumps(message["attributes"]).lower()


@pytest.mark.parametrize(
    ("api", "name", "value", "status"),
    [
        pytest.param(TRACK, "customerio-api-key", "wrong", 401, id="track key wrong"),
        pytest.param(TRACK, "customerio-api-key", None, None, id="track key missing"),
        pytest.param(PIPELINES, "customerio-pipelines-api-key", None, None, id="pipelines key missing"),
    ],
)
def test_a_wrong_or_missing_customerio_key_parks_the_event_as_config(
    bridge, monkeypatch: pytest.MonkeyPatch, api: str, name: str, value: str | None, status: int | None
) -> None:
    if api == PIPELINES:
        use_pipelines(bridge, monkeypatch)
    bridge.store(name, value)
    assert bridge.send(PAYMENT) == (202, {"status": "queued"})
    (message,) = bridge.parked()
    error = message["body"]["last_error"]
    assert (error["kind"], error["status"]) == ("config", status)
    if value is None:  # nothing was sent, and the reason names what is missing
        assert name in error["reason"] and bridge.sandbox.requests == []


@pytest.mark.parametrize(
    "misconfigure",
    [
        pytest.param(lambda bridge, env: bridge.store("webhook-secret", None), id="webhook secret missing"),
        pytest.param(lambda bridge, env: env.setenv("CUSTOMERIO_REGION", "mars"), id="bad setting"),
    ],
)
def test_a_misconfigured_bridge_answers_500_not_a_crash(bridge, monkeypatch: pytest.MonkeyPatch, misconfigure) -> None:
    misconfigure(bridge, monkeypatch)
    assert bridge.send(PAYMENT) == (500, {"error": "bridge misconfigured"})


# -- failure paths that only show when something around the handler misbehaves ----------------------


def test_forged_requests_force_at_most_one_secret_reread_per_interval(bridge: Any, monkeypatch: Any) -> None:
    """A bad signature re-reads the secret (it may just have been rotated), but not once per request."""
    service = bridge.app.service()
    assert bridge.send(PAYMENT)[0] == 200  # warm: the secrets are cached
    forced: list[bool] = []
    fetch = service.secrets._fetch

    def counting(names: list[str], max_age: int, force: bool) -> Any:
        forced.append(force)
        return fetch(names, max_age, force)

    monkeypatch.setattr(service.secrets, "_fetch", counting)
    now = [service.clock()]
    monkeypatch.setattr(service, "clock", lambda: now[0])
    for _ in range(100):
        status, _ = bridge.invoke(signed_event(PAYMENT, b"a-forged-secret-0123456789abcdef"))
        assert status == 401
    assert forced.count(True) == 1, "one forced SSM read for 100 forged requests"
    now[0] += 31  # past the 30 s interval: one more is allowed
    bridge.invoke(signed_event(PAYMENT, b"a-forged-secret-0123456789abcdef"))
    assert forced.count(True) == 2


def test_a_transform_that_raises_at_cold_start_is_answered_on_every_call(bridge: Any, monkeypatch: Any) -> None:
    def broken(config: Any) -> Any:
        raise RuntimeError("a merchant's customize.py bug")

    monkeypatch.setattr(bridge.app, "build_mapping", broken)
    for _ in range(2):  # not built, so tried again, and answered again
        response = bridge.app.lambda_handler(signed_event(PAYMENT, bridge.secret), FakeLambdaContext())
        assert (response["statusCode"], json.loads(response["body"])) == (500, {"error": "bridge misconfigured"})
    assert bridge.app._service is None
    assert bridge.sandbox.requests == []


# -- which webhooks arrived, per Dodo object (dodo_cio.state.table.Receipt): what `dodo-cio reconcile` reads --
# Written in the duplicate check's own transaction: a webhook makes no DynamoDB call more than before.


def calls(bridge: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the DynamoDB calls the ingest container makes from now on."""
    made: list[str] = []
    client = bridge.app.service().state.client
    for name in ("transact_write_items", "get_item", "put_item", "update_item", "batch_get_item"):
        real = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _n=name, _r=real, **k: made.append(_n) or _r(*a, **k))
    return made


def test_each_object_keeps_which_webhooks_arrived_at_no_extra_call(
    bridge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bridge.send(with_data("dispute.opened.json", dispute_id="dsp_1"), webhook_id="msg_warm")[0] in (200, 202)
    made = calls(bridge, monkeypatch)
    assert bridge.send(with_data("dispute.opened.json", dispute_id="dsp_2"), webhook_id="msg_d2")[0] in (200, 202)
    assert made.count("transact_write_items") == 1 and len(made) == 2  # the check's transaction + its completion
    assert bridge.send(with_data("subscription.active.json", subscription_id="sub_r"), webhook_id="msg_s1")[0] == 200
    assert bridge.send(with_data("subscription.on_hold.json", subscription_id="sub_r"), webhook_id="msg_s2")[0] == 200
    table: StateTable = bridge.app.service().state
    found = table.read_receipts(["dsp_2", "sub_r", "sub_nobody"])
    assert found["dsp_2"]["dispute.opened"]["webhook_id"] == "msg_d2"
    assert {t: r["webhook_id"] for t, r in found["sub_r"].items()} == {
        "subscription.active": "msg_s1",
        "subscription.on_hold": "msg_s2",
    }
    assert "sub_nobody" not in found


# -- inside its part of the Customer.io budget (dodo_cio.delivery.budget), on a clock the test moves ----------
# Each case breaks the budget on purpose and asserts what was sent, parked and answered, never how long it took.


def payment(n: int) -> bytes:
    return with_data("payment.succeeded.json", payment_id=f"pay_budget_{n}")


def parked_after_their_delay(bridge: Any, expected: int) -> list[dict[str, Any]]:
    """Parked messages wait DelaySeconds (the budget's wait, at least 1 s) before SQS shows them."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found += bridge.parked()
    return found


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(bridge: Any) -> Clock:
    """The container's budget: 1 request a second, 2 deep, on the test's clock."""
    clock = Clock()
    bridge.app.service().budget = Budget(1.0, burst=2, clock=clock)
    return clock


def test_a_spent_share_parks_webhooks_for_the_retry_drain_and_sends_nothing(
    bridge: Any, clock: Clock, capsys: Any
) -> None:
    answers = [bridge.send(payment(n), webhook_id=f"msg_b{n}") for n in range(4)]
    assert answers == [(200, {"status": "delivered"})] * 2 + [(202, {"status": "queued"})] * 2
    assert len(bridge.sandbox.requests) == 2  # the burst; the rest were never tried
    parked = [m["body"] for m in parked_after_their_delay(bridge, 2)]
    assert [p["webhook_id"] for p in parked] == ["msg_b2", "msg_b3"]
    assert all(p["last_error"]["reason"] == BUDGET_SPENT and p["attempts"] == 0 for p in parked)
    assert emitted_metrics(capsys.readouterr().out).get("DeliveryDeferred") == 2
    clock.now += 1.0  # one second later: one more may go
    assert bridge.send(payment(9), webhook_id="msg_b9") == (200, {"status": "delivered"})


def test_a_429_holds_every_direct_send_for_its_retry_after(bridge: Any, clock: Clock, capsys: Any) -> None:
    bridge.sandbox.script(ScriptedResponse(429, headers={"Retry-After": "30"}))
    assert bridge.send(payment(1), webhook_id="msg_t1") == (202, {"status": "queued"})
    clock.now += 29.0  # refilled, but still inside Customer.io's Retry-After
    assert bridge.send(payment(2), webhook_id="msg_t2") == (202, {"status": "queued"})
    assert len(bridge.sandbox.requests) == 1  # the second one did not pile on
    clock.now += 1.0
    assert bridge.send(payment(3), webhook_id="msg_t3") == (200, {"status": "delivered"})
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics.get("CustomerioThrottled"), metrics.get("DeliveryDeferred")) == (1, 1)


# -- Customer.io refuses to change the email of a person addressed by id (issue 17, part 3) ----------------
# The refused identify is dead-lettered at once with a reason naming the workspace setting, the rest of the
# webhook is delivered, and `EmailChangeRefused` is counted, on both paths and both APIs. The refusal is a
# stand-in: Customer.io documents the setting ("Allow updates to email using ID") but not its answer, so it
# is scripted in the documented error shapes (a Track 207 item, a Pipelines strict-mode 400).


STAND_IN = "stand-in: the email of a person addressed by id cannot change in this workspace"


def refusal(api: str) -> list[ScriptedResponse]:
    """What the sandbox answers the identify-and-event request: the identify refused, the event accepted."""
    if api == PIPELINES:  # strict mode refuses the batch; the client halves it: the identify is refused alone
        refused = ScriptedResponse(400, body={"error": STAND_IN})
        return [refused, refused]
    item = {"batch_index": 0, "reason": "stand-in", "field": "email", "message": STAND_IN}
    return [ScriptedResponse(207, body={"errors": [item]})]


def dead_lettered_reason(bridge: Any, attempts: int) -> tuple[str, list[str]]:
    """The one dead letter's reason and actions; dead-lettered at the attempt refused, never retried."""
    (message,) = bridge.dead_lettered()
    body = message["body"]
    assert body["attempts"] == attempts
    return body["last_error"]["reason"], [op["action"] for op in body["ops"]]


def test_ingest_dead_letters_the_refused_identify_and_delivers_the_event(
    bridge: Any, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge.sandbox.script(*refusal(api))
    status, answer = bridge.send(PAYMENT, webhook_id="msg_email_change_1")
    assert (status, answer) == (202, {"status": "dead_lettered"})  # nothing waits: no retry can fix it
    reason, actions = dead_lettered_reason(bridge, attempts=1)
    assert actions == ["identify"]
    assert f'"{EMAIL_BY_ID_SETTING}"' in reason and STAND_IN in reason
    assert bridge.parked() == []
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("EmailChangeRefused") == 1
    assert metrics.get("DeadLettered") == 1 and metrics.get("OpsDelivered", 0) >= 1  # the event, at least


def test_the_retry_path_counts_it_too(bridge: Any, api: str, retry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bridge.sandbox.script(503)  # Customer.io unavailable: the webhook is parked
    assert bridge.send(PAYMENT, webhook_id="msg_email_change_2") == (202, {"status": "queued"})
    capsys.readouterr()
    retry.module.service().policy = BackoffPolicy(base=1, cap=1)
    bridge.sandbox.script(*refusal(api))
    retry.source.drain(max_polls=10)
    reason, actions = dead_lettered_reason(bridge, attempts=2)  # the ingest's and the retry's
    assert actions == ["identify"] and EMAIL_BY_ID_SETTING in reason
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("EmailChangeRefused") == 1
    assert metrics.get("DeadLettered") == 1 and metrics.get("RetryReparked") is None
    # The event went out on the retry: the sandbox holds it, whichever API.
    accepted = bridge.sandbox.accepted_calls() if api == PIPELINES else bridge.sandbox.accepted_ops()
    names = [op.get("event") or op.get("name") for op in accepted]
    assert "payment.succeeded" in names, json.dumps(accepted)[:500]
