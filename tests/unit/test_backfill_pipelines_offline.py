"""`dodo-cio backfill` towards the Pipelines API, without a network: the real `PipelinesClient` over
a fake session, the destination's limits and pacing, the dry run's preview, and where the
deployment's settings come from. The sandbox runs are in tests/integration/test_backfill.py.
"""

from __future__ import annotations

import argparse
import io
import json
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
from dodo_cio.mapping.mapper import MappingConfig
from dodo_cio_cli import backfill_command, backfill_destination, backfill_state
from dodo_cio_cli.backfill import Backfill, BackfillOptions, Pacer, format_summary
from dodo_cio_cli.backfill_destination import Destination
from dodo_cio_cli.backfill_source import BackfillError, Built, Listing, OpBuilder
from dodo_cio_cli.backfill_state import State
from dodo_cio_local.dodo_standin import make_customer
from support.g4_stack import FakeStack

NOW = 1_800_000_000
URL = "https://cdp.customer.io/v1"
KEY = "offline-pipelines-key"


class Customers:
    """One listing of `n` customers, in pages; every other listing is empty."""

    def __init__(self, n: int) -> None:
        self.items = [make_customer(i) for i in range(n)]

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
        if listing.key != "customers":
            return []
        return self.items[page_number * page_size : (page_number + 1) * page_size]


class Answers:
    """A requests-style session answering each POST with the next status (then 200); records them."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Any:
        self.posts.append((url, json.loads(data), headers))
        status = self.statuses.pop(0) if self.statuses else 200
        body = b"{}" if status == 200 else b'{"meta":{"errors":["refused"]}}'
        return type("Response", (), {"status_code": status, "headers": {}, "content": body})()

    def close(self) -> None:
        pass


def _pipelines(limits: ApiLimits = PIPELINES_LIMITS) -> Destination:
    return Destination(api="pipelines", url=URL, limits=limits)


def _run(
    n: int, sender: Any, destination: Destination, *, builder: OpBuilder | None = None, **options: Any
) -> tuple[Any, State, list[float]]:
    sleeps: list[float] = []
    opts = BackfillOptions(**({"statuses": (), "page_size": 10, "rate": 1e6, "progress": False} | options))
    state = State(fingerprint={"test": 1})
    job = Backfill(
        Customers(n),
        sender,
        builder or OpBuilder(MappingConfig()),
        opts,
        state=state,
        err=io.StringIO(),
        clock=lambda: NOW,
        sleep=sleeps.append,
        destination=destination,
        pacer=Pacer(opts.rate, sleeps.append),
    )
    return job.run(), state, sleeps


def test_every_request_a_pipelines_send_makes_is_paced_and_counted() -> None:
    """The client packs one planned request into several (here 2 calls each): each one counts."""
    small = ApiLimits(32_000, 500_000, 2, 1, 1.0)
    session = Answers()
    pacer_sleeps: list[float] = []
    pacer = Pacer(1.0, pacer_sleeps.append)
    client = PipelinesClient(URL, KEY, session=session, limits=small, pace=pacer)
    opts = BackfillOptions(statuses=(), page_size=10, rate=1.0, progress=False)
    job = Backfill(Customers(6), client, OpBuilder(MappingConfig()), opts, clock=lambda: NOW, pacer=pacer)
    report = job.run()
    assert report.code == 0 and len(session.posts) == 3
    assert report.requests == pacer.requests == 3
    assert len(pacer_sleeps) >= 2  # at one request per second, the 2nd and 3rd waited


def test_the_planner_uses_the_destinations_limits() -> None:
    seen: list[int] = []

    class Counting:
        def send(self, ops: Any) -> Any:
            from dodo_cio.delivery.track import DeliveryResult, OpResult

            seen.append(len(ops))
            return DeliveryResult(tuple(OpResult("delivered") for _ in ops), 200, None)

    report, _, _ = _run(7, Counting(), _pipelines(ApiLimits(32_000, 500_000, 3, 3000, 3.0)))
    assert report.code == 0 and seen == [3, 3, 1]
    report, _, _ = _run(7, Counting(), Destination())
    assert seen[3:] == [7]  # Track's 1,000 ops per request


def test_a_refused_key_stops_the_run_with_the_pipelines_hint() -> None:
    client = PipelinesClient(URL, KEY, session=Answers(401))
    report, state, _ = _run(5, client, _pipelines())
    assert report.code == 2
    assert "HTTP 401" in report.message and "Pipelines API key" in report.message and "site id" not in report.message
    assert state.listings["customers"].delivered == 0


def test_a_call_pipelines_refuses_is_that_customers_failure_only() -> None:
    """Pipelines answers 400 for the whole request; the client narrows it down to the call at fault."""
    client = PipelinesClient(URL, KEY, session=Answers(400, 200, 400, 200, 400))  # 4th call at fault
    report, state, _ = _run(4, client, _pipelines())
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
    report, _, _ = _run(3, None, _pipelines(), builder=WithATrackOnlyOp(MappingConfig()), dry_run=True, sample=5)
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


def test_without_a_stack_the_environment_chooses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUSTOMERIO_API", "pipelines")
    monkeypatch.setenv("CUSTOMERIO_PIPELINES_URL", "http://127.0.0.1:9/v1")
    target = backfill_command._target(_args(), lambda s, r: pytest.fail("no stack, no AWS"))
    assert (target.destination.api, target.destination.url) == ("pipelines", "http://127.0.0.1:9/v1")
    assert target.destination.override == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("CUSTOMERIO_PIPELINES_URL", "http://127.0.0.1:9/v2")
    with pytest.raises(BackfillError, match="CUSTOMERIO_PIPELINES_URL must be an http"):
        backfill_command._target(_args(), lambda s, r: None)


def test_credentials_are_the_chosen_apis_only() -> None:
    def read(name: str, what: str) -> str:
        return {"customerio-pipelines-api-key": "from-ssm"}.get(name, "")

    pipelines = _pipelines()
    assert pipelines.credentials(read, {}) == PipelinesCredentials("from-ssm")
    assert pipelines.credentials(read, {"CUSTOMERIO_PIPELINES_API_KEY": "from-env"}) == PipelinesCredentials("from-env")
    track_env = {"CUSTOMERIO_SITE_ID": "site", "CUSTOMERIO_API_KEY": "key"}
    with pytest.raises(BackfillError, match=r"no Customer\.io Pipelines API key.*CUSTOMERIO_PIPELINES_API_KEY"):
        pipelines.credentials(lambda name, what: "", track_env)  # Track's credentials are no use here
    assert Destination().credentials(read, track_env) == TrackCredentials("site", "key")


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
