"""The local Customer.io sandbox (Track, and Pipelines under /v1) answers like the real APIs and obeys scripts."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dodo_cio_local.sandbox import ScriptedResponse, TrackSandbox
from support.track_ops import EVENT

pytestmark = pytest.mark.network

IDENTIFY: dict[str, Any] = {
    "type": "person",
    "identifiers": {"email": "alice@example.com"},
    "action": "identify",
    "attributes": {"plan": "pro"},
}
AUTH = ("sandbox-site", "sandbox-key")


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[TrackSandbox]:
    with TrackSandbox(region="eu") as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(shared_sandbox: TrackSandbox) -> Iterator[TrackSandbox]:
    shared_sandbox.reset()
    yield shared_sandbox
    shared_sandbox.reset()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        yield session


def post(http: requests.Session, sandbox: TrackSandbox, path: str, body: Any, **kw: Any) -> requests.Response:
    kw.setdefault("timeout", 5)
    return http.post(sandbox.base_url + path, json=body, **kw)


CALL = {"userId": "alice@example.com", "event": "payment.succeeded", "properties": {"amount": 12.5}}
STRICT = {"X-Strict-Mode": "1"}


@pytest.fixture
def cdp() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = ("sandbox-pipelines-key", "")
        yield session


def call(cdp: requests.Session, sandbox: TrackSandbox, path: str, body: Any, **kw: Any) -> requests.Response:
    kw.setdefault("timeout", 5)
    return cdp.post(sandbox.pipelines_url + path, json=body, **kw)


# --- auth, routing, region ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v2/entity"), ("POST", "/api/v2/batch"), ("GET", "/api/v1/accounts/region")],
)
@pytest.mark.parametrize(
    "auth", [None, ("sandbox-site", "wrong-key"), ("sandbox-pipelines-key", "")], ids=["none", "wrong", "pipelines-key"]
)
def test_every_endpoint_requires_basic_auth(
    sandbox: TrackSandbox, method: str, path: str, auth: tuple[str, str] | None
) -> None:
    resp = requests.request(method, sandbox.base_url + path, json=EVENT, auth=auth, timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"meta": {"error": "Unauthorized request"}}
    assert sandbox.accepted_ops() == []


def test_region_endpoint_unknown_path_and_wrong_method_on_both_apis(
    sandbox: TrackSandbox, http: requests.Session, cdp: requests.Session
) -> None:
    resp = http.get(sandbox.base_url + "/api/v1/accounts/region", timeout=5)
    assert (resp.status_code, resp.json()) == (200, {"url": sandbox.base_url, "region": "eu", "environment_id": 1})
    assert http.get(sandbox.base_url + "/api/v2/entity", timeout=5).status_code == 405
    assert post(http, sandbox, "/api/v1/nope", {}).status_code == 404
    assert call(cdp, sandbox, "/nope", CALL).status_code == 404
    assert cdp.get(sandbox.pipelines_url + "/track", timeout=5).status_code == 405
    for headers in ({}, STRICT):
        resp = cdp.post(sandbox.pipelines_url + "/track", data=b"{nope", headers=headers, timeout=5)
        assert resp.status_code == 400
    assert sandbox.accepted_calls() == []


# --- /api/v2/entity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "reason", "field"),
    [
        (json.dumps({k: v for k, v in EVENT.items() if k != "name"}), 400, "required", "name"),
        (
            json.dumps({**EVENT, "identifiers": {"id": "a", "email": "b@c.d"}}),
            400,
            "invalid_identifiers",
            "identifiers",
        ),
        ("{nope", 400, "invalid_json", ""),
        (json.dumps({**EVENT, "attributes": {"blob": "x" * 33_000}}), 413, "payload_too_large", ""),
    ],
    ids=["no-name", "two-identifiers", "not-json", "oversize"],
)
def test_a_refused_entity_names_the_reason_and_field(
    sandbox: TrackSandbox, http: requests.Session, body: str, status: int, reason: str, field: str
) -> None:
    resp = http.post(sandbox.base_url + "/api/v2/entity", data=body, timeout=5)
    assert resp.status_code == status
    assert [(e["reason"], e["field"]) for e in resp.json()["errors"]] == [(reason, field)]
    assert sandbox.accepted_ops() == []


# --- /api/v2/batch -----------------------------------------------------------------------------


def test_a_valid_entity_or_batch_is_200_and_recorded_a_mixed_batch_207_with_batch_index(
    sandbox: TrackSandbox, http: requests.Session
) -> None:
    resp = post(http, sandbox, "/api/v2/entity", EVENT)
    assert (resp.status_code, resp.json()) == (200, {})
    [rec] = sandbox.requests
    assert (rec.method, rec.path, rec.status, rec.json) == ("POST", "/api/v2/entity", 200, EVENT)
    assert rec.headers["Authorization"].startswith("Basic ")
    resp = post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, IDENTIFY]})
    assert (resp.status_code, resp.json()) == (200, {})
    bad_name = {k: v for k, v in EVENT.items() if k != "name"}
    resp = post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, bad_name, IDENTIFY, {**EVENT, "action": "paid"}]})
    assert resp.status_code == 207
    errors = resp.json()["errors"]
    assert [(e["batch_index"], e["field"]) for e in errors] == [(1, "name"), (3, "action")]
    assert all({"batch_index", "reason", "field", "message"} <= set(e) for e in errors)
    assert sandbox.accepted_ops() == [EVENT, EVENT, IDENTIFY, EVENT, IDENTIFY]


def test_a_malformed_envelope_is_400_an_oversize_batch_or_item_413(
    sandbox: TrackSandbox, http: requests.Session
) -> None:
    for body in ({}, {"batch": EVENT}, [EVENT]):  # no batch, not an array, a bare list
        resp = post(http, sandbox, "/api/v2/batch", body)
        assert resp.status_code == 400, body
        assert "batch_index" not in resp.json()["errors"][0]
    chunk = {**EVENT, "attributes": {"blob": "x" * 20_000}}
    resp = post(http, sandbox, "/api/v2/batch", {"batch": [chunk] * 26})  # ~520 kB
    assert resp.status_code == 413
    big = {**EVENT, "attributes": {"blob": "x" * 33_000}}
    resp = post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, big]})
    assert resp.status_code == 413
    assert [e["batch_index"] for e in resp.json()["errors"]] == [1]
    assert sandbox.accepted_ops() == []


# --- scripted answers --------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["track", "pipelines"])
def test_scripted_answers_come_in_order_then_normal(
    sandbox: TrackSandbox, http: requests.Session, cdp: requests.Session, api: str
) -> None:
    def send() -> requests.Response:
        if api == "track":
            return post(http, sandbox, "/api/v2/entity", EVENT)
        return call(cdp, sandbox, "/track", CALL, headers=STRICT)

    sandbox.script(
        503,
        ScriptedResponse(429, headers={"Retry-After": "2"}),
        ScriptedResponse(500, body=b"oops"),
        ScriptedResponse(0, action="close"),
        ScriptedResponse(200, action="reset"),  # a truncated answer
    )
    first, second, third = send(), send(), send()
    assert [r.status_code for r in (first, second, third)] == [503, 429, 500]
    assert (second.headers["Retry-After"], third.content) == ("2", b"oops")
    for _ in range(2):
        with pytest.raises(requests.RequestException):
            send()
    assert send().status_code == 200  # the same session recovers
    expected = [("respond", 503), ("respond", 429), ("respond", 500), ("close", 0), ("reset", 200), (None, 200)]
    assert [(r.scripted, r.status) for r in sandbox.requests] == expected
    # Nothing scripted counts as accepted, not even the reset's 200.
    accepted = sandbox.accepted_ops() if api == "track" else sandbox.accepted_calls()
    assert accepted == [EVENT if api == "track" else {"type": "track", **CALL}]


def test_scripted_answers_precede_auth_and_validation_and_a_scripted_207_is_honoured(
    sandbox: TrackSandbox, http: requests.Session
) -> None:
    sandbox.script(200)
    assert requests.post(sandbox.base_url + "/api/v2/entity", json={"junk": 1}, timeout=5).status_code == 200
    sandbox.reset()
    errors = [{"batch_index": 0, "reason": "x", "field": "", "message": "scripted"}]
    sandbox.script(ScriptedResponse(207, body={"errors": errors}))
    assert post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, IDENTIFY]}).status_code == 207
    assert sandbox.accepted_ops() == [IDENTIFY]


def test_stall_answers_after_its_delay_or_outlasts_the_client_read_timeout(
    sandbox: TrackSandbox, http: requests.Session
) -> None:
    sandbox.script(ScriptedResponse(503, action="stall", delay=0.1), ScriptedResponse(200, action="stall", delay=0.6))
    assert post(http, sandbox, "/api/v2/entity", EVENT, timeout=2).status_code == 503
    with pytest.raises(requests.ReadTimeout):
        post(http, sandbox, "/api/v2/entity", EVENT, timeout=(2, 0.15))
    # The server still processed it: a retry now would duplicate it, as in real life.
    assert post(http, sandbox, "/api/v2/entity", EVENT).status_code == 200


# --- fail_rate ---------------------------------------------------------------------------------


def _statuses(sandbox: TrackSandbox, n: int) -> list[int]:
    with requests.Session() as session:
        session.auth = AUTH
        return [post(session, sandbox, "/api/v2/entity", EVENT).status_code for _ in range(n)]


def test_fail_rate_is_seeded_and_repeatable() -> None:
    with TrackSandbox(fail_rate=0.3, seed=7) as one, TrackSandbox(fail_rate=0.3, seed=7) as two:
        first = _statuses(one, 30)
        assert first == _statuses(two, 30)
        assert set(first) == {200, 503}
        assert 3 <= first.count(503) <= 18
        one.reset()  # re-seeds: the same sequence again
        assert _statuses(one, 30) == first
        assert len(one.accepted_ops()) == first.count(200)


# --- control endpoints, logging ----------------------------------------------------------------


def test_control_endpoints(sandbox: TrackSandbox, http: requests.Session) -> None:
    base = sandbox.base_url
    resp = requests.post(
        base + "/__sandbox/script", json={"responses": [{"status": 503}, 502, {"action": "close"}]}, timeout=5
    )
    assert resp.json() == {"queued": 3}
    assert post(http, sandbox, "/api/v2/entity", EVENT).status_code == 503
    requests.post(base + "/__sandbox/reset", timeout=5).raise_for_status()
    assert sandbox.requests == []
    assert post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, IDENTIFY]}).status_code == 200

    [summary] = requests.get(base + "/__sandbox/requests", timeout=5).json()
    assert (summary["method"], summary["status"], summary["op_count"]) == ("POST", 200, 2)
    assert summary["ops"][1] == {"type": "person", "action": "identify", "identifier": "email=a***@example.com"}
    assert "alice" not in str(summary)

    config = requests.post(base + "/__sandbox/config", json={"fail_rate": 1}, timeout=5).json()
    assert config == {"fail_rate": 1.0, "seed": None}
    try:
        assert post(http, sandbox, "/api/v2/entity", EVENT).status_code == 503
    finally:
        requests.post(base + "/__sandbox/config", json={"fail_rate": 0}, timeout=5).raise_for_status()
    for path, refused in (("config", {"fail_rate": 3}), ("script", {"responses": [{"action": "x"}]})):
        assert requests.post(f"{base}/__sandbox/{path}", json=refused, timeout=5).status_code == 400, path


def _logged(caplog: pytest.LogCaptureFixture, marker: str) -> list[str]:
    """The sandbox's log lines holding `marker`, waited for: it logs a request after answering it, so the
    line may come after the answer, and a line of the test before may land in this one's capture."""
    waited = time.monotonic() + 5
    while True:
        found = [r.getMessage() for r in caplog.records if r.name == "dodo_cio_local.sandbox"]
        found = [line for line in found if marker in line]
        if found or time.monotonic() > waited:
            return found
        time.sleep(0.01)


def test_each_request_is_logged_as_one_masked_line_on_both_apis(
    sandbox: TrackSandbox, http: requests.Session, cdp: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dodo_cio_local.sandbox"):
        post(http, sandbox, "/api/v2/batch", {"batch": [EVENT, IDENTIFY, {**EVENT, "action": "nope"}]})
        call(cdp, sandbox, "/batch", {"batch": [{"type": "track", **CALL}, {"type": "track", "userId": "u1"}]})
        [track] = _logged(caplog, "#2 action:invalid_value")  # only this request has an invalid third op
        [pipelines] = _logged(caplog, "POST /v1/batch")
    assert "POST /api/v2/batch -> 207" in track and "a***@example.com" in track
    assert "POST /v1/batch -> 200" in pipelines and "dropped=1" in pipelines
    summary = requests.get(sandbox.base_url + "/__sandbox/requests", timeout=5).json()[1]
    assert summary["ops"][0] == {"type": "track", "event": "payment.succeeded", "identifier": "userId=a***@example.com"}
    assert summary["errors"] == [{"batch_index": 1, "reason": "required", "field": "event"}]
    for masked in (track, pipelines + str(summary)):
        assert "alice" not in masked
        assert "12.5" not in masked  # no bodies
        assert "\n" not in masked


# --- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_beyond_the_bucket() -> None:
    # 0.5 request/s and a bucket of 3: three requests pass at once, the next ones are refused
    # until a token comes back (2 s later), so none of the quick follow-ups can slip through.
    with TrackSandbox(rate_limit=0.5, rate_limit_burst=3) as sandbox, requests.Session() as http:
        http.auth = AUTH
        answers = [post(http, sandbox, "/api/v2/entity", EVENT) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        retry_after = int(answers[3].headers["Retry-After"])
        assert 1 <= retry_after <= 2
        assert answers[3].json() == {"meta": {"error": "Too Many Requests (sandbox rate_limit)"}}
        assert [r.scripted for r in sandbox.requests] == [None, None, None, "rate_limit", "rate_limit"]
        assert len(sandbox.accepted_ops()) == 3
        sandbox.reset()  # a full bucket again
        assert post(http, sandbox, "/api/v2/entity", EVENT).status_code == 200


def test_rate_limit_is_off_by_default_and_the_arguments_are_checked(
    sandbox: TrackSandbox, http: requests.Session, tmp_path: Path
) -> None:
    assert sandbox.rate_limit is None
    assert {post(http, sandbox, "/api/v2/entity", EVENT).status_code for _ in range(30)} == {200}
    with pytest.raises(ValueError, match="rate_limit"):
        TrackSandbox(rate_limit=0)
    with pytest.raises(ValueError, match="rate_limit_burst"):
        TrackSandbox(rate_limit_burst=5)
    with pytest.raises(FileNotFoundError):
        TrackSandbox(schema_path=tmp_path / "missing.json")


def test_validate_false_skips_op_validation_but_not_auth_shape_or_limits() -> None:
    with TrackSandbox(validate=False) as sandbox, requests.Session() as http, requests.Session() as cdp:
        http.auth = AUTH
        cdp.auth = (sandbox.pipelines_key, "")
        invalid = {k: v for k, v in EVENT.items() if k != "name"}
        assert post(http, sandbox, "/api/v2/entity", invalid).status_code == 200
        assert post(http, sandbox, "/api/v2/batch", {"batch": [invalid, IDENTIFY]}).status_code == 200
        assert post(http, sandbox, "/api/v2/batch", {"nope": []}).status_code == 400
        assert requests.post(sandbox.base_url + "/api/v2/entity", json=EVENT, timeout=5).status_code == 401
        assert call(cdp, sandbox, "/track", {"userId": "u1"}, headers=STRICT).status_code == 200
        big = {**CALL, "properties": {"blob": "x" * 32_000}}
        assert call(cdp, sandbox, "/track", big, headers=STRICT).status_code == 400
        assert call(cdp, sandbox, "/batch", {"batch": [CALL]}, headers=STRICT).status_code == 400  # no type
        assert requests.post(sandbox.pipelines_url + "/track", json=CALL, timeout=5).status_code == 401


# --- the Pipelines API under /v1 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, ("other-key", ""), ("sandbox-pipelines-key", "a-password"), AUTH],
    ids=["none", "wrong-key", "with-password", "track-credentials"],
)
def test_pipelines_needs_its_key_as_the_user_and_no_password(sandbox: TrackSandbox, auth: Any) -> None:
    resp = requests.post(sandbox.pipelines_url + "/track", json=CALL, auth=auth, headers=STRICT, timeout=5)
    assert resp.status_code == 401
    assert "errors" in resp.json()["meta"]
    assert sandbox.accepted_calls() == []


def test_every_pipelines_call_is_accepted_with_its_type_from_the_path(
    sandbox: TrackSandbox, cdp: requests.Session
) -> None:
    calls = {
        "identify": {"userId": "u1", "traits": {"plan": "pro"}, "timestamp": "2026-09-03T14:06:41Z"},
        "track": CALL,
        "group": {"userId": "u1", "groupId": "sub_1", "traits": {"object_type_id": "1"}},
        "page": {"userId": "u1", "name": "Pricing"},
        "screen": {"userId": "u1", "name": "Home"},
        "alias": {"userId": "u1", "previousId": "anon-1"},
    }
    for kind, body in calls.items():
        resp = call(cdp, sandbox, "/" + kind, body, headers=STRICT)
        assert (resp.status_code, resp.json()) == (200, {}), kind
    batch = [{"type": "track", **CALL}, {"type": "identify", **calls["identify"]}]
    assert call(cdp, sandbox, "/batch", {"batch": batch}, headers=STRICT).status_code == 200
    assert sandbox.accepted_calls() == [{"type": kind, **body} for kind, body in calls.items()] + batch
    assert sandbox.accepted_ops() == [], "Pipelines calls are not Track ops"


def test_strict_mode_refuses_with_400_and_without_it_answers_200_and_drops(
    sandbox: TrackSandbox, cdp: requests.Session
) -> None:
    bad_item = {"type": "track", "userId": "u1", "timestamp": "yesterday"}
    batch = {"batch": [{"type": "track", **CALL}, bad_item]}
    resp = call(cdp, sandbox, "/track", {"userId": "u1"}, headers=STRICT)
    assert resp.status_code == 400
    assert resp.json() == {"meta": {"errors": ["event: required: 'event' is required"]}}
    resp = call(cdp, sandbox, "/batch", batch, headers=STRICT)
    assert resp.status_code == 400
    assert all(e.startswith("[batch 1] ") for e in resp.json()["meta"]["errors"])
    assert sandbox.accepted_calls() == []
    assert sandbox.dropped_calls() == []

    resp = call(cdp, sandbox, "/track", {"userId": "u1"})
    assert (resp.status_code, resp.json()) == (200, {})
    assert call(cdp, sandbox, "/batch", batch).status_code == 200
    assert sandbox.accepted_calls() == [{"type": "track", **CALL}]
    dropped = sandbox.dropped_calls()
    assert [c for c, _ in dropped] == [{"type": "track", "userId": "u1"}, bad_item]
    assert [{e.field for e in errors} for _, errors in dropped] == [{"event"}, {"event", "timestamp"}]
    assert [s.get("dropped") for s in sandbox.summaries()] == [None, None, 1, 1]


@pytest.mark.parametrize("headers", [STRICT, {}], ids=["strict", "lenient"])
def test_pipelines_limits(sandbox: TrackSandbox, cdp: requests.Session, headers: dict[str, str]) -> None:
    big = {**CALL, "properties": {"blob": "x" * 32_000}}  # just over 32 KB
    small = {**CALL, "properties": {"blob": "x" * 31_000}}
    answers = [
        call(cdp, sandbox, "/track", big, headers=headers),
        call(cdp, sandbox, "/batch", {"batch": [{"type": "track", **small}] * 17}, headers=headers),  # > 500 KB
        call(cdp, sandbox, "/batch", {"batch": [{"type": "track", **CALL}, {"type": "track", **big}]}, headers=headers),
        call(cdp, sandbox, "/track", small, headers=headers),
    ]
    assert [a.status_code for a in answers] == ([400, 400, 400, 200] if headers else [200] * 4)
    assert all("payload_too_large" in e for a in answers[:3] if headers for e in a.json()["meta"]["errors"])
    kept = [{"type": "track", **small}] if headers else [{"type": "track", **CALL}, {"type": "track", **small}]
    assert sandbox.accepted_calls() == kept
    assert len(sandbox.dropped_calls()) == (0 if headers else 1 + 17 + 1)
