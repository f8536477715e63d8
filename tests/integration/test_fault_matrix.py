"""The fault matrix: every way Customer.io or AWS can fail, on both delivery paths and both APIs, end to end.

Each scenario sends one signed Dodo webhook through the real ingest handler (moto for SQS, SSM and the state
table; the Customer.io sandbox on loopback), injects one fault, clears it, lets "Dodo" resend whatever was
answered non-2xx (same webhook-id and body), drains the retry queue with the real retry handler, and checks:
a webhook answered 2xx ends EITHER delivered exactly once OR on the DLQ with its reason (only a permanent
failure: a 400, the op a 207 names, a single op answered 413 on the retry path); one answered non-2xx is
delivered exactly once after the fault clears. "Exactly once": the event's ULID id is among the ops the
sandbox accepted and no other event id was sent for that webhook (Customer.io deduplicates by that id, so a
resend after a read timeout is no duplicate); the profile ends with the webhook's identify unless that op is
the one dead-lettered.

Paths: `ingest` (the fault answers the ingest handler) and `retry` (ingest gets a 503 and parks; the fault
answers the retry handler's first request). 401 is a wrong key an operator then fixes; 403/404 and 502/504
share 401's and 500's class (unit-tested). AWS faults (botocore's EndpointConnectionError) all end delivered
exactly once; the state table unreachable at ingest (503) is in test_deadlines.py and test_summary.py. The
table of outcomes is printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
from botocore.client import BaseClient
from botocore.exceptions import EndpointConnectionError

from dodo_cio.delivery.backoff import BackoffPolicy
from dodo_cio.delivery.destination import PIPELINES, TRACK
from dodo_cio.platform.ulid import deterministic_ulid
from dodo_cio.receiving.models import parse_envelope, parse_json
from dodo_cio_local.event_source import PollResult, SqsEventSource
from dodo_cio_local.sandbox import ScriptedResponse
from support.apigw import signed_event
from support.aws import receive_all
from support.workspace import track_ops_of_calls, track_ops_of_request

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "dodo"
PAYMENT = "payment.succeeded.json"  # identify + event: one /api/v2/batch request
LICENSE = "license_key.created.json"  # a single event op: one /api/v2/entity request

READ_TIMEOUT = 0.5  # CUSTOMERIO_READ_TIMEOUT for both handlers
STALL = 1.0  # a stalled answer arrives after this long: past the read timeout
FAST = BackoffPolicy(base=1, cap=3)  # whole-second waits; the production horizons
DRAIN_TIMEOUT = 10.0
EMPTY_RECHECK = 0.01  # seconds between the two empty reads that mean drained (see Harness.drain)

Path_ = Literal["ingest", "retry"]
# What must be true once everything settled:
#   delivered      the identify (if the webhook has one) and the event reached Customer.io
#   dlq_identify   the identify is on the DLQ with its reason; the event was delivered exactly once
#   dlq_all        every op (the event included) is on the DLQ with its reason; nothing delivered
Expect = Literal["delivered", "dlq_identify", "dlq_all"]


# -- the faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What Customer.io does to one request: scripted answers, or nothing listening at all."""

    label: str
    script: tuple[ScriptedResponse, ...] = ()
    refused: bool = False
    sample: str = PAYMENT
    ingest_answer: int = 202  # what the ingest handler answers Dodo when the fault hits it
    # outcome on the ingest path, outcome on the retry path
    expect: tuple[Expect, Expect] = ("delivered", "delivered")
    dlq_status: tuple[int | None, ...] = ()  # the HTTP status the DLQ message may record
    paths: tuple[Path_, ...] = ("ingest", "retry")


# Where the Data Pipelines API differs. It answers for a whole request (no 207), and the client halves
# a batch refused with 400 or 413 until the call at fault is alone, so a one-off refusal of the
# payment's two-call batch is delivered at once, a call refused alone is permanent at once (ingest
# included), and 207 is just a 2xx. Label -> (ingest answer, expect per path, DLQ statuses).
PIPELINES_DIFFERS: dict[str, tuple[int, tuple[Expect, Expect], tuple[int | None, ...]]] = {
    "400": (200, ("delivered", "delivered"), ()),
    # The batch (400) and the lone identify (400) were refused, the lone event accepted: the statuses
    # differ, so the result has none (PipelinesClient) and the DLQ reason names the identify's 400.
    "400, again on retry": (202, ("dlq_identify", "dlq_identify"), (None,)),
    "413 (batch: split)": (200, ("delivered", "delivered"), ()),
    "413 (single op)": (202, ("dlq_all", "dlq_all"), (413,)),
}
# Scenarios a Pipelines workspace cannot produce: the rows stay Track-only.
TRACK_ONLY = {"207 (identify named)", "207, identify rejected again"}


def for_api(fault: Fault, api: str) -> Fault:
    """The fault as the chosen API meets it (PIPELINES_DIFFERS)."""
    if api != PIPELINES or fault.label not in PIPELINES_DIFFERS:
        return fault
    answer, expect, dlq_status = PIPELINES_DIFFERS[fault.label]
    return replace(fault, ingest_answer=answer, expect=expect, dlq_status=dlq_status)


IDENTIFY_REJECTED = {
    "errors": [{"batch_index": 0, "reason": "invalid", "field": "attributes", "message": "scripted rejection"}]
}

FAULTS: tuple[Fault, ...] = (
    Fault("200", (ScriptedResponse(200),), ingest_answer=200),
    Fault(
        "207 (identify named)",
        (ScriptedResponse(207, body=IDENTIFY_REJECTED),),
        expect=("dlq_identify", "dlq_identify"),
        dlq_status=(207,),
    ),
    Fault("400", (ScriptedResponse(400),), expect=("dlq_all", "dlq_all"), dlq_status=(400,)),
    # What a real Customer.io does with an invalid op: it rejects it again when it comes back.
    Fault(
        "207, identify rejected again",
        (ScriptedResponse(207, body=IDENTIFY_REJECTED), ScriptedResponse(400)),
        expect=("dlq_identify", "dlq_identify"),
        dlq_status=(207, 400),
        paths=("ingest",),
    ),
    Fault(
        "400, again on retry",
        (ScriptedResponse(400), ScriptedResponse(400)),
        expect=("dlq_all", "dlq_all"),
        dlq_status=(400,),
        paths=("ingest",),
    ),
    Fault("401", (ScriptedResponse(401),)),
    Fault("413 (batch: split)", (ScriptedResponse(413),)),
    # At ingest a 413 is transient (README, "Parked message format"); the retry path splits down to
    # the single op, and a single op answered 413 can never fit: permanent.
    Fault(
        "413 (single op)",
        (ScriptedResponse(413),),
        sample=LICENSE,
        expect=("delivered", "dlq_all"),
        dlq_status=(413,),
    ),
    Fault("429", (ScriptedResponse(429),)),
    Fault("500", (ScriptedResponse(500),)),
    Fault("503", (ScriptedResponse(503),)),
    # Customer.io processes the request (200) but answers after the client gave up.
    Fault("read timeout (processed)", (ScriptedResponse(200, action="stall", delay=STALL),)),
    Fault("connection refused", refused=True),
    Fault("connection dropped", (ScriptedResponse(0, action="close"),)),
    Fault("reset mid-response", (ScriptedResponse(200, action="reset"),)),
    Fault(
        "200, body not JSON",
        (ScriptedResponse(200, body=b"<html>OK</html>", headers={"Content-Type": "text/html"}),),
        ingest_answer=200,
    ),
)


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def unreachable(service: str, *operations: str) -> Iterator[Counter[str]]:
    """Every call the named AWS service's clients make (or only `operations`) fails as if the
    endpoint could not be reached; yields a counter of the calls refused, so a test can prove the
    fault was actually hit."""
    original = BaseClient._make_api_call
    refused: Counter[str] = Counter()

    def make_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
        if client.meta.service_model.service_name == service and (not operations or operation_name in operations):
            refused[operation_name] += 1
            raise EndpointConnectionError(endpoint_url=client.meta.endpoint_url)
        return original(client, operation_name, api_params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", make_api_call)
        yield refused


@dataclass
class Webhook:
    webhook_id: str
    body: bytes
    sample: str
    event_id: str = field(init=False)
    event_time: int = field(init=False)
    customer_id: str = field(init=False)
    has_identify: bool = field(init=False)

    def __post_init__(self) -> None:
        envelope = parse_envelope(parse_json(self.body))
        self.event_id = deterministic_ulid(self.webhook_id, envelope.timestamp_ms)
        self.event_time = envelope.timestamp
        data = envelope.data
        customer = data.get("customer")
        self.customer_id = customer["customer_id"] if isinstance(customer, dict) else data["customer_id"]
        self.has_identify = isinstance(customer, dict)


def _profile_identify(op: dict[str, Any]) -> bool:
    """The webhook's own identify; the commercial summary (dodo_cio.state.summary) is its own op beside it."""
    return op.get("action") == "identify" and "payments_count" not in (op.get("attributes") or {})


@dataclass
class Harness:
    bridge: Any  # conftest.Bridge
    retry_module: ModuleType
    source: SqsEventSource
    api: str = TRACK
    answers: list[int] = field(default_factory=list)  # every answer Dodo got, in order
    dodo_retries: int = 0
    handler_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wire_sends: int = 0  # for the printed table, with `dlq` and `verdict`
    dlq: str = "-"
    verdict: str = "ERROR: raised before its verdict"

    @property
    def sandbox(self) -> Any:
        return self.bridge.sandbox

    @property
    def ingest_service(self) -> Any:
        return self.bridge.app.service()

    @property
    def retry_service(self) -> Any:
        return self.retry_module._service

    # -- Dodo

    def dodo_sends(self, hook: Webhook, *, age: int = 0) -> int:
        """One delivery attempt by Dodo, signed now (minus `age` seconds, within the 5 min tolerance)."""
        event = signed_event(
            hook.body, self.bridge.secret, webhook_id=hook.webhook_id, timestamp=int(time.time()) - age
        )
        status = int(self.bridge.invoke(event)[0])
        self.answers.append(status)
        return status

    def dodo_retries_until_2xx(self, hook: Webhook, status: int, *, limit: int = 3) -> int:
        """Dodo's retry schedule, compressed: the fault is cleared, the same webhook comes again."""
        while not 200 <= status < 300 and self.dodo_retries < limit:
            self.dodo_retries += 1
            status = self.dodo_sends(hook)
        return status

    # -- the retry function behind its event source

    def poll(self) -> PollResult:
        result = self.source.poll_once()
        if result.error is not None:
            self.handler_errors.append(f"{type(result.error).__name__}: {result.error}")
        handles = result.receipt_handles
        for message_id in result.failed:  # its backoff "has passed"
            self.bridge.sqs.change_message_visibility(
                QueueUrl=self.bridge.queue_url, ReceiptHandle=handles[message_id], VisibilityTimeout=0
            )
        return result

    def depths(self) -> tuple[int, ...]:
        """The retry queue's (visible, in flight, delayed) message counts."""
        names = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
        attrs = self.bridge.sqs.get_queue_attributes(QueueUrl=self.bridge.queue_url, AttributeNames=names)
        return tuple(int(attrs["Attributes"][name]) for name in names)

    def _empty(self) -> bool:
        if any(self.depths()):
            return False
        time.sleep(EMPTY_RECHECK)
        return not any(self.depths())

    def drain(self) -> None:
        """Poll until the retry queue holds nothing (re-parked messages wait out their 1 s delay).

        "Nothing" is two empty reads a moment apart: moto counts a queue's three depths one after the
        other, so a message whose delay or visibility timeout ends during the read is in none of them
        (a busy machine widens that window; a clean-clone run met it twice).
        """
        deadline = time.monotonic() + DRAIN_TIMEOUT
        polls = 0
        while not self._empty():
            if time.monotonic() > deadline or polls > 15:
                self.problems.append(f"retry queue not drained: (visible, in flight, delayed) = {self.depths()}")
                return
            if self.depths()[0]:
                self.poll()
                polls += 1
            else:
                time.sleep(0.1)

    # -- faults on Customer.io

    def point(self, service: Any, url: str) -> None:
        """Where this warm container's client goes (a new client on the next request): the base URL, or
        for Pipelines that URL's /v1."""
        if self.api == PIPELINES:
            service.settings = replace(service.settings, pipelines_url=url + "/v1")
        else:
            service.settings = replace(service.settings, track_url=url)
        service._clients = None

    def ops_of(self, rec: Any) -> list[dict[str, Any]]:
        """A recorded request's ops; a Pipelines request's calls said as Track ops (support.workspace)."""
        return track_ops_of_request(rec.path, rec.json) if self.api == PIPELINES else request_ops(rec)

    def accepted(self) -> list[dict[str, Any]]:
        """What the workspace now holds, as Track ops whichever API delivered it."""
        if self.api == PIPELINES:
            return track_ops_of_calls(self.sandbox.accepted_calls())
        return list(self.sandbox.accepted_ops())

    @contextlib.contextmanager
    def customerio_fault(self, fault: Fault, service: Any) -> Iterator[None]:
        """`fault` answers the next request `service` makes; Customer.io is healthy afterwards."""
        requests_before = len(self.sandbox.requests)
        if fault.refused:
            self.point(service, closed_port_url())
        else:
            self.sandbox.script(*fault.script)
        try:
            yield
        finally:
            if fault.refused:
                self.point(service, self.sandbox.base_url)
        if fault.refused:
            if len(self.sandbox.requests) != requests_before:
                self.problems.append("the refused request reached the sandbox")
        elif self.sandbox.script_depth() >= len(fault.script):
            self.problems.append("the scripted fault was never consumed: the fault did not happen")

    # -- the verdict

    def settle_stalls(self) -> None:
        """A stalled answer is recorded when the sandbox finally writes it, after the client gave up."""
        deadline = time.monotonic() + STALL + 3
        while any(r.scripted == "stall" and r.status == 0 for r in self.sandbox.requests):
            if time.monotonic() > deadline:
                self.problems.append("a stalled request never finished")
                return
            time.sleep(0.05)

    def judge(self, hook: Webhook, expect: Expect, dlq_status: tuple[int | None, ...] = ()) -> None:
        self.settle_stalls()
        requests = list(self.sandbox.requests)

        sent_events = Counter(op["id"] for rec in requests for op in self.ops_of(rec) if op.get("action") == "event")
        accepted = self.accepted()
        accepted_events = Counter(op["id"] for op in accepted if op.get("action") == "event")

        dead = receive_all(self.bridge.sqs, self.bridge.dlq_url)
        dead_docs = [json.loads(m["Body"]) for m in dead]
        dead_ops = [op for doc in dead_docs for op in doc.get("ops", [])]
        dead_actions = [op.get("action") for op in dead_ops]
        self.wire_sends = len(requests)
        self.dlq = "+".join(map(str, dead_actions)) or "-"

        p = self.problems
        if self.handler_errors:
            p.append(f"retry handler raised: {self.handler_errors}")
        if not self.answers or not 200 <= self.answers[-1] < 300:
            p.append(f"Dodo's last answer was not 2xx: {self.answers}")
        other_ids = set(sent_events) - {hook.event_id}
        if other_ids:
            p.append(f"DUPLICATE: the webhook produced other event ids {sorted(other_ids)}")
        if not self._empty():
            p.append(f"retry queue not empty: {self.depths()}")

        event_dead = any(op.get("action") == "event" and op.get("id") == hook.event_id for op in dead_ops)
        identify_dead = any(_profile_identify(op) for op in dead_ops)
        if expect == "dlq_all":
            if accepted_events:
                p.append("event delivered though expected on the DLQ")
            elif not event_dead:
                p.append("LOSS: event neither delivered nor on the DLQ")
        else:
            if hook.event_id not in accepted_events:
                p.append("LOSS: event not delivered" + (" (on the DLQ instead)" if event_dead else ""))
            elif event_dead:
                p.append("event delivered and also on the DLQ")

        if hook.has_identify:
            identifies = [op for op in accepted if _profile_identify(op)]
            last = identifies[-1] if identifies else None
            right = (
                last is not None
                and last.get("identifiers") == {"id": hook.customer_id}
                and last.get("timestamp") == hook.event_time
            )
            if expect == "delivered":
                if not right:
                    p.append("the profile did not end with the webhook's identify")
                if identify_dead:
                    p.append("identify delivered and also on the DLQ")
            elif identifies:
                p.append("identify delivered though expected on the DLQ")
            elif not identify_dead:
                p.append("LOSS: identify neither delivered nor on the DLQ")

        if expect == "delivered":
            if dead:
                p.append(f"unexpected DLQ messages: {dead_actions}")
        elif len(dead) != 1:
            p.append(f"expected exactly 1 DLQ message, found {len(dead)}")
        else:
            (message,) = dead
            doc = dead_docs[0]
            err = doc.get("last_error") or {}
            if doc.get("webhook_id") != hook.webhook_id:
                p.append(f"DLQ message is for {doc.get('webhook_id')!r}")
            if not (isinstance(err.get("reason"), str) and err["reason"]):
                p.append("DLQ message has no reason")
            if not (isinstance(err.get("at"), int) and err["at"] > 0):
                p.append(f"DLQ message has no time (at={err.get('at')!r})")
            if not (isinstance(doc.get("attempts"), int) and doc["attempts"] >= 1):
                p.append(f"DLQ message has no attempt count ({doc.get('attempts')!r})")
            if (err.get("kind"), err.get("permanent")) != ("permanent", True) or err.get("status") not in dlq_status:
                p.append(f"DLQ last_error is {err}, expected permanent with status in {dlq_status}")
            kind = (message.get("MessageAttributes") or {}).get("error_kind", {}).get("StringValue")
            if kind != "permanent":
                p.append(f"DLQ message attribute error_kind is {kind!r}")

    def conclude(self) -> None:
        self.verdict = "FAIL: " + "; ".join(self.problems) if self.problems else "ok"
        assert not self.problems, "; ".join(self.problems)


ROWS: list[tuple[str, ...]] = []


@pytest.fixture(scope="module", autouse=True)
def fault_table(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints the matrix once the module is done, past pytest's output capture (no `-s` needed)."""
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if ROWS and reporter is not None:
        rows = [("scenario", "path", "API", "answers to Dodo", "wire sends", "on DLQ", "verdict"), *ROWS]
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line("\nFault matrix (Dodo -> bridge -> Customer.io sandbox; moto SQS/SSM/DynamoDB)")
            for row in rows:
                reporter.write_line(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    ROWS.clear()


def request_ops(rec: Any) -> list[dict[str, Any]]:
    doc = rec.json
    if not isinstance(doc, dict):
        return []
    if rec.path.endswith("/batch"):
        batch = doc.get("batch")
        return [op for op in batch if isinstance(op, dict)] if isinstance(batch, list) else []
    return [doc]


@pytest.fixture
def harness(
    bridge: Any, api: str, retry: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Harness]:
    """Warm ingest and retry containers as template.yaml wires them; the retry one with fast backoff."""
    monkeypatch.setenv("CUSTOMERIO_READ_TIMEOUT", str(READ_TIMEOUT))
    service = retry.module.service()  # the production wiring: settings from env, state records on the table
    assert service.state is not None and service.settings.read_timeout == READ_TIMEOUT
    service.policy = FAST
    service.rng = lambda: 0.0  # no jitter: transient waits are SQS's 1 s minimum
    now = time.time()
    service.clock = lambda: now  # time stands still for the retry handler
    scenario, path = request.node.callspec.params["case"]
    if api == PIPELINES and scenario in TRACK_ONLY:
        pytest.skip("Pipelines answers for a whole request: it has no 207")
    assert service.settings.customerio_api == api
    h = Harness(bridge, retry.module, retry.source, api)
    yield h
    ROWS.append((scenario, path, api, " -> ".join(map(str, h.answers)) or "-", str(h.wire_sends), h.dlq, h.verdict))


def webhook(tag: str, sample: str) -> Webhook:
    slug = "".join(c if c.isalnum() else "_" for c in tag)
    return Webhook(f"msg_fault_{slug}", (SAMPLES / sample).read_bytes(), sample)


# -- Customer.io faults, on both paths -----------------------------------------------------------


def _customerio_cases() -> list[Any]:
    return [pytest.param((f.label, path), id=f"{path}-{f.label}") for f in FAULTS for path in f.paths]


@pytest.mark.parametrize("case", _customerio_cases())
def test_customerio_fault(harness: Harness, case: tuple[str, Path_]) -> None:
    label, path = case
    h = harness
    fault = for_api(next(f for f in FAULTS if f.label == label), h.api)
    hook = webhook(f"{h.api}_{path}_{label}", fault.sample)
    expect = fault.expect[0 if path == "ingest" else 1]
    if path == "ingest":
        with h.customerio_fault(fault, h.ingest_service):
            status = h.dodo_sends(hook, age=60)
        if status != fault.ingest_answer:
            h.problems.append(f"ingest answered {status}, expected {fault.ingest_answer}")
    else:
        h.sandbox.script(503)
        status = h.dodo_sends(hook, age=60)
        if status != 202:
            h.problems.append(f"ingest answered {status} to a 503, expected 202 queued")
        if h.depths()[0] != 1:
            h.problems.append(f"expected the webhook parked, queue is {h.depths()}")
        with h.customerio_fault(fault, h.retry_service):
            first = h.poll()
        if first.received != 1:
            h.problems.append(f"the retry handler's first poll received {first.received}")
        if fault.refused and len(first.failed) != 1:
            h.problems.append(f"the refused request did not leave the message for retry: {first.summary()}")
    h.dodo_retries_until_2xx(hook, status)
    h.drain()
    h.judge(hook, expect, fault.dlq_status)
    h.conclude()


# -- AWS faults --------------------------------------------------------------------------------------


def _ingest_while_unreachable(h: Harness, hook: Webhook, expected: int, never_called: str, *call: str) -> int:
    """Dodo sends `hook` while `call` (a service, optionally its operations) is unreachable: the call
    must be attempted (else the `never_called` problem) and ingest must answer `expected`."""
    with unreachable(*call) as refused:
        status = h.dodo_sends(hook, age=60)
    if not refused:
        h.problems.append(never_called)
    if status != expected:
        h.problems.append(f"ingest answered {status}, expected {expected}")
    return status


def _sqs_down_with_customerio(h: Harness, hook: Webhook) -> None:
    """Customer.io fails and SendMessage fails: nothing durable -> 500, Dodo retries later."""
    h.sandbox.script(503)
    status = _ingest_while_unreachable(h, hook, 500, "SendMessage was never attempted", "sqs", "SendMessage")
    if any(h.depths()):
        h.problems.append("something was parked although SQS was down")
    h.dodo_retries_until_2xx(hook, status)


def _ssm_down_at_cold_start(h: Harness, hook: Webhook) -> None:
    """A fresh container cannot read its secrets: 500 (misconfigured), Dodo retries later."""
    if h.bridge.app._service is not None:
        h.problems.append("the ingest container was not fresh")
    status = _ingest_while_unreachable(h, hook, 500, "SSM was never called", "ssm")
    if h.sandbox.requests:
        h.problems.append("Customer.io was called without verified secrets")
    h.dodo_retries_until_2xx(hook, status)


def _dynamodb_down_at_retry(h: Harness, hook: Webhook) -> None:
    """Parked; the retry handler's freshness check cannot reach the table -> the identify waits."""
    h.sandbox.script(503)
    status = h.dodo_sends(hook, age=60)
    if status != 202:
        h.problems.append(f"ingest answered {status}, expected 202")
    with unreachable("dynamodb") as refused:
        first = h.poll()
    if not refused or first.received != 1:
        h.problems.append(f"the fault was not hit (table calls refused {dict(refused)}, received {first.received})")


def _ssm_down_at_retry(h: Harness, hook: Webhook) -> None:
    """Parked; the retry handler cannot read the Customer.io credentials -> config wait, then delivered."""
    from aws_lambda_powertools.utilities import parameters

    h.sandbox.script(503)
    status = h.dodo_sends(hook, age=60)
    if status != 202:
        h.problems.append(f"ingest answered {status}, expected 202")
    parameters.clear_caches()  # the secrets' 5 min cache has run out
    requests_before = len(h.sandbox.requests)
    with unreachable("ssm") as refused:
        first = h.poll()
    if not refused or first.received != 1 or len(first.failed) != 1:
        h.problems.append(f"the fault was not hit (SSM calls refused {dict(refused)}, poll {first.summary()})")
    if len(h.sandbox.requests) != requests_before:
        h.problems.append("Customer.io was called without credentials")


AWS_FAULTS: dict[str, tuple[Path_, Callable[[Harness, Webhook], None]]] = {
    "SQS SendMessage down + Customer.io 503": ("ingest", _sqs_down_with_customerio),
    "SSM unreachable at cold start": ("ingest", _ssm_down_at_cold_start),
    "DynamoDB unreachable at retry": ("retry", _dynamodb_down_at_retry),
    "SSM unreachable at retry": ("retry", _ssm_down_at_retry),
}


@pytest.mark.parametrize("case", [pytest.param((name, path), id=name) for name, (path, _) in AWS_FAULTS.items()])
def test_aws_fault(harness: Harness, case: tuple[str, Path_]) -> None:
    name, _ = case
    _, run = AWS_FAULTS[name]
    h = harness
    hook = webhook(f"{h.api} {name}", PAYMENT)
    run(h, hook)
    h.drain()
    h.judge(hook, "delivered")
    h.conclude()


# -- a Retry-After answered to ingest ----------------------------------------------------------------


def test_a_retry_after_answered_to_ingest_delays_the_first_retry(bridge: Any) -> None:
    """No loss either way; but the retry must not come back before Customer.io said it may."""
    bridge.sandbox.script(ScriptedResponse(429, headers={"Retry-After": "30"}))
    status, _ = bridge.send((SAMPLES / PAYMENT).read_bytes(), webhook_id="msg_fault_retry_after_at_ingest")
    assert status == 202
    attrs = bridge.sqs.get_queue_attributes(
        QueueUrl=bridge.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesDelayed"]) == ("0", "1")
