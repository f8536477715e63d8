"""Planning: packing the ops of many parked messages into few `/api/v2/batch` requests.

Customer.io's batch endpoint takes up to 1,000 ops in under 500 KB, and each request costs a
share of the rate the retry path may use (`pacing`), so a batch of messages goes out in as few
requests as the limits allow. A message's ops stay in one request whenever they fit together, so
one answer decides the whole message (delivered, or waiting as a unit); only a message too big
for one request is spread over several.

Customer.io may still answer 413 (its own idea of size can differ from ours, or the limit may
shrink). `send_with_split` then halves the request until each part is accepted; a single op it
keeps refusing can never be delivered, so that op alone becomes a permanent failure.

Each op's fate (`OpFate`) keeps the HTTP status and any `Retry-After`, which the verdicts need to
tell a dead letter from a wait and to size the wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from dodo_cio.delivery.track import DeliveryResult, OpResult
from dodo_cio.mapping.limits import MAX_BATCH_BYTES, encoded_size

_BATCH_OVERHEAD: Final = len('{"batch":[]}')
MAX_OPS_PER_REQUEST: Final = 1000
NOT_SENT_REASON: Final = "not sent: too little time left in this invocation"


class Sender(Protocol):
    """The part of `TrackClient` planning needs: one `/api/v2/batch` request."""

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult: ...


@dataclass(frozen=True, slots=True)
class OpFate:
    """What became of one op: its classified result, the HTTP status and any `Retry-After`."""

    result: OpResult
    status: int | None
    retry_after: float | None


def plan_requests(
    messages: Sequence[list[dict[str, Any]]],
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    max_ops: int = MAX_OPS_PER_REQUEST,
) -> list[list[tuple[int, int]]]:
    """Pack (message index, op index) pairs into requests under the byte and count limits.

    A message's ops go into one request whenever they fit together, so one answer decides the
    message; only a message too big for one request is spread over several. Order is kept, so the
    fates map back to messages by position.
    """
    requests: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size = _BATCH_OVERHEAD
    for m_index, ops in enumerate(messages):
        sizes = [encoded_size(op) + 1 for op in ops]  # +1 for the comma
        if current and (size + sum(sizes) > max_bytes or len(current) + len(ops) > max_ops):
            requests.append(current)
            current, size = [], _BATCH_OVERHEAD
        for o_index, op_size in enumerate(sizes):
            if current and (size + op_size > max_bytes or len(current) >= max_ops):
                requests.append(current)
                current, size = [], _BATCH_OVERHEAD
            current.append((m_index, o_index))
            size += op_size
    if current:
        requests.append(current)
    return requests


def send_with_split(
    sender: Sender,
    ops: Sequence[dict[str, Any]],
    on_request: Callable[[], None],
    can_send: Callable[[], bool] = lambda: True,
) -> list[OpFate]:
    """Send ops; on 413 split in halves until each part fits (a single op that never fits is permanent).

    `on_request` runs before every request, halves included (the pacing and the request count).
    A half that `can_send` no longer has time for is a transient failure: its message was attempted,
    so it is retried with backoff rather than deferred untouched.
    """
    if not can_send():
        return [OpFate(OpResult("transient", NOT_SENT_REASON), None, None) for _ in ops]
    on_request()
    result = sender.send(ops)
    if result.status == 413:
        if len(ops) == 1:
            return [OpFate(OpResult("permanent", "HTTP 413: op too large for Customer.io"), 413, None)]
        middle = len(ops) // 2
        return send_with_split(sender, ops[:middle], on_request, can_send) + send_with_split(
            sender, ops[middle:], on_request, can_send
        )
    return [OpFate(r, result.status, result.retry_after) for r in result.results]
