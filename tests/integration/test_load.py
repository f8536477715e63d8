"""The load test (`make load`), small: 200 webhooks from 10 senders, nothing lost, nothing doubled.

The full run (2,000 webhooks, 20 senders) is `make load`; this one runs the same code in ~15 s.
The checker itself is tested on made-up sandbox answers, so a PASS cannot come from a blind check.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys

import pytest

from dodo_cio.mapping.mapper import MappingConfig, map_event
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_payload
from dodo_cio_testdata.loadtest import (
    AcceptedEvent,
    LoadConfig,
    Webhook,
    check_events,
    load_samples,
    make_webhooks,
    plan_deliveries,
    run_load,
)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.mark.network
def test_100_webhooks_under_load_none_lost_none_doubled(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "DODO_WEBHOOK_SECRET"):
        monkeypatch.delenv(key, raising=False)
    before, stdout = _environ(), sys.stdout
    out = io.StringIO()
    report = run_load(LoadConfig(webhooks=100, concurrency=10, seed=7), out)
    summary = out.getvalue() + report.format()
    assert _environ() == before, "the local run must restore the environment"
    assert sys.stdout is stdout, "the load test must give stdout back"

    assert report.ok and report.drained, summary
    counts = (report.webhooks, report.duplicates, report.events_delivered, report.lost, report.doubled)
    assert counts == (100, 5, 100, 0, 0), summary
    assert (report.dlq_depth, report.unacknowledged) == (0, 0), summary
    # The failure path really ran: injected 503s, deliveries parked and then delivered by the retry drain.
    assert report.injected_503 > 0, summary
    assert report.answers.get("202 queued", 0) > 0, summary
    assert report.wire_requests > report.webhooks, summary
    assert report.latency_p50_ms > 0, summary


# --- The parts, without sockets --------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhooks() -> list[Webhook]:
    return make_webhooks(30, "t0ken123", load_samples())


def test_every_webhook_is_a_distinct_event_for_a_distinct_person(webhooks: list[Webhook]) -> None:
    assert len({w.webhook_id for w in webhooks}) == 30
    assert len({w.event_id for w in webhooks}) == 30
    assert len({w.customer_id for w in webhooks}) == 30
    checked = 0
    for webhook in webhooks:
        doc = json.loads(webhook.body)
        # The id the load test expects Customer.io to see is the one the real mapping sends.
        envelope = parse_envelope(doc)
        payload = parse_payload(envelope)
        assert payload is not None
        ops = map_event(DodoEvent(webhook.webhook_id, envelope, payload), MappingConfig())
        sent_ids = [op["id"] for op in ops if op.get("action") == "event"]
        if sent_ids:
            checked += 1
            assert sent_ids == [webhook.event_id]
        data = doc["data"]
        assert webhook.customer_id in (data.get("customer") or {}).get("customer_id", data.get("customer_id"))
        if isinstance(data.get("payment_id"), str):
            assert data["payment_id"].startswith("pay_load")
    assert checked >= 25, "most sample types send an event"
    # The samples are rotated in order: the first 30 types appear (all of them once N >= the sample count).
    assert [w.event_type for w in webhooks] == [doc["type"] for _, doc in load_samples()][: len(webhooks)]


def test_duplicates_follow_their_original(webhooks: list[Webhook]) -> None:
    plan = plan_deliveries(webhooks, 0.1, 4, random.Random(1))
    assert len(plan) == 33
    assert sum(1 for _, dup in plan if dup) == 3
    position = {w.webhook_id: i for i, (w, dup) in enumerate(plan) if not dup}
    for i, (webhook, duplicate) in enumerate(plan):
        if duplicate:
            assert position[webhook.webhook_id] < i


def _accepted(webhook: Webhook, event_id: str | None = "same") -> AcceptedEvent:
    return AcceptedEvent(webhook.event_id if event_id == "same" else event_id, webhook.customer_id, webhook.event_type)


def test_check_counts_wire_duplicates_apart_and_finds_a_lost_webhook(webhooks: list[Webhook]) -> None:
    verdict = check_events(webhooks, [_accepted(w) for w in webhooks] + [_accepted(webhooks[0])])
    assert (verdict.delivered, verdict.wire_duplicates, verdict.lost, verdict.doubled) == (30, 1, [], [])
    verdict = check_events(webhooks, [_accepted(w) for w in webhooks[1:]])
    assert (verdict.lost, verdict.delivered) == ([webhooks[0]], 29)


def test_check_finds_a_second_event_id_for_one_webhook_or_an_event_id_on_another_customer(
    webhooks: list[Webhook],
) -> None:
    other_id = deterministic_ulid("msg_redelivered_as_new", 1_800_000_000_000)
    verdict = check_events(webhooks, [*(_accepted(w) for w in webhooks), _accepted(webhooks[3], other_id)])
    assert (verdict.doubled, verdict.lost) == ([webhooks[3]], [])
    crossed = AcceptedEvent(webhooks[1].event_id, webhooks[2].customer_id, webhooks[1].event_type)
    verdict = check_events(webhooks, [*(_accepted(w) for w in webhooks), crossed])
    assert verdict.doubled == [webhooks[1], webhooks[2]]


def test_check_without_event_ids_counts_by_customer(webhooks: list[Webhook]) -> None:
    unrelated = AcceptedEvent(None, "cus_someone_else", "payment.succeeded")
    events = [_accepted(w, None) for w in webhooks[1:]] + [_accepted(webhooks[5], None), unrelated]
    verdict = check_events(webhooks, events)
    assert verdict.doubled is None  # cannot tell a double from a wire duplicate without ids
    assert verdict.lost == [webhooks[0]]
    assert (verdict.wire_duplicates, verdict.other) == (1, 1)


@pytest.mark.network
def test_a_burst_over_the_workspace_limit_is_parked_and_batched_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renewal day in miniature: senders at 5x a sandbox limited to 10 requests a second, no 503s."""
    for key in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_TRACK_URL", "CUSTOMERIO_RATE_LIMIT_RPS"):
        monkeypatch.delenv(key, raising=False)
    config = LoadConfig(webhooks=150, concurrency=20, fail_rate=0, seed=11, sandbox_rate_limit=10, send_rate=50)
    report = run_load(config, io.StringIO())
    summary = report.format()
    assert report.lost == 0 and report.doubled == 0 and report.dlq_depth == 0 and report.drained, summary
    # Beyond its share ingest parked instead of sending: deferred webhooks answered 202 with no 503 injected.
    assert report.injected_503 == 0 and report.answers.get("202 queued", 0) > 0, summary
    assert report.wire_requests < report.webhooks, summary  # the retry drain batched what was parked
    assert "429 share" in summary and "requests per event" in summary
