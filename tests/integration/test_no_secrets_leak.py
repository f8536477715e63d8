"""No secret and no customer email leaks: not into logs, not into Customer.io, not into SQS attributes.

Every sample, a payment with secret-looking metadata, a license key whose value is known and a credit event with
secret-looking fields go through the real ingest handler with Customer.io up, then down (parked; the real retry
handler drains the queue: one half dead-lettered by a 400 that quotes addresses, one delivered), with a forged
signature, a bad payload and an undecodable webhook secret in SSM along the way. Captured: both handlers' log
streams, stdout/stderr (EMF metrics), every other log record at INFO and above (the sandbox's own excepted: it
stands in for Customer.io), every HTTP request the bridge made (at http.client: URL, headers, body) and what the
sandbox received, both queues' messages and the operator's dead-letter listing.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from dodo_cio.receiving.signature import SECRET_PREFIX
from dodo_cio_cli.operator import dead_letters_json, format_dead_letters, list_dead_letters
from dodo_cio_local.sandbox import ScriptedResponse
from support.apigw import signed_event
from support.aws import SSM_PATH, receive_all
from support.bodies import PAYMENT, SAMPLES
from support.samples import load_sample

pytestmark = pytest.mark.network

LICENSE_KEY = "LK-3c9f0e7a-55b2-4d1e-SECRET-8a6b2c4d9e01"
META_API_KEY = "sk_live_meta_9Zx8Yw7Vu6Ts5Rq4"
META_SECRET_TOKEN = "tok_meta_5Ts4Rq3Po2Nm1Lk0"
GENERIC_SECRETS = {"client_secret": "cs_generic_Hh7Gg6Ff5Ee4", "password": "pw-generic-Qq1Ww2Ee3"}
UNDECODABLE_SECRET = "whsec_!!not*base64--Jk8Lm9Nn0Oo1!!"
EXTRA_EMAIL = "lena.okafor+billing@example.org"
# Anything that looks like an address; the operator listing must show none.
EMAIL_LIKE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


def _extra_bodies() -> dict[str, bytes]:
    payment = load_sample("payment.succeeded.json")
    payment["data"]["metadata"].update(api_key=META_API_KEY, secret_token=META_SECRET_TOKEN, plan="pro")
    payment["data"]["customer"].update(email=EXTRA_EMAIL, customer_id="cus_9LeakTestQw3Er5Ty7")
    payment["data"]["payment_id"] = "pay_leaktest_metadata"

    license_key = load_sample("license_key.created.json")
    license_key["data"].update(id="lic_leaktest_known_key", key=LICENSE_KEY)

    credit = load_sample("credit.added.json")
    credit["data"].update(
        customer_id="cus_9LeakTestQw3Er5Ty7", reason="top-up", api_key=META_API_KEY, key=LICENSE_KEY, **GENERIC_SECRETS
    )
    return {
        "payment.metadata-secrets.json": json.dumps(payment).encode(),
        "license_key.known-key.json": json.dumps(license_key).encode(),
        "credit.added.secret-fields.json": json.dumps(credit).encode(),
    }


BODIES: dict[str, bytes] = {**SAMPLES, **_extra_bodies()}


def customer_emails() -> list[str]:
    emails: set[str] = set()
    for raw in BODIES.values():
        customer = json.loads(raw)["data"].get("customer")
        if isinstance(customer, dict) and customer.get("email"):
            emails.add(customer["email"])
    assert len(emails) >= 5, emails
    return sorted(emails)


def forms(value: str) -> set[str]:
    """The value as it may appear in a log or body: raw, JSON-escaped, URL-ish escaped."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], value.replace("/", "\\/")}


def contains(haystack: str, value: str) -> bool:
    return any(form in haystack for form in forms(value))


@dataclass
class Outgoing:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Capture:
    stream: io.StringIO
    http: list[Outgoing] = field(default_factory=list)
    sandbox: list[Any] = field(default_factory=list)
    queued: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def capture(bridge: Any, retry: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Both handlers' log streams into one buffer, and every HTTP request the bridge sends."""
    retry_module = retry.module
    stream = io.StringIO()
    for module in (bridge.app, retry_module):
        monkeypatch.setattr(module.logger.registered_handler, "stream", stream)
    cap = Capture(stream)
    real_request = http.client.HTTPConnection.request

    def spy(
        conn: http.client.HTTPConnection, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> Any:
        raw = body or b""
        cap.http.append(
            Outgoing(
                f"{'https' if isinstance(conn, http.client.HTTPSConnection) else 'http'}://{conn.host}:{conn.port}{url}",
                dict(headers or {}),
                raw.encode() if isinstance(raw, str) else bytes(raw),
            )
        )
        return real_request(conn, method, url, body=body, headers=headers or {})

    # Every HTTP request the bridge makes goes through http.client (the Track client's transport).
    monkeypatch.setattr(http.client.HTTPConnection, "request", spy)
    cap.retry = retry  # type: ignore[attr-defined]
    yield cap


def peek(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every visible message with its attributes, made visible again afterwards."""
    messages = receive_all(sqs, url)
    for message in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return messages


def drain_with_retry_handler(bridge: Any, cap: Capture) -> None:
    results = cap.retry.source.drain(10)  # type: ignore[attr-defined]
    assert all(r.error is None for r in results), [r.summary() for r in results]
    assert sum(r.received for r in results) > 0
    assert sum(len(r.failed) for r in results) == 0, [r.summary() for r in results]


def keep_sandbox_records(bridge: Any, cap: Capture) -> None:
    cap.sandbox.extend(bridge.sandbox.requests)
    bridge.sandbox.reset()


@pytest.mark.parametrize("identifier", ["customer_id", "email"])
def test_no_secret_and_no_email_leaks_anywhere(
    bridge: Any,
    capture: Capture,
    identifier: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("CUSTOMERIO_IDENTIFIER", identifier)
    cap = capture
    ssm = bridge.ssm
    webhook_secret = ssm.get_parameter(Name=f"{SSM_PATH}/webhook-secret", WithDecryption=True)["Parameter"]["Value"]
    site_id = ssm.get_parameter(Name=f"{SSM_PATH}/customerio-site-id", WithDecryption=True)["Parameter"]["Value"]
    api_key = ssm.get_parameter(Name=f"{SSM_PATH}/customerio-api-key", WithDecryption=True)["Parameter"]["Value"]
    assert webhook_secret.startswith(SECRET_PREFIX)
    secret_b64 = webhook_secret.removeprefix(SECRET_PREFIX)
    assert base64.b64decode(secret_b64) == bridge.secret
    sample_license_key = json.loads(SAMPLES["license_key.created.json"])["data"]["key"]
    webhook_secrets = [bridge.secret.decode(), secret_b64, webhook_secret]
    payload_secrets = [
        sample_license_key,
        LICENSE_KEY,
        META_API_KEY,
        META_SECRET_TOKEN,
        *GENERIC_SECRETS.values(),
    ]
    emails = customer_emails()
    # Customer.io's 400s quote what they refused; here, every customer's address.
    quoted = {
        "errors": [
            {"batch_index": 0, "reason": "invalid", "field": "identifiers", "message": f"{e} is not allowed"}
            for e in emails
        ]
    }

    # -- Customer.io up: everything delivered at once ---------------------------------------------
    # Payloads that carry the customer first: under the email strategy, the ones that name only a
    # customer id are addressed through what those taught the bridge (dodo_cio.state.identity).
    for name, raw in sorted(
        BODIES.items(), key=lambda item: not isinstance(json.loads(item[1])["data"].get("customer"), dict)
    ):
        assert bridge.send(raw) == (200, {"status": "delivered"}), name
    assert bridge.send(PAYMENT, webhook_id="msg_leak_dup")[0] == 200
    assert bridge.send(PAYMENT, webhook_id="msg_leak_dup")[0] == 200  # replayed
    # A forged signature, a payload that names a bad field, a secret SSM holds but cannot be decoded.
    assert bridge.invoke(signed_event(PAYMENT, b"forged-secret-forged-secret"))[0] == 401
    bad = json.loads(PAYMENT)
    bad["data"]["customer"] = f"{emails[0]} {api_key}"
    assert bridge.send(json.dumps(bad).encode())[:1] == (202,)  # quarantined: kept whole, never logged
    bridge.store("webhook-secret", f"{webhook_secret} {UNDECODABLE_SECRET}")
    assert bridge.send(SAMPLES["refund.succeeded.json"]) == (500, {"error": "bridge misconfigured"})
    bridge.store("webhook-secret", webhook_secret)
    # A 400 at ingest: dead-lettered at once, with Customer.io's answer as the reason.
    bridge.sandbox.script(ScriptedResponse(400, body=quoted))
    assert bridge.send(BODIES["payment.metadata-secrets.json"]) == (202, {"status": "dead_lettered"})
    keep_sandbox_records(bridge, cap)

    # -- Customer.io down: parked, then dead-lettered by a 400 that quotes addresses ----------------
    names = sorted(BODIES)
    first, second = names[: len(names) // 2], names[len(names) // 2 :]
    bridge.sandbox.script(*([503] * len(first)))
    for name in first:
        assert bridge.send(BODIES[name]) == (202, {"status": "queued"}), name
    cap.queued.extend(peek(bridge.sqs, bridge.queue_url))
    bridge.sandbox.script(*[ScriptedResponse(400, body=quoted)] * 5)
    drain_with_retry_handler(bridge, cap)
    keep_sandbox_records(bridge, cap)  # and drop the scripted answers the drain did not use
    cap.dead.extend(peek(bridge.sqs, bridge.dlq_url))
    assert len(cap.dead) == len(first) + 1, "the ingest 400 and every parked webhook of the first half"

    # -- Customer.io down, then back: parked and delivered by the retry handler ---------------------
    bridge.sandbox.script(*([503] * len(second)))
    for name in second:
        assert bridge.send(BODIES[name]) == (202, {"status": "queued"}), name
    queued_second = peek(bridge.sqs, bridge.queue_url)
    assert len(queued_second) == len(second)
    cap.queued.extend(queued_second)
    drain_with_retry_handler(bridge, cap)
    keep_sandbox_records(bridge, cap)
    assert peek(bridge.sqs, bridge.queue_url) == []

    listing = list_dead_letters(bridge.sqs, bridge.dlq_url, wait_seconds=0)
    table = format_dead_letters(listing)
    listing_json = dead_letters_json(listing)
    assert len(listing) == len(cap.dead) and "HTTP 400" in table

    # -- what the logs hold ------------------------------------------------------------------------
    out = capsys.readouterr()
    foreign = [r for r in caplog.records if not r.name.startswith("dodo_cio_local.sandbox")]
    logs = "\n".join(
        [cap.stream.getvalue(), out.out, out.err, *(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in foreign)]
    )
    for expected in ('"webhook_id"', "parked for retry", "dead-lettered", "retry batch done", "signature rejected"):
        assert expected in logs, f"log capture missed {expected!r}: the check below would prove nothing"
    assert "cannot verify webhooks" in logs and "payload unreadable" in logs
    assert any(f"{e[0]}***@{e.split('@')[1]}" in logs for e in emails), "the 400's quoted address, masked"
    for secret in [*webhook_secrets, api_key, *payload_secrets, UNDECODABLE_SECRET, UNDECODABLE_SECRET[6:]]:
        assert not contains(logs, secret), f"a secret reached the logs: {secret[:6]}…"
    for email in emails:
        local, _, domain = email.partition("@")
        assert not contains(logs, email), f"{email} logged unmasked"
        assert not contains(logs, f"{local[1:]}@{domain}"), f"{email} logged half masked"

    # -- what left for Customer.io -----------------------------------------------------------------
    track = [o for o in cap.http if o.url.startswith(bridge.sandbox.base_url)]
    assert track and all(o.url.startswith(bridge.sandbox.base_url) for o in cap.http), [o.url for o in cap.http]
    assert len(track) == len(cap.sandbox), "every request the bridge sent reached the sandbox"
    expected_auth = f"{site_id}:{api_key}".encode()
    for o in track:
        auth = {k.lower(): v for k, v in o.headers.items()}["authorization"]
        scheme, _, token = auth.partition(" ")
        assert scheme == "Basic" and base64.b64decode(token, validate=True) == expected_auth
        others = "\n".join(f"{k}: {v}" for k, v in o.headers.items() if k.lower() != "authorization")
        text = "\n".join([o.url, others, o.body.decode("utf-8")])
        for secret in [*webhook_secrets, api_key, *payload_secrets]:
            assert not contains(text, secret), f"{secret[:6]}… sent to Customer.io: {o.url}"
    # Not vacuous: the events that carried the secrets did go out, minus the secrets.
    ops = [op for rec in cap.sandbox if rec.json for op in (rec.json.get("batch") or [rec.json])]
    payment = next(op for op in ops if op.get("attributes", {}).get("payment_id") == "pay_leaktest_metadata")
    assert payment["attributes"]["metadata"] == {"app_user_id": "usr_01927", "utm_source": "newsletter", "plan": "pro"}
    assert any(op.get("attributes", {}).get("license_key_id") == "lic_leaktest_known_key" for op in ops)
    credit = next(op for op in ops if op.get("attributes", {}).get("customer_id") == "cus_9LeakTestQw3Er5Ty7")
    assert credit["attributes"]["reason"] == "top-up"
    assert not set(credit["attributes"]) & {"api_key", "key", *GENERIC_SECRETS}

    # -- what SQS holds ----------------------------------------------------------------------------
    assert len(cap.queued) == len(BODIES) and cap.dead
    for message in cap.queued + cap.dead:
        attributes = json.dumps(message.get("MessageAttributes", {}))
        assert "@" not in attributes and not any(contains(attributes, e) for e in emails), attributes
        for secret in [*webhook_secrets, api_key, *payload_secrets]:
            assert not contains(message["Body"], secret), f"{secret[:6]}… parked on a queue"

    # -- what the operator sees --------------------------------------------------------------------
    assert not EMAIL_LIKE.search(table), table
    assert not EMAIL_LIKE.search(listing_json), listing_json
