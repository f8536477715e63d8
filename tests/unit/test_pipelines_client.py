"""Pipelines client: endpoint and body, strict mode and auth, what each answer means per op, and how
requests are split to stay within the published limits. No socket: a fake requests-style session."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import pytest
import requests

from dodo_cio.delivery.destination import PIPELINES_LIMITS, ApiLimits
from dodo_cio.delivery.pipelines import PipelinesClient, pack, pipelines_headers
from dodo_cio.delivery.pipelines.client import SPLIT_BUDGET
from dodo_cio.platform import deadline
from support.track_ops import event_op, identify_op

BASE = "https://cdp.example.test/v1"
KEY = "cdp-key-7Qm2"


def person(n: int, size: int = 0) -> dict[str, Any]:
    """An event op for customer `n`, padded with `size` bytes of properties."""
    return event_op(f"cus_{n}", event_id=f"01HGW2N7YQ8ZK3M4P5R6S7T{n:03d}", attributes={"pad": "x" * size})


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b"{}"


Responder = Callable[[str, Any], Answer | Exception]


@dataclass
class FakeSession:
    """Answers each POST with `respond(path, body)`; keeps (path, body, headers) of every request."""

    respond: Responder = lambda path, body: Answer(200)
    requests: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    closed: bool = False

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Answer:
        path = url.removeprefix(BASE)
        self.requests.append((path, json.loads(data), headers))
        answer = self.respond(path, json.loads(data))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True

    @property
    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]


def client(respond: Responder | None = None, **kwargs: Any) -> tuple[PipelinesClient, FakeSession]:
    session = FakeSession(respond) if respond else FakeSession()
    return PipelinesClient(BASE, KEY, session=session, **kwargs), session


def user_ids(body: Any) -> list[str]:
    return [item["userId"] for item in body["batch"]] if "batch" in body else [body["userId"]]


# -------------------------------------------------------------------------------------------------
# what goes out


def test_one_op_goes_to_its_own_endpoint_without_type_several_to_batch_with_it() -> None:
    identify = identify_op({"id": "cus_1"}, {"plan": None}, timestamp=1_700_000_000)
    c, session = client()
    assert c.send([identify]).delivered
    assert c.send([identify, person(1)]).delivered
    (path, body, headers), (batch_path, batch, batch_headers) = session.requests
    assert (path, body) == (
        "/identify",
        {"userId": "cus_1", "traits": {"plan": None}, "timestamp": "2023-11-14T22:13:20Z"},
    )
    assert batch_path == "/batch"
    assert [item["type"] for item in batch["batch"]] == ["identify", "track"]
    assert batch["batch"][0] == {"type": "identify", **body}
    # strict mode, and basic auth with the key as user and no password, on every request
    assert headers == batch_headers == pipelines_headers(KEY)
    assert headers["X-Strict-Mode"] == "1" and headers["Content-Type"] == "application/json"
    scheme, token = headers["Authorization"].split(" ")
    assert (scheme, base64.b64decode(token)) == ("Basic", f"{KEY}:".encode())


def test_a_merge_is_an_alias_sent_on_its_own_after_the_batch() -> None:
    identify = identify_op({"email": "new@example.com"}, {"plan": None}, timestamp=1_700_000_000)
    merge = {"type": "person", "action": "merge", "primary": {"email": "new@example.com"},
             "secondary": {"email": "old@example.com"}}  # fmt: skip
    c, session = client()
    assert c.send([merge, identify, person(1)]).delivered
    assert session.paths == ["/batch", "/alias"]  # /batch takes no alias
    assert session.requests[1][1] == {"userId": "new@example.com", "previousId": "old@example.com"}


def test_nothing_to_send_makes_no_request_and_close_closes_the_session() -> None:
    c, session = client()
    result = c.send([])
    assert (result.results, result.status, session.requests) == ((), None, [])
    c.close()
    assert session.closed


def test_an_op_pipelines_cannot_express_is_permanent_and_the_rest_still_go() -> None:
    delete = {"type": "person", "action": "delete", "identifiers": {"id": "cus_9"}}
    c, session = client()
    result = c.send([person(1), delete, person(2)])
    assert [r.outcome for r in result.results] == ["delivered", "permanent", "delivered"]
    assert "not sent" in result.results[1].reason and "'delete'" in result.results[1].reason
    assert [user_ids(body) for _, body, _ in session.requests] == [["cus_1", "cus_2"]]


# -------------------------------------------------------------------------------------------------
# classification


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        *[(status, "delivered") for status in (200, 202)],
        *[(status, "permanent") for status in (400, 422, 413)],  # 413: a lone call too large always will be
        *[(status, "config") for status in (401, 403, 404)],
        *[(status, "transient") for status in (408, 409, 429, 500, 502, 503)],
    ],
)
def test_classification_of_a_lone_call(status: int, outcome: str) -> None:
    c, _ = client(lambda path, body: Answer(status, content=b'{"meta":{"errors":["userId: required"]}}'))
    result = c.send([person(1)])
    assert ([r.outcome for r in result.results], result.status) == ([outcome], status)
    if outcome != "delivered":
        assert result.results[0].reason.startswith(f"HTTP {status}: ")
        assert "userId: required" in result.results[0].reason


@pytest.mark.parametrize(
    ("status", "outcome"), [(401, "config"), (403, "config"), (429, "transient"), (503, "transient")]
)
def test_a_batch_answer_decides_every_call_of_it(status: int, outcome: str) -> None:
    c, session = client(lambda path, body: Answer(status))
    result = c.send([person(1), person(2), person(3)])
    assert [r.outcome for r in result.results] == [outcome] * 3
    assert (len(session.requests), result.status) == (1, status)


@pytest.mark.parametrize("value", ["7", formatdate(2_000_000_000, usegmt=True)])
@pytest.mark.parametrize("status", [429, 503, 200])
def test_retry_after_is_honoured_on_a_failure_only(status: int, value: str) -> None:
    c, _ = client(lambda path, body: Answer(status, {"Retry-After": value}))
    retry_after = c.send([person(1)]).retry_after
    if status == 200:
        assert retry_after is None
    else:
        assert retry_after is not None and retry_after > 0
        assert value != "7" or retry_after == 7.0


@pytest.mark.parametrize(
    ("error", "reason"),
    [(requests.ConnectTimeout(), "timeout: ConnectTimeout"), (requests.ConnectionError(), "connection error")],
)
def test_no_answer_is_transient(error: Exception, reason: str) -> None:
    c, _ = client(lambda path, body: error)
    result = c.send([person(1), person(2)])
    assert [r.outcome for r in result.results] == ["transient"] * 2
    assert result.results[0].reason.startswith(reason)
    assert result.status is None


def test_a_deadline_already_past_sends_nothing() -> None:
    c, session = client()
    with deadline.within(deadline.Deadline(0.0)):
        result = c.send([person(1)])
    assert (result.results[0].outcome, result.results[0].reason) == ("transient", "timeout: deadline reached")
    assert session.requests == []


# -------------------------------------------------------------------------------------------------
# limits: packing by size, refusing what can never fit, halving what Customer.io refuses


@pytest.mark.parametrize(
    ("sizes", "max_bytes", "max_calls", "groups"),
    [
        ([], 100, 10, []),
        ([10, 10, 10], 100, 10, [[0, 1, 2]]),
        # 12 bytes of frame + 40 + 1 + 40 = 93; a third would be 134
        ([40, 40, 40], 100, 10, [[0, 1], [2]]),
        ([40, 40, 40], 93, 10, [[0, 1], [2]]),
        ([40, 40, 40], 92, 10, [[0], [1], [2]]),
        ([10, 10, 10, 10, 10], 1000, 2, [[0, 1], [2, 3], [4]]),
        ([80, 5, 5], 100, 10, [[0, 1], [2]]),
    ],
)
def test_pack(sizes: list[int], max_bytes: int, max_calls: int, groups: list[list[int]]) -> None:
    assert pack(sizes, max_bytes, max_calls) == groups


def test_requests_stay_within_the_batch_limit_and_results_keep_their_order() -> None:
    limits = ApiLimits(
        max_call_bytes=1_000, max_request_bytes=2_000, max_calls_per_request=1000, requests=1, per_seconds=1
    )
    c, session = client(limits=limits)
    ops = [person(n, size=600) for n in range(7)]
    result = c.send(ops)
    assert result.delivered and len(result.results) == 7
    sizes = [len(json.dumps(body, separators=(",", ":"))) for _, body, _ in session.requests]
    assert len(sizes) > 1 and max(sizes) <= 2_000
    assert [uid for _, body, _ in session.requests for uid in user_ids(body)] == [f"cus_{n}" for n in range(7)]
    assert result.status == 200


def test_a_call_over_the_per_call_limit_is_permanent_and_never_sent() -> None:
    assert (PIPELINES_LIMITS.max_call_bytes, PIPELINES_LIMITS.max_request_bytes) == (32_000, 500_000)
    assert PIPELINES_LIMITS.requests_per_second == 1000  # 3,000 requests per 3 s
    c, session = client()
    result = c.send([person(1, size=PIPELINES_LIMITS.max_call_bytes), person(2)])
    assert [r.outcome for r in result.results] == ["permanent", "delivered"]
    assert "32000-byte limit" in result.results[0].reason
    assert [user_ids(body) for _, body, _ in session.requests] == [["cus_2"]]


def refusing(*bad: str, status: int = 400) -> Responder:
    """Refuses (whole) any request that carries one of the `bad` users, as strict mode would."""
    return lambda path, body: Answer(status) if set(user_ids(body)) & set(bad) else Answer(200)


@pytest.mark.parametrize("status", [400, 413])
def test_a_refused_batch_is_halved_until_the_call_at_fault_is_alone(status: int) -> None:
    c, session = client(refusing("cus_5", status=status))
    result = c.send([person(n) for n in range(8)])
    assert [r.outcome for r in result.results] == ["delivered"] * 5 + ["permanent"] + ["delivered"] * 2
    assert result.results[5].reason.startswith(f"HTTP {status}")
    assert result.status is None  # the requests answered differently: each op's reason says how
    assert len(session.requests) == 7  # 8 -> 4+4 -> 2+2 -> 1+1: the good halves go through at once
    accepted = [uid for _, body, _ in session.requests if "cus_5" not in user_ids(body) for uid in user_ids(body)]
    assert sorted(accepted) == [f"cus_{n}" for n in range(8) if n != 5], "no call is sent again once accepted"


def test_halving_stops_at_the_budget_and_leaves_the_rest_for_a_retry() -> None:
    every = [f"cus_{n}" for n in range(64)]
    c, session = client(refusing(*every))
    result = c.send([person(n) for n in range(64)])
    assert len(session.requests) == SPLIT_BUDGET
    outcomes = {r.outcome for r in result.results}
    assert outcomes == {"permanent", "transient"}
    assert all("not narrowed down" in r.reason for r in result.results if r.outcome == "transient")


def test_after_a_transient_answer_the_rest_is_not_sent() -> None:
    limits = ApiLimits(
        max_call_bytes=1_000, max_request_bytes=1_500, max_calls_per_request=1000, requests=1, per_seconds=1
    )
    c, session = client(lambda path, body: Answer(503), limits=limits)
    result = c.send([person(n, size=600) for n in range(4)])
    assert len(session.requests) == 1
    assert [r.outcome for r in result.results] == ["transient"] * 4
    assert result.results[-1].reason == "not sent: HTTP 503: {}"


def test_pace_runs_before_every_request_but_the_first() -> None:
    paced: list[int] = []
    c, session = client(refusing("cus_1"), pace=lambda: paced.append(len(session.requests)))
    c.send([person(0), person(1)])
    assert paced == [1, 2] and len(session.requests) == 3
