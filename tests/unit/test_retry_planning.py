"""dodo_cio.retry.planning: packing ops into requests, and the 413 split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dodo_cio.delivery.track import DeliveryResult, OpResult
from dodo_cio.mapping.limits import MAX_BATCH_BYTES
from dodo_cio.retry.planning import MAX_OPS_PER_REQUEST, NOT_SENT_REASON, plan_requests, send_with_split
from support.track_ops import event_op


def op(tag: str, pad: int = 0) -> dict[str, Any]:
    """An event op; `pad` characters of filler make it as large as a test needs."""
    note = {"note": "é" * pad}  # 2 bytes per character in UTF-8
    return event_op(f"cus_{tag}", event_id=f"evt_{tag}", timestamp=1792055307, attributes=note)


def wire_bytes(ops: Sequence[dict[str, Any]]) -> int:
    return len(json.dumps({"batch": list(ops)}, separators=(",", ":"), ensure_ascii=False).encode())


def flatten(plan: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return [pair for request in plan for pair in request]


def all_pairs(messages: Sequence[Sequence[Any]]) -> list[tuple[int, int]]:
    return [(m, o) for m, ops in enumerate(messages) for o in range(len(ops))]


def request_ops(messages: Sequence[list[dict[str, Any]]], request: list[tuple[int, int]]) -> list[dict]:
    return [messages[m][o] for m, o in request]


# -- plan_requests ----------------------------------------------------------------------------


def test_small_messages_share_one_request_in_order() -> None:
    assert (MAX_BATCH_BYTES, MAX_OPS_PER_REQUEST) == (500_000, 1000)  # the defaults are Customer.io's limits
    assert plan_requests([]) == []
    messages = [[op("a1"), op("a2")], [op("b1")], [op("c1"), op("c2"), op("c3")]]
    assert plan_requests(messages) == [[(0, 0), (0, 1), (1, 0), (2, 0), (2, 1), (2, 2)]]


def test_count_limit_is_respected() -> None:
    messages = [[op(f"{m}_{o}") for o in range(3)] for m in range(7)]  # 21 ops
    plan = plan_requests(messages, max_ops=7)
    assert flatten(plan) == all_pairs(messages)
    # Whole messages of 3: two per request (6 ops), never 9.
    assert [len(r) for r in plan] == [6, 6, 6, 3]
    for request in plan:
        assert len({m for m, _ in request}) * 3 == len(request)


def test_exact_fit_at_the_byte_limit() -> None:
    # A request exactly one byte under the limit is fine; the planner must not overshoot by the comma.
    ops = [op("p"), op("q"), op("r")]
    exact = wire_bytes(ops)
    assert plan_requests([ops], max_bytes=exact + 1) == [[(0, 0), (0, 1), (0, 2)]]
    tight = plan_requests([ops], max_bytes=exact)
    assert flatten(tight) == [(0, 0), (0, 1), (0, 2)]
    for request in tight:
        assert wire_bytes(request_ops([ops], request)) < exact


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=6), max_size=12),
    max_bytes=st.integers(min_value=1500, max_value=6000),
    max_ops=st.integers(min_value=1, max_value=8),
)
def test_planning_properties(shape: list[list[int]], max_bytes: int, max_ops: int) -> None:
    messages = [[op(f"{m}_{o}", pad) for o, pad in enumerate(pads)] for m, pads in enumerate(shape)]
    plan = plan_requests(messages, max_bytes=max_bytes, max_ops=max_ops)
    assert flatten(plan) == all_pairs(messages), "every op once, in order"
    assert all(request for request in plan)
    for request in plan:
        ops = request_ops(messages, request)
        assert len(ops) <= max_ops
        if len(ops) > 1:
            assert wire_bytes(ops) < max_bytes
    for m, ops in enumerate(messages):
        if len(ops) <= max_ops and wire_bytes(ops) < max_bytes:
            holding = [i for i, request in enumerate(plan) if any(pair[0] == m for pair in request)]
            assert len(holding) == 1, f"message {m} fits in one request but was spread"


# -- send_with_split --------------------------------------------------------------------------


class SplitSender:
    """Answers 413 to requests of more than `max_ops` ops, 200 otherwise; records every request."""

    def __init__(self, max_ops: int) -> None:
        self.max_ops = max_ops
        self.requests: list[list[str]] = []

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        self.requests.append([o["id"] for o in ops])
        if len(ops) > self.max_ops:
            return DeliveryResult(tuple(OpResult("transient", "HTTP 413") for _ in ops), 413)
        # The reason carries the op's id so the test can check each fate lines up with its op.
        return DeliveryResult(tuple(OpResult("delivered", o["id"]) for o in ops), 200)


@pytest.mark.parametrize(
    ("n_ops", "max_ops", "expected_requests"),
    [
        (4, 4, 1),  # fits at once
        (8, 2, 7),  # 8 -> 4,4 -> 2,2,2,2
        (5, 2, 5),  # 5 -> 2 | 3 -> 3 splits into 1 | 2
        (3, 1, 5),  # 3 -> 1 | 2 -> 2 splits into 1 | 1
        (6, 3, 3),  # 6 -> 3,3
    ],
)
def test_413_halves_until_every_part_is_delivered(n_ops: int, max_ops: int, expected_requests: int) -> None:
    ops = [op(f"s{i}") for i in range(n_ops)]
    sender = SplitSender(max_ops)
    paced: list[None] = []
    fates = send_with_split(sender, ops, lambda: paced.append(None))
    assert len(paced) == expected_requests == len(sender.requests)
    assert [f.result.outcome for f in fates] == ["delivered"] * n_ops
    assert [f.result.reason for f in fates] == [o["id"] for o in ops], "fates in op order"
    assert all(f.status == 200 for f in fates)
    delivered_parts = [r for r in sender.requests if len(r) <= max_ops]
    assert [i for part in delivered_parts for i in part] == [o["id"] for o in ops]


@pytest.mark.parametrize(("n_ops", "requests"), [(1, 1), (3, 5)])  # 3 -> 1 | 2 -> 1 | 1
def test_ops_answered_413_alone_are_permanent(n_ops: int, requests: int) -> None:
    paced: list[None] = []
    fates = send_with_split(SplitSender(max_ops=0), [op(f"x{i}") for i in range(n_ops)], lambda: paced.append(None))
    assert [(f.result.outcome, f.status) for f in fates] == [("permanent", 413)] * n_ops
    assert all("413" in f.result.reason for f in fates)
    assert len(paced) == requests


def test_a_half_without_time_left_is_transient_and_not_sent() -> None:
    # 4 ops -> 413 -> the first half is sent, then time runs out before the second half.
    allowed = iter([True, True, False])
    sender = SplitSender(max_ops=2)
    paced: list[None] = []
    fates = send_with_split(sender, [op(t) for t in "abcd"], lambda: paced.append(None), lambda: next(allowed))
    assert sender.requests == [["evt_a", "evt_b", "evt_c", "evt_d"], ["evt_a", "evt_b"]]
    assert len(paced) == 2, "no request, and no pacing, for the half that was not sent"
    assert [(f.result.outcome, f.result.reason) for f in fates[2:]] == [("transient", NOT_SENT_REASON)] * 2
    assert [f.result.outcome for f in fates[:2]] == ["delivered"] * 2
    assert all(f.status is None for f in fates[2:]), "no answer arrived for them"
