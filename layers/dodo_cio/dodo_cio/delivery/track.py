"""Customer.io Track API v2 client and the classification of its answers.

One HTTPS request per call: `/api/v2/entity` for a single op, `/api/v2/batch` otherwise. The
session is kept by the caller across warm invocations so the TLS connection is reused. A request
ends by the current deadline (dodo_cio.platform.deadline) when one is set: the caller narrows it to keep
time for parking what fails, and a request cut short is a transient failure like any timeout.
Classification (what each op's fate is) is a pure function so both paths and the tests share it.

The transport (`JsonPoster`) and the status classes (`status_outcome`, `answer_reason`) are shared
with the Pipelines client (`dodo_cio.delivery.pipelines`): both APIs must fail, time out and be retried alike.

One refusal is told apart from the rest (`email_change_refusal`): under the `customer_id` and
`metadata:<key>` strategies the person is addressed by `id`, and Customer.io changes the `email` of
a person addressed so only when the workspace's "Allow updates to email using ID" setting is on.
Customer.io's published material names the setting but not the answer it gives otherwise (its
Track reference says a conflicting identifier update "may return 200" and log an "Attribute
Update Failure" in the workspace). So the bridge recognises it by what it can see: a refusal (a
207 item, or a 4xx other than the credential, rate and size answers) of an identify addressed by
`id` that sets `email`, whose answer names the email but finds no fault with the address itself
(invalid, malformed, format). It is permanent (no retry can change the setting; 409 included), its
reason names the setting after Customer.io's words, and it is counted as `EmailChangeRefused`.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from dodo_cio.mapping.limits import encoded_size, wire_op
from dodo_cio.platform import deadline
from dodo_cio.platform.http import KeepAliveClient, TransportError, TransportTimeout

Outcome = Literal["delivered", "transient", "permanent", "config"]

TRACK_HOSTS: Final = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}
_TRANSIENT_STATUSES: Final = frozenset({408, 409, 425, 429})
_CONFIG_STATUSES: Final = frozenset({401, 403, 404})
_MAX_REASON: Final = 300
# What an OpResult's `refusal` says when Customer.io refused to change the email of a person addressed
# by id (see the module docstring); counted as the EmailChangeRefused metric on both paths.
EMAIL_CHANGE_REFUSED: Final = "email_change"
EMAIL_BY_ID_SETTING: Final = "Allow updates to email using ID"
EMAIL_CHANGE_HINT: Final = (
    "Customer.io refused the email of a person addressed by id: if the customer's email changed, the "
    f'workspace setting "{EMAIL_BY_ID_SETTING}" (Workspace Settings) must be on'
)
# Answers that say something else than "this op is refused": credentials or URL, rate, size, timeouts.
_NOT_A_REFUSAL: Final = _CONFIG_STATUSES | {408, 413, 425, 429}
_ADDRESS: Final = re.compile(r"\S+@\S+")  # an address in the answer, e.g. the refused one itself
_NAMES_EMAIL: Final = re.compile(r"e-?mail", re.IGNORECASE)  # a field, reason or message about the email
# ... unless it finds fault with the address itself: a bad value, which no workspace setting lets through.
_BAD_VALUE: Final = re.compile(r"invalid|malformed|format", re.IGNORECASE)
USER_AGENT: Final = "dodo-customerio-bridge"


def track_base_url(region: str, override: str | None = None) -> str:
    host = TRACK_HOSTS.get(region.strip().lower())
    if host is None:  # checked even with an override: a typo here would bite after the proxy is gone
        raise ValueError(f"CUSTOMERIO_REGION must be 'us' or 'eu', not {region!r}")
    if override and override.strip():
        return override.strip().rstrip("/")
    return host


@dataclass(frozen=True, slots=True)
class OpResult:
    outcome: Outcome
    reason: str = ""
    refusal: str = ""  # EMAIL_CHANGE_REFUSED, or "" for every other outcome


def changes_email_by_id(op: Mapping[str, Any]) -> bool:
    """Whether the op is a person identify addressed by `id` that sets `email` (what the setting governs)."""
    identifiers, attributes = op.get("identifiers"), op.get("attributes")
    return (
        op.get("type") == "person"
        and op.get("action") == "identify"
        and isinstance(identifiers, Mapping)
        and set(identifiers) == {"id"}
        and isinstance(attributes, Mapping)
        and isinstance(attributes.get("email"), str)
        and bool(attributes["email"].strip())
    )


def email_change_refusal(op: Mapping[str, Any], status: int, result: OpResult) -> OpResult | None:
    """Customer.io's refusal to change the email of a person addressed by id, as a permanent result
    naming the workspace setting; None when this answer to this op is something else.

    `result` is the op's fate as the status classes decided it: a refusal (permanent: a 207 item, a
    400 or 422; or a 409, which would otherwise be retried) whose reason (`HTTP <status>:
    <Customer.io's words>`) names the email, not merely echoes an address, and does not call the
    address invalid. See the module docstring for why no exact error text is matched.
    """
    if status != 207 and not (400 <= status < 500 and status not in _NOT_A_REFUSAL):
        return None
    if result.outcome != "permanent" and status != 409:
        return None
    words = _ADDRESS.sub(" ", result.reason)
    if not changes_email_by_id(op) or not _NAMES_EMAIL.search(words) or _BAD_VALUE.search(words):
        return None
    reason = f"{result.reason[:_MAX_REASON]} ({EMAIL_CHANGE_HINT})"  # Customer.io's words first, as in every reason
    return OpResult("permanent", reason, EMAIL_CHANGE_REFUSED)


def email_change_refusals(results: Sequence[OpResult]) -> int:
    """How many of `results` are that refusal: the EmailChangeRefused metric of one delivery."""
    return sum(r.refusal == EMAIL_CHANGE_REFUSED for r in results)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Fate of each op of one request, in order, plus what the caller needs to back off."""

    results: tuple[OpResult, ...]
    status: int | None  # HTTP status; None when no answer arrived
    retry_after: float | None = None
    elapsed_ms: float = 0.0

    @property
    def delivered(self) -> bool:
        return all(r.outcome == "delivered" for r in self.results)

    def failed_indexes(self) -> list[int]:
        return [i for i, r in enumerate(self.results) if r.outcome != "delivered"]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def answer_reason(status: int, body: bytes) -> str:
    """`HTTP <status>: <start of the body>`: what an op's failure records, short enough for a log line."""
    text = body[:_MAX_REASON].decode("utf-8", errors="replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else "")


def all_ops(n: int, outcome: Outcome, reason: str) -> tuple[OpResult, ...]:
    """The same outcome for each of `n` ops: one answer decided them all."""
    return tuple(OpResult(outcome, reason) for _ in range(n))


def status_outcome(status: int) -> Outcome:
    """The class of a whole-request answer, 207 aside: what to do with every op it carried.

    2xx delivered; 401/403/404 config (wrong key or URL: an operator must act, retrying alone
    cannot help); 408/409/425/429, 413 and 5xx transient (413: the caller splits the request); any
    other 4xx permanent (the request itself is wrong and would be refused again).
    """
    if 200 <= status < 300:
        return "delivered"
    if status in _CONFIG_STATUSES:
        return "config"
    if status in _TRANSIENT_STATUSES or status == 413 or status >= 500:
        return "transient"
    return "permanent"


def classify_response(
    status: int,
    body: bytes,
    headers: Any,
    n_ops: int,
    *,
    batch: bool,
    ops: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[tuple[OpResult, ...], float | None]:
    """Each op's outcome from one HTTP answer, and the server's requested wait if any.

    With the `ops` that were sent, an op's refusal that is `email_change_refusal` says so.
    """
    results, retry_after = _classify(status, body, headers, n_ops, batch=batch)
    if ops is None:
        return results, retry_after
    marked = tuple(
        (email_change_refusal(op, status, r) or r) if r.outcome != "delivered" else r
        for op, r in zip(ops, results, strict=True)
    )
    return marked, retry_after


def _classify(
    status: int, body: bytes, headers: Any, n_ops: int, *, batch: bool
) -> tuple[tuple[OpResult, ...], float | None]:
    retry_after = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
    if status == 207 and batch:
        try:
            doc = json.loads(body)
            errors = doc["errors"]
            by_index: dict[int, str] = {}
            for err in errors:
                idx = err.get("batch_index")
                if isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < n_ops:
                    detail = "; ".join(str(err[k]) for k in ("field", "reason", "message") if err.get(k))
                    by_index[idx] = f"HTTP 207: {detail}"[:_MAX_REASON]
        except (ValueError, KeyError, TypeError, AttributeError):
            # Cannot tell which items failed: resend all; event ids make that safe.
            return all_ops(n_ops, "transient", answer_reason(status, body) + " (unreadable 207)"), retry_after
        return tuple(
            OpResult("permanent", by_index[i]) if i in by_index else OpResult("delivered") for i in range(n_ops)
        ), retry_after
    outcome = status_outcome(status)
    if outcome == "delivered":
        return all_ops(n_ops, "delivered", ""), None
    # 413 is transient: the retry path splits the request; a single op never gets here (fit_op caps its size).
    return all_ops(n_ops, outcome, answer_reason(status, body)), retry_after


def auth_header(site_id: str, api_key: str) -> str:
    token = base64.b64encode(f"{site_id}:{api_key}".encode()).decode("ascii")
    return f"Basic {token}"


class Session(Protocol):
    """A requests-style session; tests inject one, production uses the stdlib transport."""

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Any: ...
    def close(self) -> None: ...


def encode_json(value: Any) -> bytes:
    """A request body as sent: compact separators, UTF-8 (the same bytes `limits.encoded_size` counts)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Reply:
    """One request's answer, or why none came (`status` None, `failure` says why: always transient)."""

    status: int | None
    headers: Any = None
    body: bytes = b""
    failure: str = ""


class JsonPoster:
    """POSTs JSON bodies to one base URL with fixed headers, over a kept-alive connection.

    Shared by the Track and Pipelines clients, so both end a request by the current deadline
    (dodo_cio.platform.deadline) and turn a timeout or a broken connection into the same transient reply.
    Tests may inject a requests-style session instead of the stdlib transport.
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        session: Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._timeout = (connect_timeout, read_timeout)
        self._session = session
        self._transport = (
            None
            if session is not None
            else KeepAliveClient(self.base_url, connect_timeout=connect_timeout, read_timeout=read_timeout)
        )

    def post(self, path: str, data: bytes) -> Reply:
        """POST `data` to `path` under the base URL; a timeout or connection failure is a Reply too."""
        try:
            status, headers, body = self._post(path, data, deadline.current_at())
        except TransportTimeout as exc:
            return Reply(None, failure=f"timeout: {exc}")
        except TransportError as exc:
            return Reply(None, failure=f"connection error: {exc}")
        return Reply(status, headers, body)

    def _post(self, path: str, data: bytes, until: float | None) -> tuple[int, Any, bytes]:
        if self._transport is not None:
            answer = self._transport.post(path, data, self._headers, deadline=until)
            return answer.status, answer.headers, answer.body
        assert self._session is not None
        import requests  # noqa: PLC0415 - only an injected requests-style session needs it

        timeout = self._timeout
        if until is not None:  # a requests-style session takes timeouts only: cap each at the time left
            left = until - time.monotonic()
            if left <= 0:
                raise TransportTimeout("deadline reached")
            timeout = (min(timeout[0], left), min(timeout[1], left))
        try:
            response = self._session.post(self.base_url + path, data=data, headers=self._headers, timeout=timeout)
            return int(response.status_code), response.headers, bytes(response.content)
        except requests.Timeout as exc:
            raise TransportTimeout(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise TransportError(type(exc).__name__) from None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._session is not None:
            self._session.close()


class TrackClient:
    """A Track v2 sender bound to one workspace's credentials and one kept-alive connection."""

    def __init__(
        self,
        base_url: str,
        site_id: str,
        api_key: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        session: Session | None = None,
    ) -> None:
        headers = {
            "Authorization": auth_header(site_id, api_key),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._poster = JsonPoster(
            base_url, headers, connect_timeout=connect_timeout, read_timeout=read_timeout, session=session
        )
        self.base_url = self._poster.base_url

    def send(self, ops: Sequence[dict[str, Any]]) -> DeliveryResult:
        if not ops:
            return DeliveryResult((), None)
        batch = len(ops) > 1
        path = "/api/v2/batch" if batch else "/api/v2/entity"
        payload = {"batch": [wire_op(op) for op in ops]} if batch else wire_op(ops[0])
        start = time.perf_counter()
        reply = self._poster.post(path, encode_json(payload))
        elapsed_ms = (time.perf_counter() - start) * 1000
        if reply.status is None:
            return DeliveryResult(all_ops(len(ops), "transient", reply.failure), None, None, elapsed_ms)
        results, retry_after = classify_response(
            reply.status, reply.body, reply.headers, len(ops), batch=batch, ops=ops
        )
        return DeliveryResult(results, reply.status, retry_after, elapsed_ms)

    def close(self) -> None:
        self._poster.close()


def request_size(ops: Sequence[dict[str, Any]]) -> int:
    return encoded_size({"batch": list(ops)}) if len(ops) > 1 else encoded_size(ops[0])
