"""Data Pipelines API client: the same `send(ops) -> DeliveryResult` as the Track client.

Every request is in strict mode (`X-Strict-Mode: 1`): without it Pipelines answers 200 to a call
it rejects or that is over its limits, and drops it, so a lost op would look delivered. With it a
rejected call is a 400 and a bad key a 401. Authentication is Basic with the source's API key as
the user and an empty password.

One op is one call (`render`). A lone call goes to its own endpoint (`/identify`, `/track`,
`/group`), several go to `/batch` together; the ingest path's one to three ops usually fit one
request. The client keeps within the published limits itself, because the ops it is given were
sized as Track ops and a rendered call is a little larger or smaller:

* a call of `max_call_bytes` or more as rendered is not sent: a permanent failure, with its size;
* calls are packed in order into requests of at most `max_request_bytes` and
  `max_calls_per_request` (`pack`), so one `send` may make several requests.

Answers are classified like Track's (`customerio.status_outcome`): 2xx delivered; 401/403/404
config; 408/409/425/429, 5xx and timeouts transient, honouring Retry-After; other 4xx permanent.
Pipelines answers for a whole request (there is no 207), so when a batch is refused with 400 or
413 the client halves it and sends the halves, until the call at fault is alone: that call is
permanent, the rest go through. Halving costs requests, so one `send` makes at most
`SPLIT_BUDGET` of them; calls not narrowed down by then are transient and come back through the
retry path in other company. After a transient or config answer the requests still to go are not
sent (the service is failing or the key is wrong): their ops share that outcome.

A lone call refused because it would change the email of a person addressed by `id` (strict
mode's 400 or a 409 whose answer names the email, on an identify that sets `email`) is
`customerio.email_change_refusal`: permanent, its reason naming the workspace setting, counted as
`EmailChangeRefused` like Track's. (Data Pipelines hands calls on to the workspace after answering,
so a refusal made there never reaches this answer: see the README.)

`DeliveryResult.status` is the status every request answered with, or None when they differ (each
op's reason names its own), so a caller's own split-on-413 never sends again what was delivered.
`pace`, when given, runs before each request after the first of a `send` (the caller paces the
first, as for Track).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from dodo_cio.delivery.destination import PIPELINES_LIMITS, ApiLimits
from dodo_cio.delivery.pipelines.render import Call, RenderError, render
from dodo_cio.delivery.track import (
    USER_AGENT,
    DeliveryResult,
    JsonPoster,
    OpResult,
    Outcome,
    Reply,
    Session,
    answer_reason,
    email_change_refusal,
    encode_json,
    parse_retry_after,
    status_outcome,
)

PIPELINES_HOSTS: Final = {"us": "https://cdp.customer.io/v1", "eu": "https://cdp-eu.customer.io/v1"}
SPLIT_BUDGET: Final = 32  # requests one send may make in all once it halves refused batches
_BATCH_OPEN: Final = b'{"batch":['
_BATCH_CLOSE: Final = b"]}"
_SPLIT_STATUSES: Final = frozenset({400, 413})


UNBATCHED: Final = frozenset({"alias"})


def pipelines_base_url(region: str, override: str | None = None) -> str:
    """The regional Pipelines base URL, or the override (tests, proxies), which must end in /v1.

    The region is checked even with an override, as for Track: a typo would bite once the proxy is gone.
    """
    host = PIPELINES_HOSTS.get(region.strip().lower())
    if host is None:
        raise ValueError(f"CUSTOMERIO_REGION must be 'us' or 'eu', not {region!r}")
    if not override or not override.strip():
        return host
    url = override.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.path.endswith("/v1"):
        example = PIPELINES_HOSTS["us"]
        raise ValueError(
            f"CUSTOMERIO_PIPELINES_URL must be an http(s) URL ending in /v1 (like {example}), not {override!r}"
        )
    return url


def pipelines_headers(api_key: str) -> dict[str, str]:
    """Basic auth with the key as the user and an empty password; strict mode on every call."""
    token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
    return {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Strict-Mode": "1",
    }


def pack(sizes: Sequence[int], max_bytes: int, max_calls: int) -> list[list[int]]:
    """Call indexes, in order, grouped into requests of at most `max_bytes` and `max_calls` each.

    `sizes` are the calls as batch items; a group of one goes to the call's own endpoint without
    its `type`, a little smaller still. A call is never larger than a request (the client refuses
    one of `max_call_bytes` or more before packing).
    """
    groups: list[list[int]] = []
    current: list[int] = []
    size = len(_BATCH_OPEN) + len(_BATCH_CLOSE)
    for index, item in enumerate(sizes):
        if current and (size + 1 + item > max_bytes or len(current) >= max_calls):
            groups.append(current)
            current, size = [], len(_BATCH_OPEN) + len(_BATCH_CLOSE)
        size += item + (1 if current else 0)  # the comma before every item but the first
        current.append(index)
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True, slots=True)
class _Item:
    op_index: int
    call: Call
    encoded: bytes  # the call as a batch item
    op: Mapping[str, Any]  # the op as the mapping made it (what an email change refusal is judged on)


@dataclass(slots=True)
class _Send:
    """What one `send` has learnt so far: each op's result, the statuses, and whether to stop."""

    results: list[OpResult | None]
    requests: int = 0
    statuses: set[int | None] = field(default_factory=set)
    retry_after: float | None = None
    halt: OpResult | None = None  # after a transient or config answer: what the rest becomes

    def settle(self, items: Sequence[_Item], result: OpResult) -> None:
        for item in items:
            self.results[item.op_index] = result

    def answered(self, status: int | None, retry_after: float | None) -> None:
        self.statuses.add(status)
        if retry_after is not None:
            self.retry_after = max(retry_after, self.retry_after or 0.0)

    @property
    def status(self) -> int | None:
        return next(iter(self.statuses)) if len(self.statuses) == 1 else None


class PipelinesClient:
    """A Pipelines sender bound to one source's API key and one kept-alive connection."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        session: Session | None = None,
        limits: ApiLimits = PIPELINES_LIMITS,
        pace: Callable[[], None] | None = None,
    ) -> None:
        self._poster = JsonPoster(
            base_url,
            pipelines_headers(api_key),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
        )
        self.base_url = self._poster.base_url
        self.limits = limits
        self._pace = pace

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        start = time.perf_counter()
        state = _Send([None] * len(ops))
        items = [item for index, op in enumerate(ops) if (item := self._item(index, op, state)) is not None]
        # `/batch` takes no alias (the spec's batch item types do not list it): each goes to /alias alone, after.
        batched = [i for i in items if i.call.type not in UNBATCHED]
        limits = self.limits
        for group in pack([len(i.encoded) for i in batched], limits.max_request_bytes, limits.max_calls_per_request):
            self._deliver([batched[k] for k in group], state)
        for item in items:
            if item.call.type in UNBATCHED:
                self._deliver([item], state)
        results = tuple(r if r is not None else OpResult("transient", "not sent") for r in state.results)
        return DeliveryResult(results, state.status, state.retry_after, (time.perf_counter() - start) * 1000)

    def _item(self, index: int, op: dict[str, Any], state: _Send) -> _Item | None:
        """The op rendered and encoded, or None once its permanent failure is recorded."""
        try:
            call = render(op)
        except RenderError as exc:
            state.results[index] = OpResult("permanent", f"not sent: {exc}")
            return None
        encoded = encode_json(call.batch_item())
        if len(encoded) >= self.limits.max_call_bytes:
            limit = self.limits.max_call_bytes
            reason = f"not sent: {len(encoded)} bytes as a Pipelines call, at or over its {limit}-byte limit"
            state.results[index] = OpResult("permanent", reason)
            return None
        return _Item(index, call, encoded, op)

    def _deliver(self, items: Sequence[_Item], state: _Send) -> None:
        """One request for `items`, halved on a 400 or 413 while the budget lasts."""
        if state.halt is not None:
            state.settle(items, OpResult(state.halt.outcome, f"not sent: {state.halt.reason}"))
            return
        if state.requests >= SPLIT_BUDGET:
            state.settle(items, OpResult("transient", "not sent: a refused batch was not narrowed down in this send"))
            return
        if state.requests and self._pace is not None:
            self._pace()
        state.requests += 1
        reply = self._post(items)
        if reply.status is None:
            state.answered(None, None)
            self._stop(items, state, OpResult("transient", reply.failure))
            return
        if reply.status in _SPLIT_STATUSES and len(items) > 1:
            middle = len(items) // 2
            self._deliver(items[:middle], state)
            self._deliver(items[middle:], state)
            return
        # A lone call Customer.io finds too large always will be: 413 is permanent once alone.
        outcome: Outcome = "permanent" if reply.status == 413 else status_outcome(reply.status)
        retry_after = None if outcome == "delivered" else parse_retry_after(_header(reply, "Retry-After"))
        state.answered(reply.status, retry_after)
        refused = (
            email_change_refusal(items[0].op, reply.status, OpResult(outcome, answer_reason(reply.status, reply.body)))
            if len(items) == 1 and outcome != "delivered"
            else None
        )
        if refused is not None:  # this call alone is refused, for good: the rest still go
            state.settle(items, refused)
        elif outcome == "delivered":
            state.settle(items, OpResult("delivered"))
        elif outcome == "permanent":
            state.settle(items, OpResult("permanent", answer_reason(reply.status, reply.body)))
        else:
            self._stop(items, state, OpResult(outcome, answer_reason(reply.status, reply.body)))

    @staticmethod
    def _stop(items: Sequence[_Item], state: _Send, result: OpResult) -> None:
        state.settle(items, result)
        state.halt = result

    def _post(self, items: Sequence[_Item]) -> Reply:
        if len(items) == 1:
            call = items[0].call
            return self._poster.post(call.path, encode_json(call.body))
        return self._poster.post("/batch", _BATCH_OPEN + b",".join(item.encoded for item in items) + _BATCH_CLOSE)

    def close(self) -> None:
        self._poster.close()


def _header(reply: Reply, name: str) -> str | None:
    return reply.headers.get(name) if reply.headers is not None else None
