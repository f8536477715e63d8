"""The ingest handler end to end in-process: every answer the issue promises, and what reaches Customer.io."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from dodo_cio.receiving.signature import sign
from support.apigw import http_api_event, signed_event
from support.samples import sample_paths
from support.workspace import use_pipelines

pytestmark = pytest.mark.network

SAMPLES = {p.name: p.read_bytes() for p in sample_paths()}
PAYMENT = SAMPLES["payment.succeeded.json"]


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _mutate(raw: bytes, fn) -> bytes:
    doc = json.loads(raw)
    fn(doc)
    return _body(doc)


# -- happy path -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_is_delivered_in_one_request(bridge, name: str) -> None:
    status, body = bridge.send(SAMPLES[name])
    assert (status, body) == (200, {"status": "delivered"})
    requests = bridge.sandbox.requests
    assert len(requests) == 1, "one HTTPS request per webhook"
    assert requests[0].status == 200
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


def test_license_key_is_a_single_entity_op_without_the_key(bridge) -> None:
    raw = SAMPLES["license_key.created.json"]
    bridge.send(raw)
    (request,) = bridge.sandbox.requests
    assert request.path == "/api/v2/entity"
    assert json.loads(raw)["data"]["key"].encode() not in request.body


def test_a_redelivered_webhook_is_answered_from_the_first_time_and_not_sent_again(bridge) -> None:
    first = bridge.send(PAYMENT, webhook_id="msg_same")
    again = bridge.send(PAYMENT, webhook_id="msg_same")
    assert first == again == (200, {"status": "delivered"})
    bridge.send(PAYMENT, webhook_id="msg_other")
    ids = [op["id"] for op in bridge.sandbox.accepted_ops() if op["action"] == "event"]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert len(bridge.sandbox.requests) == 2


def test_only_the_stored_answer_of_a_redelivery_carries_the_replayed_header(bridge) -> None:
    from dodo_cio_local.lambda_context import FakeLambdaContext
    from support.apigw import signed_event

    first, again = (
        bridge.app.lambda_handler(signed_event(PAYMENT, bridge.secret, webhook_id="msg_twice"), FakeLambdaContext())
        for _ in range(2)
    )
    assert "idempotent-replayed" not in first["headers"] and again["headers"]["idempotent-replayed"] == "true"
    assert first["body"] == again["body"]  # Dodo sees the same answer


def test_a_redelivery_of_a_parked_webhook_queues_nothing_more(bridge) -> None:
    bridge.sandbox.script(503)
    assert bridge.send(PAYMENT, webhook_id="msg_parked_once")[0] == 202
    assert bridge.send(PAYMENT, webhook_id="msg_parked_once") == (202, {"status": "queued"})
    assert len(bridge.parked()) == 1
    assert len(bridge.sandbox.requests) == 1


def test_a_5xx_answer_is_not_remembered(bridge) -> None:
    bridge.sandbox.script(503)
    bridge.sqs.delete_queue(QueueUrl=bridge.queue_url)
    assert bridge.send(PAYMENT, webhook_id="msg_retry_me")[0] == 500
    bridge.sqs.create_queue(QueueName=bridge.queue_url.rsplit("/", 1)[1])
    assert bridge.send(PAYMENT, webhook_id="msg_retry_me") == (200, {"status": "delivered"})


def test_duplicate_check_is_keyed_on_the_header_whatever_its_case(bridge) -> None:
    bridge.send(PAYMENT, webhook_id="msg_case")
    event = signed_event(PAYMENT, bridge.secret, webhook_id="msg_case")
    event["headers"] = {("Webhook-Id" if k == "webhook-id" else k): v for k, v in event["headers"].items()}
    assert bridge.invoke(event) == (200, {"status": "delivered"})
    assert len(bridge.sandbox.requests) == 1


def test_a_concurrent_duplicate_gets_409_not_2xx(bridge) -> None:
    import threading

    from dodo_cio_local.sandbox import ScriptedResponse

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
    return _mutate(raw, lambda d: d.update(timestamp=timestamp))


def test_an_older_event_arriving_late_does_not_roll_the_profile_back(bridge) -> None:
    newer = _at(SAMPLES["subscription.cancelled.json"], "2026-10-20T10:00:00Z")
    older = _at(SAMPLES["subscription.active.json"], "2026-10-01T10:00:00Z")
    assert bridge.send(newer)[0] == 200
    assert bridge.send(older)[0] == 200
    ops = bridge.sandbox.accepted_ops()
    identifies = [op for op in ops if op["action"] == "identify" and "subscription_status" in op["attributes"]]
    events = [op for op in ops if op["action"] == "event"]
    assert [op["attributes"]["subscription_status"] for op in identifies] == ["cancelled"]
    # The older event is still delivered, with its own (older) time.
    from datetime import UTC, datetime

    def unix(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())

    assert [(op["name"], op["timestamp"]) for op in events] == [
        ("subscription.cancelled", unix("2026-10-20T10:00:00")),
        ("subscription.active", unix("2026-10-01T10:00:00")),
    ]


def test_a_parked_identify_is_skipped_on_retry_when_a_newer_one_went_through(bridge) -> None:
    import boto3

    from dodo_cio.delivery.parking import ParkedDelivery
    from dodo_cio.retry.service import RetryProcessor
    from dodo_cio.retry.verdicts import SqsRecord
    from dodo_cio.state.table import StateTable

    older = _at(SAMPLES["subscription.active.json"], "2026-10-01T10:00:00Z")
    newer = _at(SAMPLES["subscription.cancelled.json"], "2026-10-20T10:00:00Z")
    bridge.sandbox.script(503)
    assert bridge.send(older)[0] == 202  # parked
    assert bridge.send(newer)[0] == 200  # went straight through
    (message,) = bridge.parked()
    processor = RetryProcessor(
        bridge.sqs,
        bridge.queue_url,
        bridge.dlq_url,
        state=StateTable("dodo-cio-state", lambda: boto3.client("dynamodb")),
    )
    from dodo_cio.delivery.track import TrackClient

    client = TrackClient(bridge.sandbox.base_url, "it-site", "it-api-key-9f8e7d")
    body = json.dumps(message["body"])
    (outcome,) = processor.process([SqsRecord("m1", "rh", body, 1)], client)
    assert outcome.verdict == "delivered"
    assert ParkedDelivery.from_json(body).ops[0]["action"] == "identify"
    statuses = [
        op["attributes"]["subscription_status"]
        for op in bridge.sandbox.accepted_ops()
        if op["action"] == "identify" and "subscription_status" in op["attributes"]
    ]
    assert statuses == ["cancelled"]
    assert [op["name"] for op in bridge.sandbox.accepted_ops() if op["action"] == "event"] == [
        "subscription.cancelled",
        "subscription.active",
    ]


def test_base64_encoded_body_is_verified_on_the_raw_bytes(bridge) -> None:
    status, _ = bridge.invoke(signed_event(PAYMENT, bridge.secret, base64_body=True))
    assert status == 200


def test_header_names_in_any_case(bridge) -> None:
    event = signed_event(PAYMENT, bridge.secret)
    event["headers"] = {k.upper() if k.startswith("webhook") else k: v for k, v in event["headers"].items()}
    assert bridge.invoke(event)[0] == 200


def test_rotation_two_secrets_in_ssm(bridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    new = b"the-new-secret-after-rotation-123"
    old_value = "whsec_" + base64.b64encode(bridge.secret).decode()
    new_value = "whsec_" + base64.b64encode(new).decode()
    bridge.ssm.put_parameter(
        Name="/dodo-customerio/webhook-secret",
        Value=f"{old_value}, {new_value}",
        Type="SecureString",
        Overwrite=True,
    )
    parameters.clear_caches()
    assert bridge.invoke(signed_event(PAYMENT, new))[0] == 200
    assert bridge.invoke(signed_event(PAYMENT, bridge.secret))[0] == 200


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


def _assert_rejected(bridge, event: dict[str, Any], status: int) -> dict[str, Any]:
    got_status, body = bridge.invoke(event)
    assert got_status == status, body
    assert "error" in body
    assert bridge.sandbox.requests == []
    assert bridge.parked() == []
    return body


def test_missing_signature_headers(bridge) -> None:
    _assert_rejected(bridge, http_api_event(PAYMENT, {}), 401)


def test_signature_not_base64(bridge) -> None:
    event = signed_event(PAYMENT, bridge.secret)
    event["headers"]["webhook-signature"] = "v1,!!!not-base64!!!"
    _assert_rejected(bridge, event, 401)


def test_wrong_secret(bridge) -> None:
    _assert_rejected(bridge, signed_event(PAYMENT, b"some-other-secret-entirely"), 401)


def test_only_v2_entries(bridge) -> None:
    event = signed_event(PAYMENT, bridge.secret)
    event["headers"]["webhook-signature"] = event["headers"]["webhook-signature"].replace("v1,", "v2,")
    _assert_rejected(bridge, event, 401)


def test_timestamp_not_a_number(bridge) -> None:
    event = signed_event(PAYMENT, bridge.secret)
    event["headers"]["webhook-timestamp"] = "yesterday"
    _assert_rejected(bridge, event, 401)


@pytest.mark.parametrize("offset", [-360, 360])
def test_timestamp_six_minutes_off(bridge, offset: int) -> None:
    _assert_rejected(bridge, signed_event(PAYMENT, bridge.secret, timestamp=int(time.time()) + offset), 401)


def test_body_changed_after_signing(bridge) -> None:
    event = signed_event(PAYMENT, bridge.secret)
    event["body"] = event["body"].replace("4900", "4901")
    _assert_rejected(bridge, event, 401)


def test_verification_happens_before_parsing(bridge) -> None:
    # A body that is not even JSON, with a bad signature, is a 401 (not a 400).
    _assert_rejected(bridge, signed_event(b"{not json", b"wrong-secret-wrong-secret"), 401)


def test_a_signed_bad_body_is_quarantined_not_refused(bridge) -> None:
    # Every shape of unreadable body, and a re-run after an upgrade: tests/integration/test_quarantine.py.
    status, answer = bridge.send(_mutate(PAYMENT, lambda d: d["data"].update(total_amount="4900")))
    assert (status, answer["status"], answer["field"]) == (202, "quarantined", "data.total_amount")


def test_body_over_256_kb(bridge) -> None:
    body = _mutate(PAYMENT, lambda d: d["data"]["metadata"].update(pad="x" * (257 * 1024)))
    answer = _assert_rejected(bridge, signed_event(body, bridge.secret), 413)
    assert answer["limit_bytes"] == 256 * 1024


def test_unknown_type_is_kept_on_the_quarantine_queue_not_delivered(bridge) -> None:
    body = _mutate(PAYMENT, lambda d: d.update(type="payment.teleported"))
    status, answer = bridge.send(body)
    assert (status, answer["status"], answer["kind"]) == (202, "quarantined", "unknown_type")
    assert bridge.sandbox.requests == [] and bridge.parked() == []
    (kept,) = bridge.quarantined()
    assert kept["body"]["event_type"] == "payment.teleported" and kept["body"]["kind"] == "unknown_type"


def test_payout_is_ignored_by_default(bridge) -> None:
    body = _body({"type": "payout.success", "timestamp": "2026-10-14T09:21:47Z", "data": {"payout_id": "po_1"}})
    status, answer = bridge.send(body)
    assert (status, answer["status"]) == (200, "ignored")
    assert bridge.sandbox.requests == []


def test_dispute_with_null_customer_reaches_the_payments_customer(bridge) -> None:
    payment = _mutate(SAMPLES["payment.succeeded.json"], lambda d: d["data"].update(payment_id="pay_disputed"))
    assert bridge.send(payment)[0] == 200
    body = _mutate(SAMPLES["dispute.opened.json"], lambda d: d["data"].update(customer=None, payment_id="pay_disputed"))
    status, answer = bridge.send(body)
    assert (status, answer["status"]) == (200, "delivered")
    (dispute,) = [op for op in bridge.sandbox.accepted_ops() if op.get("name") == "dispute.opened"]
    assert dispute["identifiers"] == {"id": json.loads(payment)["data"]["customer"]["customer_id"]}


def test_dispute_for_a_payment_never_seen_is_parked_not_dropped(bridge) -> None:
    body = _mutate(SAMPLES["dispute.opened.json"], lambda d: d["data"].update(customer=None, payment_id="pay_unseen"))
    status, answer = bridge.send(body)
    assert (status, answer["status"]) == (202, "queued")
    assert bridge.sandbox.requests == []
    (message,) = bridge.parked()
    assert message["body"]["last_error"]["kind"] == "config"
    assert "pay_unseen" in message["body"]["last_error"]["reason"]


def test_refund_with_null_amount_is_delivered_without_amount(bridge) -> None:
    body = _mutate(SAMPLES["refund.succeeded.json"], lambda d: d["data"].update(amount=None))
    assert bridge.send(body)[0] == 200
    (event_op,) = [op for op in bridge.sandbox.accepted_ops() if op["action"] == "event"]
    assert "amount" not in event_op["attributes"]
    assert event_op["attributes"]["refund_id"] == "ref_7YbLq4WzTn1KcR9mXd3Vs"


def test_unicode_and_very_long_names_are_delivered_within_limits(bridge) -> None:
    long_name = "Zoë 山田 🚀 " * 200

    def change(d: dict[str, Any]) -> None:
        d["data"]["customer"]["name"] = long_name
        d["data"]["metadata"]["note"] = "ü" * 2000

    assert bridge.send(_mutate(PAYMENT, change))[0] == 200
    identify = next(op for op in bridge.sandbox.accepted_ops() if op["action"] == "identify")
    assert identify["attributes"]["name"].startswith("Zoë 山田 🚀")
    assert len(json.dumps(identify["attributes"]["name"], ensure_ascii=False).encode()) <= 1000


# -- failures downstream -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_customerio_down_parks_the_event_and_answers_2xx(bridge, status: int) -> None:
    bridge.sandbox.script(status)
    code, body = bridge.send(PAYMENT, webhook_id="msg_parked")
    assert (code, body) == (202, {"status": "queued"})
    (message,) = bridge.parked()
    parked = message["body"]
    assert parked["webhook_id"] == "msg_parked"
    assert parked["event_type"] == "payment.succeeded"
    assert parked["attempts"] == 1
    assert parked["last_error"]["kind"] == "transient" and parked["last_error"]["status"] == status
    # the profile, the event, and the commercial summary (dodo_cio.state.summary), all waiting together
    assert [op["action"] for op in parked["ops"]] == ["identify", "event", "identify"]
    assert parked["ops"][2]["_state"] == "summary" and parked["ops"][2]["attributes"]["payments_count"] == 1
    assert parked["customer_id"] == "cus_2RfYk8HcWq5NzT1mLb9Xe"
    assert "maya" not in json.dumps(message["attributes"]).lower()


def test_read_timeout_parks_the_event(bridge) -> None:
    from dodo_cio_local.sandbox import ScriptedResponse

    bridge.sandbox.script(ScriptedResponse(200, action="stall", delay=2.0))
    code, _ = bridge.send(PAYMENT)
    assert code == 202
    (message,) = bridge.parked()
    assert message["body"]["last_error"]["status"] is None
    assert "timeout" in message["body"]["last_error"]["reason"]


def test_bad_credentials_park_as_config_error(bridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    bridge.ssm.put_parameter(
        Name="/dodo-customerio/customerio-api-key", Value="wrong", Type="SecureString", Overwrite=True
    )
    parameters.clear_caches()
    code, _ = bridge.send(PAYMENT)
    assert code == 202
    (message,) = bridge.parked()
    assert message["body"]["last_error"]["kind"] == "config"
    assert message["body"]["last_error"]["status"] == 401


def test_207_dead_letters_only_the_failed_op_at_once(bridge) -> None:
    from dodo_cio_local.sandbox import ScriptedResponse

    bridge.sandbox.script(
        ScriptedResponse(207, body={"errors": [{"batch_index": 0, "reason": "invalid", "field": "attributes"}]})
    )
    code, _ = bridge.send(SAMPLES["subscription.active.json"])
    assert code == 202
    assert bridge.parked() == []  # permanent: not retried
    (message,) = bridge.dead_lettered()
    assert message["body"]["last_error"]["kind"] == "permanent"
    assert message["body"]["last_error"]["status"] == 207
    assert "attributes" in message["body"]["last_error"]["reason"]
    assert [op["action"] for op in message["body"]["ops"]] == ["identify"]


def test_400_goes_to_the_dlq_with_its_reason(bridge) -> None:
    bridge.sandbox.script(400)
    # Nothing waits on the retry queue, so the answer does not say "queued".
    assert bridge.send(PAYMENT) == (202, {"status": "dead_lettered"})
    assert bridge.parked() == []
    (message,) = bridge.dead_lettered()
    assert (message["body"]["last_error"]["status"], message["body"]["attempts"]) == (400, 1)
    assert message["attributes"]["error_kind"]["StringValue"] == "permanent"


def test_retry_after_answered_to_ingest_delays_the_parked_message(bridge) -> None:
    from dodo_cio_local.sandbox import ScriptedResponse

    bridge.sandbox.script(ScriptedResponse(429, headers={"Retry-After": "120"}))
    assert bridge.send(PAYMENT)[0] == 202
    assert bridge.parked() == []  # invisible: delayed by the Retry-After
    attributes = bridge.sqs.get_queue_attributes(QueueUrl=bridge.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_customerio_and_sqs_both_failing_answers_5xx(bridge) -> None:
    bridge.sandbox.script(503)
    bridge.sqs.delete_queue(QueueUrl=bridge.queue_url)
    code, body = bridge.send(PAYMENT)
    assert code == 500
    assert "error" in body


def test_missing_webhook_secret_is_a_5xx_not_a_crash(bridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    bridge.ssm.delete_parameter(Name="/dodo-customerio/webhook-secret")
    parameters.clear_caches()
    code, body = bridge.send(PAYMENT)
    assert (code, body) == (500, {"error": "bridge misconfigured"})


def test_missing_customerio_credentials_park_the_event(bridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    bridge.ssm.delete_parameter(Name="/dodo-customerio/customerio-api-key")
    parameters.clear_caches()
    code, _ = bridge.send(PAYMENT)
    assert code == 202
    (message,) = bridge.parked()
    assert message["body"]["last_error"]["kind"] == "config"
    assert bridge.sandbox.requests == []


@pytest.fixture
def pipelines_bridge(bridge, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same warm container deployed with CustomerioApi=pipelines: the sandbox's /v1, the Pipelines key."""
    use_pipelines(bridge, monkeypatch)
    return bridge


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_pipelines_delivers_every_sample_in_one_strict_request(pipelines_bridge, name: str) -> None:
    status, body = pipelines_bridge.send(SAMPLES[name], webhook_id=f"msg_pl_{name}")
    assert (status, body) == (200, {"status": "delivered"})
    (request,) = pipelines_bridge.sandbox.requests
    assert request.path.startswith("/v1/") and request.status == 200
    assert {k.lower(): v for k, v in request.headers.items()}["x-strict-mode"] == "1"
    calls = pipelines_bridge.sandbox.accepted_calls()
    assert calls and pipelines_bridge.sandbox.dropped_calls() == []
    assert [call["userId"] for call in calls if "userId" in call], "each call addresses a person"
    assert pipelines_bridge.parked() == []


def test_pipelines_without_its_key_parks_as_config_naming_the_parameter(pipelines_bridge) -> None:
    from aws_lambda_powertools.utilities import parameters

    pipelines_bridge.ssm.delete_parameter(Name="/dodo-customerio/customerio-pipelines-api-key")
    parameters.clear_caches()
    code, body = pipelines_bridge.send(PAYMENT)
    assert (code, body) == (202, {"status": "queued"})
    (message,) = pipelines_bridge.parked()
    error = message["body"]["last_error"]
    assert error["kind"] == "config" and "customerio-pipelines-api-key" in error["reason"]
    assert pipelines_bridge.sandbox.requests == []


def test_bad_setting_is_answered_with_5xx(bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTOMERIO_REGION", "mars")
    code, body = bridge.send(PAYMENT)
    assert (code, body) == (500, {"error": "bridge misconfigured"})


def test_signing_helper_matches_header_format() -> None:
    assert sign(b"k", "msg_1", 1, b"{}").startswith("v1,")


def test_logs_hold_no_email_and_no_secret(
    bridge, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    stream = io.StringIO()
    monkeypatch.setattr(bridge.app.logger.registered_handler, "stream", stream)
    bridge.sandbox.script(503)
    for raw in SAMPLES.values():
        bridge.send(raw)
    bridge.invoke(signed_event(PAYMENT, b"wrong-secret-wrong-secret"))
    out = capsys.readouterr()
    logs = stream.getvalue() + out.out + out.err
    assert '"webhook_id"' in logs and '"event_type"' in logs
    for raw in SAMPLES.values():
        customer = json.loads(raw)["data"].get("customer") or {}
        if customer.get("email"):
            assert customer["email"] not in logs
    assert base64.b64encode(bridge.secret).decode() not in logs
    assert "it-api-key" not in logs
