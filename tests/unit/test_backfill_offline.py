"""`dodo-cio backfill` without a network: the op building, the paging, checkpointing and delivery
rules with an in-memory Dodo source and a scripted Customer.io sender; towards the Pipelines API the
real `PipelinesClient` over a fake session; and where the deployment's settings come from."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.delivery.destination import (
    PIPELINES_LIMITS,
    TRACK_LIMITS,
    ApiLimits,
    PipelinesCredentials,
    TrackCredentials,
)
from dodo_cio.delivery.pipelines.client import PipelinesClient
from dodo_cio.delivery.track import DeliveryResult, classify_response
from dodo_cio.mapping.limits import MAX_BATCH_BYTES, encoded_size
from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, map_event
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio_cli import backfill, backfill_command, backfill_destination, backfill_source, backfill_state
from dodo_cio_cli.backfill import Backfill, BackfillOptions, Pacer, format_summary
from dodo_cio_cli.backfill_destination import Destination
from dodo_cio_cli.backfill_source import BackfillError, Built, Listing, OpBuilder
from dodo_cio_cli.backfill_state import State
from dodo_cio_local.dodo_standin import make_customer, make_subscription
from support.fake_http import FakeResponse, FakeSession
from support.fake_stack import FakeStack

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000
CUSTOMERS = Listing("customers", "customers")
ACTIVE = Listing("subscriptions:active", "subscriptions", "active")


# -- building ops -----------------------------------------------------------------------------------


def test_customer_becomes_one_identify_stamped_with_the_read_time() -> None:
    built = OpBuilder(MappingConfig()).build(CUSTOMERS, make_customer(3), NOW)
    assert built.problem is None
    (op,) = built.ops
    assert op == {
        "type": "person",
        "identifiers": {"id": "cus_00003"},
        "action": "identify",
        "timestamp": NOW,
        "attributes": {
            "email": "customer3@example.com",
            "name": "Customer 3",
            "first_name": "Customer",
            "last_name": "3",
            "phone": "+15550000003",
            "dodo_customer_id": "cus_00003",
        },
        "_customer_id": "cus_00003",
        "_state": "customer",
    }


@pytest.mark.parametrize(
    ("strategy", "customer", "expected"),
    [
        ("email", 3, {"email": "customer3@example.com"}),
        ("metadata:app_user_id", 4, {"id": "user-4"}),
    ],
)
def test_customer_identifier_follows_the_bridge_strategy(
    strategy: str, customer: int, expected: dict[str, str]
) -> None:
    mapping = MappingConfig(identifier=IdentifierStrategy.parse(strategy))
    (op,) = OpBuilder(mapping).build(CUSTOMERS, make_customer(customer), NOW).ops
    assert op["identifiers"] == expected


def test_customer_without_the_chosen_identifier_is_a_problem_not_a_fallback() -> None:
    mapping = MappingConfig(identifier=IdentifierStrategy.parse("metadata:app_user_id"))
    built = OpBuilder(mapping).build(CUSTOMERS, make_customer(3), NOW)  # no app_user_id
    assert built.ops == []
    assert built.problem is not None
    assert "not sent" in built.problem


def test_removed_attributes_apply_to_customers_too() -> None:
    mapping = MappingConfig(removed_attributes={"*": frozenset({"phone", "name"})})
    (op,) = OpBuilder(mapping).build(CUSTOMERS, make_customer(3), NOW).ops
    assert set(op["attributes"]) == {"email", "first_name", "last_name", "dodo_customer_id"}


def test_subscription_identify_matches_what_the_webhook_would_set() -> None:
    """Parity: the backfilled profile equals the one a subscription.active webhook produces."""
    body = (ROOT / "events/dodo/subscription.active.json").read_bytes()
    envelope = parse_envelope(parse_json(body))
    payload = parse_payload(envelope)
    assert payload is not None
    webhook_ops = map_event(DodoEvent("msg_1", envelope, payload), MappingConfig())
    # The subscription's piece of state; the customer's own fields come from the customers listing.
    webhook_identify = next(op for op in webhook_ops if op.get("_state") == "subscription")
    listed = {k: v for k, v in envelope.data.items() if k != "payload_type"}  # what GET /subscriptions returns
    (op,) = OpBuilder(MappingConfig()).build(ACTIVE, listed, NOW).ops
    assert op["action"] == "identify"
    assert op["timestamp"] == NOW
    assert op["identifiers"] == webhook_identify["identifiers"]
    assert op["attributes"] == webhook_identify["attributes"]
    assert op["attributes"]["subscription_status"] == "active"


def test_renamed_events_and_statuses_without_a_webhook_type() -> None:
    mapping = MappingConfig(event_names={"subscription.active": "subscription_started"})
    ops = OpBuilder(mapping, events=True).build(ACTIVE, make_subscription(1, "active", make_customer(1)), NOW).ops
    assert [op.get("name") for op in ops] == [None, "subscription_started"]
    pending = OpBuilder(mapping, events=True).build(ACTIVE, make_subscription(2, "pending", make_customer(2)), NOW)
    assert [op["action"] for op in pending.ops] == ["identify"]  # no subscription.pending webhook: no event


def test_a_failing_transform_or_an_unusable_object_is_reported_not_raised() -> None:
    def broken(event: Any, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise KeyError("plan for someone@example.com")

    mapping = MappingConfig(transforms={"*": broken})
    built = OpBuilder(mapping).build(ACTIVE, make_subscription(1, "active", make_customer(1)), NOW)
    assert built.problem is not None and "KeyError" in built.problem and "someone@example.com" not in built.problem
    nobody = OpBuilder(MappingConfig()).build(CUSTOMERS, {"email": "x@example.com"}, NOW)
    assert nobody.problem is not None and "customer_id" in nobody.problem


def test_ops_are_fitted_to_the_limits_and_unfixable_ones_reported() -> None:
    customer = make_customer(1) | {"name": "n" * 5000}
    built = OpBuilder(MappingConfig()).build(CUSTOMERS, customer, NOW)
    assert built.problem is None and built.warnings
    assert len(built.ops[0]["attributes"]["name"].encode()) <= 1000
    long_id = make_customer(2) | {"customer_id": "c" * 200}
    assert "cannot be sent" in (OpBuilder(MappingConfig()).build(CUSTOMERS, long_id, NOW).problem or "")


def test_mask_op_hides_emails_phones_and_names() -> None:
    (op,) = (
        OpBuilder(MappingConfig(identifier=IdentifierStrategy.parse("email")))
        .build(CUSTOMERS, make_customer(3), NOW)
        .ops
    )
    masked = backfill_source.mask_op(op)
    text = json.dumps(masked)
    assert "customer3@example.com" not in text and "c***@example.com" in text
    assert masked["attributes"]["phone"].endswith("03") and "5550" not in masked["attributes"]["phone"]
    assert masked["attributes"]["name"] == "C*** 3***"
    assert (masked["attributes"]["first_name"], masked["attributes"]["last_name"]) == ("C***", "3***")
    assert op["identifiers"] == {"email": "customer3@example.com"}  # the original is untouched


def test_statuses_are_checked() -> None:
    assert backfill_source.parse_statuses("active, on_hold,active") == ("active", "on_hold")
    with pytest.raises(BackfillError, match="unknown trialing"):
        backfill_source.parse_statuses("active,trialing")


# -- the run ----------------------------------------------------------------------------------------


class MemorySource:
    """Dodo listings in memory, 0-based pages; `fail_at` raises at a (listing key, page)."""

    def __init__(self, customers: int, active: int = 0, *, fail_at: tuple[str, int, BaseException] | None = None):
        self.data = {
            "customers": [make_customer(n) for n in range(customers)],
            "subscriptions:active": [make_subscription(n, "active", make_customer(n)) for n in range(active)],
        }
        self.fail_at = fail_at
        self.reads: list[tuple[str, int]] = []

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
        if self.fail_at and self.fail_at[:2] == (listing.key, page_number):
            raise self.fail_at[2]
        self.reads.append((listing.key, page_number))
        items = self.data.get(listing.key, [])
        return items[page_number * page_size : (page_number + 1) * page_size]


class ScriptedSender:
    """Answers with scripted HTTP statuses (then 200), classified like the real client."""

    def __init__(self, *answers: tuple[int, bytes] | int) -> None:
        self.answers = [a if isinstance(a, tuple) else (a, b"") for a in answers]
        self.requests: list[list[dict[str, Any]]] = []

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        self.requests.append(list(ops))
        status, body = self.answers.pop(0) if self.answers else (200, b"{}")
        headers = {"Retry-After": "7"} if status == 429 else {}
        results, retry_after = classify_response(status, body, headers, len(ops), batch=len(ops) > 1)
        return DeliveryResult(results, status, retry_after)

    def delivered_ids(self) -> list[str]:
        return [op["identifiers"]["id"] for request in self.requests for op in request]


def _run(
    source: Any,
    sender: Any,
    tmp_path: Path | None = None,
    *,
    state: State | None = None,
    sleeps: list[float] | None = None,
    destination: Destination | None = None,
    builder: OpBuilder | None = None,
    **options: Any,
) -> tuple[backfill.Report, State, str]:
    """One run at the clock NOW; its state file in `tmp_path` when given, its sleeps into `sleeps`."""
    opts = BackfillOptions(**({"statuses": ("active",), "page_size": 10, "rate": 1e6, "progress": False} | options))
    state = state or State(fingerprint={"test": 1})
    err = io.StringIO()
    job = Backfill(
        source,
        sender,
        builder or OpBuilder(MappingConfig(), events=opts.events),
        opts,
        state=state,
        state_path=tmp_path / "state.json" if tmp_path else None,
        err=err,
        clock=lambda: NOW,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        destination=destination,
    )
    return job.run(), state, err.getvalue()


def test_interrupted_run_resumes_without_resending_completed_pages(tmp_path: Path) -> None:
    source = MemorySource(35, fail_at=("customers", 2, KeyboardInterrupt()))
    sender = ScriptedSender()
    report, _, _ = _run(source, sender, tmp_path, statuses=())
    assert report.code == 1 and "interrupted" in report.message and "customers from page 2" in report.message
    assert len(sender.delivered_ids()) == 20
    saved = State.load(tmp_path / "state.json")
    assert saved is not None and saved.listings["customers"].next_page == 2 and not saved.completed_at

    resumed_source, resumed_sender = MemorySource(35), ScriptedSender()
    report, _, _ = _run(resumed_source, resumed_sender, tmp_path, state=saved, statuses=())
    assert report.code == 0
    assert resumed_source.reads == [("customers", 2), ("customers", 3), ("customers", 4)]
    assert sorted(sender.delivered_ids() + resumed_sender.delivered_ids()) == [f"cus_{n:05d}" for n in range(35)]


def test_transient_failures_are_retried_with_backoff_and_retry_after(tmp_path: Path) -> None:
    sleeps: list[float] = []
    sender = ScriptedSender(503, 429, 200)
    report, _, err = _run(MemorySource(5), sender, tmp_path, statuses=(), sleeps=sleeps)
    assert report.code == 0 and len(sender.requests) == 3
    assert sleeps == [1.0, 7.0]  # 1 s backoff, then the 7 s Retry-After of the 429
    assert "retrying in 1.0 s" in err


def test_persistent_failure_stops_after_max_attempts_without_advancing(tmp_path: Path) -> None:
    sender = ScriptedSender(*([503] * 10))
    report, state, _ = _run(MemorySource(15), sender, tmp_path, statuses=(), max_attempts=3)
    assert report.code == 1 and "still failing after 3 attempts" in report.message
    assert len(sender.requests) == 3
    assert state.listings["customers"].next_page == 0 and state.listings["customers"].delivered == 0


def test_credentials_rejected_mid_run_is_exit_2(tmp_path: Path) -> None:
    sender = ScriptedSender(200, (401, b'{"meta":{"error":"Unauthorized request"}}'))
    report, state, _ = _run(MemorySource(25), sender, tmp_path, statuses=())
    assert report.code == 2
    assert "HTTP 401" in report.message and "site id and API key" in report.message
    assert state.listings["customers"].next_page == 1  # the first page went through


def test_large_pages_are_split_into_requests_within_the_byte_limit(tmp_path: Path) -> None:
    class FatSource(MemorySource):
        def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
            items = super().page(listing, page_number, page_size)
            return [item | {"name": "x" * 900, "metadata": {}} for item in items]

    sender = ScriptedSender()
    report, _, _ = _run(FatSource(100), sender, tmp_path, statuses=(), page_size=100)
    assert report.code == 0
    assert all(encoded_size({"batch": request}) < MAX_BATCH_BYTES for request in sender.requests)
    assert sum(len(r) for r in sender.requests) == 100


def test_rate_limit_paces_requests(tmp_path: Path) -> None:
    sleeps: list[float] = []
    source = MemorySource(30)
    _run(source, ScriptedSender(), tmp_path, statuses=(), rate=2.0, sleeps=sleeps)
    assert len(sleeps) >= 2  # three requests at 2 per second: the limiter waited between them


def test_dry_run_counts_what_it_would_send_and_masks_the_samples(tmp_path: Path) -> None:
    report, _, _ = _run(MemorySource(12, active=3), None, tmp_path, dry_run=True, sample=2)
    assert report.code == 0 and report.ops == 15 and report.requests == 3
    assert len(report.samples) == 2 and "@example.com" in json.dumps(report.samples)
    assert "customer0@example.com" not in json.dumps(report.samples)
    summary = backfill.format_summary(report, BackfillOptions(dry_run=True), elapsed=0.1)
    assert summary.startswith("dry run: nothing was sent") and "12 would send" in summary


def test_a_server_repeating_its_last_page_does_not_loop_forever(tmp_path: Path) -> None:
    class Stuck(MemorySource):
        def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
            self.reads.append((listing.key, page_number))
            return self.data["customers"][:page_size]

    source = Stuck(5)
    report, _, err = _run(source, ScriptedSender(), tmp_path, statuses=())
    assert report.code == 0 and len(source.reads) == 2 and "repeats the previous page" in err


# -- state ------------------------------------------------------------------------------------------


def test_state_is_saved_without_a_temporary_file_left_and_an_unreadable_one_is_refused(tmp_path: Path) -> None:
    """Loading what was saved: the resumed runs here and in tests/integration/test_backfill.py."""
    path = tmp_path / "s.json"
    State(fingerprint={"a": 1}, started_at=5).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    path.write_text("{not json")
    with pytest.raises(BackfillError, match="unreadable"):
        State.load(path)


def test_a_state_file_from_another_backfill_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    State(fingerprint={"identifier": "email", "page_size": 100}).save(path)
    with pytest.raises(BackfillError, match=r"different backfill \(identifier changed\)"):
        backfill_command._open_state(path, {"identifier": "customer_id", "page_size": 100}, restart=False)
    fresh = backfill_command._open_state(path, {"identifier": "customer_id", "page_size": 100}, restart=True)
    assert fresh.listings == {}


# -- customize.py and the command line --------------------------------------------------------------


def test_load_mapping_uses_the_merchants_customize(tmp_path: Path) -> None:
    (tmp_path / "recipes_here.py").write_text("DROP = frozenset({'phone'})\n")
    (tmp_path / "customize.py").write_text(
        "from recipes_here import DROP\n"
        "def build_mapping(defaults):\n"
        "    return defaults.with_changes(removed_attributes={'*': DROP})\n"
    )
    mapping, source = backfill_command.load_mapping(
        MappingConfig(identifier=IdentifierStrategy.parse("email")), str(tmp_path / "customize.py")
    )
    assert mapping.removed_attributes == {"*": frozenset({"phone"})}
    assert mapping.identifier.kind == "email" and source.endswith("customize.py")
    (tmp_path / "bad.py").write_text("def build_mapping(defaults):\n    return 42\n")
    with pytest.raises(BackfillError, match="must return a MappingConfig"):
        backfill_command.load_mapping(MappingConfig(), str(tmp_path / "bad.py"))
    with pytest.raises(BackfillError, match="no file"):
        backfill_command.load_mapping(MappingConfig(), str(tmp_path / "missing.py"))


def test_repository_customize_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    mapping, source = backfill_command.load_mapping(MappingConfig(), None)
    assert source == "functions/ingest/customize.py" and isinstance(mapping, MappingConfig)


# -- towards the Pipelines API: the real PipelinesClient over a fake session (sandbox runs: tests/integration) --

URL = "https://cdp.customer.io/v1"
KEY = "offline-pipelines-key"


REFUSED = '{"meta":{"errors":["refused"]}}'


def _pipelines(limits: ApiLimits = PIPELINES_LIMITS) -> Destination:
    return Destination(api="pipelines", url=URL, limits=limits)


def test_every_request_a_pipelines_send_makes_is_paced_and_counted() -> None:
    """The client packs one planned request into several (here 2 calls each): each one counts."""
    small = ApiLimits(32_000, 500_000, 2, 1, 1.0)
    session = FakeSession(*[FakeResponse(200, "{}")] * 3)
    pacer_sleeps: list[float] = []
    pacer = Pacer(1.0, pacer_sleeps.append)
    client = PipelinesClient(URL, KEY, session=session, limits=small, pace=pacer)
    opts = BackfillOptions(statuses=(), page_size=10, rate=1.0, progress=False)
    job = Backfill(MemorySource(6), client, OpBuilder(MappingConfig()), opts, clock=lambda: NOW, pacer=pacer)
    report = job.run()
    assert report.code == 0 and len(session.calls) == 3
    assert report.requests == pacer.requests == 3
    assert len(pacer_sleeps) >= 2  # at one request per second, the 2nd and 3rd waited


def test_the_planner_uses_the_destinations_limits() -> None:
    seen: list[int] = []

    class Counting:
        def send(self, ops: Any) -> Any:
            from dodo_cio.delivery.track import DeliveryResult, OpResult

            seen.append(len(ops))
            return DeliveryResult(tuple(OpResult("delivered") for _ in ops), 200, None)

    report, _, _ = _run(
        MemorySource(7), Counting(), destination=_pipelines(ApiLimits(32_000, 500_000, 3, 3000, 3.0)), statuses=()
    )
    assert report.code == 0 and seen == [3, 3, 1]
    report, _, _ = _run(MemorySource(7), Counting(), destination=Destination(), statuses=())
    assert seen[3:] == [7]  # Track's 1,000 ops per request


def test_a_refused_key_stops_the_run_with_the_pipelines_hint() -> None:
    client = PipelinesClient(URL, KEY, session=FakeSession(FakeResponse(401, REFUSED)))
    report, state, _ = _run(MemorySource(5), client, destination=_pipelines(), statuses=())
    assert report.code == 2
    assert "HTTP 401" in report.message and "Pipelines API key" in report.message and "site id" not in report.message
    assert state.listings["customers"].delivered == 0


def test_a_call_pipelines_refuses_is_that_customers_failure_only() -> None:
    """Pipelines answers 400 for the whole request; the client narrows it down to the call at fault."""
    answers = [FakeResponse(s, REFUSED if s == 400 else "{}") for s in (400, 200, 400, 200, 400)]  # 4th at fault
    client = PipelinesClient(URL, KEY, session=FakeSession(*answers))
    report, state, _ = _run(MemorySource(4), client, destination=_pipelines(), statuses=())
    listing = state.listings["customers"]
    assert report.code == 1 and (listing.delivered, listing.failed) == (3, 1)
    assert listing.failures[0]["id"] == "cus_00003" and listing.failures[0]["reason"].startswith("HTTP 400")


class WithATrackOnlyOp(OpBuilder):
    """Adds a `delete` (Track only) to the second customer's ops."""

    def build(self, listing: Listing, raw: Any, now: int) -> Built:
        built = super().build(listing, raw, now)
        if raw["customer_id"] == "cus_00001":
            built.ops.append({"type": "person", "action": "delete", "identifiers": {"id": "cus_00001"}})
        return built


def test_a_dry_run_shows_pipelines_calls_and_reports_what_pipelines_cannot_say() -> None:
    report, _, _ = _run(
        MemorySource(3),
        None,
        destination=_pipelines(),
        builder=WithATrackOnlyOp(MappingConfig()),
        dry_run=True,
        sample=5,
    )
    listing = report.per_listing["customers"]
    assert (listing.delivered, listing.failed) == (2, 1)
    assert listing.failures == [
        {"id": "cus_00001", "reason": "not sent: the Pipelines API has no call for a person 'delete' op (Track only)"}
    ]
    assert [s["type"] for s in report.samples] == ["identify", "identify"]
    assert all("userId" in s and "traits" in s and "identifiers" not in s for s in report.samples)
    assert "customer0@example.com" not in json.dumps(report.samples)  # masked as for Track
    summary = format_summary(report, BackfillOptions(dry_run=True), elapsed=0.1, requests_to="the Pipelines API")
    assert "request to the Pipelines API" in summary and "1 failed" in summary


# -- the command: settings, credentials, rate -------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backfill_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_stack_gives_the_api_url_and_the_whole_default_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no customize.py: the defaults as the functions build them
    monkeypatch.setenv("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", "9")  # the stack has its own (empty) value
    stack = FakeStack(
        dict(
            SsmParameterPath="/shop",
            CustomerioApi="pipelines",
            CustomerioRegion="eu",
            CustomerioPipelinesUrl="",
            CustomerioIdentifier="email",
            CustomerioSubscriptionObjectTypeId="",
            CustomerioProfileMetadata="none",
        )
    )
    target = backfill_command._target(_args("--stack", "bridge"), lambda service, region: stack)
    assert target.destination == Destination("pipelines", "eu", None, "https://cdp-eu.customer.io/v1", PIPELINES_LIMITS)
    assert target.mapping.identifier.text == "email" and target.mapping.profile_metadata == "none"
    assert target.mapping.subscription_object_type_id is None
    assert target.ssm_path == "/shop"

    stack.parameters["CustomerioSubscriptionObjectTypeId"] = "3"
    target = backfill_command._target(_args("--stack", "bridge", "--api", "track"), lambda s, r: stack)
    assert (target.destination.api, target.destination.limits) == ("track", TRACK_LIMITS)
    assert target.mapping.subscription_object_type_id == "3"  # objects, as the bridge writes them


def test_without_a_stack_a_bad_pipelines_url_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A good one is used: tests/integration/test_summary.py's Pipelines backfill sets only the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    monkeypatch.setenv("CUSTOMERIO_PIPELINES_URL", "http://127.0.0.1:9/v2")
    with pytest.raises(BackfillError, match="CUSTOMERIO_PIPELINES_URL must be an http"):
        backfill_command._target(_args(), lambda s, r: pytest.fail("no stack, no AWS"))


def test_the_pipelines_key_in_the_environment_wins_over_the_one_in_ssm() -> None:
    """Each API's keys from SSM: test_backfill.py's stack runs; the refusals: test_cli.py's usage errors."""

    def read(name: str, what: str) -> str:
        return {"customerio-pipelines-api-key": "from-ssm"}.get(name, "")

    env = {"CUSTOMERIO_PIPELINES_API_KEY": "from-env"}
    assert _pipelines().credentials(read, env) == PipelinesCredentials("from-env")


def test_the_state_file_names_a_track_workspace_by_its_site_id_and_a_pipelines_one_by_its_url() -> None:
    assert backfill_destination.workspace_key(TrackCredentials("site", "key")) == "site"
    assert backfill_destination.workspace_key(PipelinesCredentials("key")) == ""

    def doc(url: str, site_id: str) -> dict[str, Any]:
        return backfill_state.fingerprint(
            dodo="d", customerio_url=url, site_id=site_id, identifier="customer_id", events=False, page_size=100
        )

    # A rotated Pipelines key resumes; another region (or API) does not.
    assert doc(URL, "") == doc(URL, backfill_destination.workspace_key(PipelinesCredentials("rotated")))
    assert doc(URL, "")["customerio"] != doc("https://cdp-eu.customer.io/v1", "")["customerio"]
    assert "secret-site" not in json.dumps(doc("https://track.customer.io", "secret-site"))  # a Track site id, hashed
