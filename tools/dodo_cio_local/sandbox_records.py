"""What the sandbox keeps of each request, and the views of it: accepted ops and calls, summaries, log lines.

Why it is kept: a test asserts on exactly what the bridge sent (``TrackSandbox.requests``) and on
what a workspace would now hold (``accepted_ops``: Track's 2xx answers minus the ops a 207 named;
``accepted_calls``: Pipelines' 2xx answers minus the calls it dropped without strict mode). The
summaries behind ``/__sandbox/requests`` and the log lines carry no bodies or headers and mask
emails and phone numbers, because ``make run`` prints them where real customer data may pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dodo_cio_local.pipelines_v1 import BATCH, call_kind, is_pipelines_path, with_type
from dodo_cio_local.track_v2 import BATCH_PATH, ENTITY_PATH, OpError, json_type


@dataclass
class ReceivedRequest:
    """One request as the sandbox saw it, kept so tests can assert on exactly what was sent.

    ``status``/``response`` are filled in just before the answer is written, so they are final
    by the time the client sees the response. ``status`` is 0 for a scripted ``close``.
    ``scripted`` names the scripted action that answered it (``None`` when processed normally,
    ``"fail_rate"`` for a random 503, ``"rate_limit"`` for a 429 from the rate limit).
    ``call_errors`` are what the Pipelines endpoints found wrong with the request: refused in
    strict mode, dropped behind a 200 otherwise (a ``batch_index`` names one call, none all).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    status: int
    response: Any
    received_at: float
    scripted: str | None = None
    call_errors: list[OpError] = field(default_factory=list)


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: enough to recognise, not to harvest."""
    local, sep, domain = value.partition("@")
    if not sep:
        return value
    return f"{local[:1]}***@{domain}"


def _mask_identifier(key: str, value: Any) -> str:
    text = str(value)
    if "@" in text:
        return mask_email(text)
    if key == "phone":
        return "*" * max(len(text) - 2, 0) + text[-2:]
    return text


def _op_summary(op: Any) -> dict[str, Any]:
    if not isinstance(op, dict):
        return {"invalid": json_type(op)}
    out: dict[str, Any] = {"type": op.get("type"), "action": op.get("action")}
    if isinstance(op.get("name"), str):
        out["name"] = op["name"]
    ids = op.get("identifiers")
    if isinstance(ids, dict) and ids:
        out["identifier"] = ", ".join(f"{k}={_mask_identifier(k, v)}" for k, v in ids.items())
    return out


def _call_summary(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict):
        return {"invalid": json_type(call)}
    out: dict[str, Any] = {"type": call.get("type")}
    for key in ("event", "name", "groupId"):
        if isinstance(call.get(key), str):
            out[key] = call[key]
    who = [f"{k}={_mask_identifier(k, call[k])}" for k in ("userId", "anonymousId") if call.get(k)]
    if who:
        out["identifier"] = ", ".join(who)
    return out


def _request_calls(rec: ReceivedRequest) -> list[Any] | None:
    """A Pipelines request's calls, each with its ``type`` (a direct call's from its path)."""
    kind = call_kind(rec.path)
    if kind != BATCH:
        return None if rec.json is None else [with_type(kind, rec.json)]
    if isinstance(rec.json, dict) and isinstance(rec.json.get(BATCH), list):
        return list(rec.json[BATCH])
    return None


def _request_ops(rec: ReceivedRequest) -> list[Any] | None:
    if rec.path == ENTITY_PATH and rec.json is not None:
        return [rec.json]
    if rec.path == BATCH_PATH and isinstance(rec.json, dict) and isinstance(rec.json.get("batch"), list):
        return list(rec.json["batch"])
    return None


def _rejected_indexes(rec: ReceivedRequest) -> set[int]:
    if not isinstance(rec.response, dict) or not isinstance(rec.response.get("errors"), list):
        return set()
    return {
        e["batch_index"]
        for e in rec.response["errors"]
        if isinstance(e, dict) and isinstance(e.get("batch_index"), int)
    }


def summarise(rec: ReceivedRequest) -> dict[str, Any]:
    """A PII-light view of a request: no bodies, no headers, emails masked.

    A Pipelines request's calls are its ``ops``; its ``errors`` are the ones it was refused or
    dropped for, and ``dropped`` says how many calls a 200 did not keep.
    """
    pipelines = is_pipelines_path(rec.path)
    ops = _request_calls(rec) if pipelines else _request_ops(rec)
    out: dict[str, Any] = {
        "method": rec.method,
        "path": rec.path,
        "status": rec.status,
        "received_at": rec.received_at,
        "op_count": len(ops) if ops is not None else 0,
        "ops": [(_call_summary if pipelines else _op_summary)(op) for op in ops or []],
    }
    if rec.scripted:
        out["scripted"] = rec.scripted
    if rec.call_errors:
        out["errors"] = [{k: v for k, v in e.as_json().items() if k != "message"} for e in rec.call_errors]
        if 200 <= rec.status < 300:
            out["dropped"] = len(_dropped_indexes(rec, len(ops or [])))
    elif isinstance(rec.response, dict) and isinstance(rec.response.get("errors"), list):
        out["errors"] = [
            {k: e.get(k) for k in ("batch_index", "reason", "field") if k in e}
            for e in rec.response["errors"]
            if isinstance(e, dict)
        ]
    return out


def log_line(rec: ReceivedRequest, elapsed_ms: float) -> str:
    summary = summarise(rec)
    parts = [f"{rec.method} {rec.path} -> {rec.status or 'closed'}"]
    if rec.scripted:
        parts.append(f"[{rec.scripted}]")
    if summary["op_count"]:
        ops = "; ".join(
            " ".join(
                str(x)
                for x in (
                    "/".join(str(o[k]) for k in ("type", "action") if k in o),
                    o.get("name", o.get("event", "")),
                    o.get("identifier", ""),
                )
                if x
            )
            for o in summary["ops"][:5]
        )
        more = f"; +{summary['op_count'] - 5} more" if summary["op_count"] > 5 else ""
        parts.append(f"ops={summary['op_count']} [{ops}{more}]")
    if summary.get("errors"):
        errs = ", ".join(
            (f"#{e['batch_index']} " if "batch_index" in e else "") + f"{e.get('field') or '-'}:{e.get('reason')}"
            for e in summary["errors"][:5]
        )
        parts.append(f"errors=[{errs}]")
    if summary.get("dropped"):
        parts.append(f"dropped={summary['dropped']} (no X-Strict-Mode: answered 200)")
    parts.append(f"{elapsed_ms:.0f}ms")
    return " ".join(parts)


def accepted_ops(records: Iterable[ReceivedRequest]) -> list[dict[str, Any]]:
    """Every op Customer.io would now hold: from 2xx answers, minus ops named in a 207.

    A stalled 2xx counts (the server processed it even if the client gave up), which is how
    retries create duplicates in real life; dropped (``close``/``reset``) requests don't.
    """
    accepted: list[dict[str, Any]] = []
    for rec in records:
        if rec.method != "POST" or not 200 <= rec.status < 300 or rec.scripted in {"close", "reset"}:
            continue
        ops = _request_ops(rec)
        if ops is None:
            continue
        rejected = _rejected_indexes(rec)
        accepted.extend(op for i, op in enumerate(ops) if i not in rejected and isinstance(op, dict))
    return accepted


def _dropped_indexes(rec: ReceivedRequest, count: int) -> set[int]:
    """The calls of a Pipelines request its ``call_errors`` name: all of them for a request-wide error."""
    if any(e.batch_index is None for e in rec.call_errors):
        return set(range(count))
    return {e.batch_index for e in rec.call_errors if e.batch_index is not None}


def _answered(rec: ReceivedRequest) -> bool:
    """A 2xx the server wrote in full: what it then holds (a stalled one counts, a dropped one not)."""
    return rec.method == "POST" and 200 <= rec.status < 300 and rec.scripted not in {"close", "reset"}


def accepted_calls(records: Iterable[ReceivedRequest]) -> list[dict[str, Any]]:
    """Every Pipelines call the workspace would now hold, each with its ``type``, in the order received.

    From 2xx answers, minus the calls dropped without strict mode; a scripted 2xx keeps them all
    (nothing was checked), as for ``accepted_ops``.
    """
    accepted: list[dict[str, Any]] = []
    for rec in records:
        calls = _request_calls(rec) if is_pipelines_path(rec.path) and _answered(rec) else None
        if calls is None:
            continue
        dropped = _dropped_indexes(rec, len(calls))
        accepted.extend(c for i, c in enumerate(calls) if i not in dropped and isinstance(c, dict))
    return accepted


def dropped_calls(records: Iterable[ReceivedRequest]) -> list[tuple[Any, list[OpError]]]:
    """Each call a 200 did not keep (no strict mode), with the errors it was dropped for."""
    dropped: list[tuple[Any, list[OpError]]] = []
    for rec in records:
        if not rec.call_errors or not is_pipelines_path(rec.path) or not _answered(rec):
            continue
        calls = _request_calls(rec) or []
        for index in sorted(_dropped_indexes(rec, len(calls))):
            dropped.append((calls[index], [e for e in rec.call_errors if e.batch_index in {None, index}]))
    return dropped


def try_json(body: bytes) -> Any | None:
    """The parsed body, or None when it is empty or not JSON (recorded as such, not refused here)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
