"""The Pipelines spec copy, the two readings issue 12 asks for, and what the validator refuses.

The validator (`dodo_cio_local.pipelines_validator`) is the sandbox's; these tests pin how it reads
Customer.io's published spec, so a change to either shows up here before it shows up as a sandbox
that accepts what Customer.io would not (or refuses what it would accept).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dodo_cio.delivery.destination import PIPELINES_LIMITS
from dodo_cio_local.pipelines_v1 import (
    BATCH_MAX_BYTES,
    CALL_MAX_BYTES,
    USER_BRANCHES,
    call_size,
    read_spec,
    relax_user_one_of,
    with_type,
)

HERE = Path(__file__).resolve().parent
SPEC_PATH = HERE / "customerio-pipelines-openapi.json"
SPEC_SHA256 = "274dcb829cf0e9af45f51c1797935bc4bd5af282199a77ff99f98d0c4eef2885"  # see README.md

WHEN = "2026-09-03T14:06:41.905Z"
IDENTIFY = {"userId": "cus_1", "traits": {"email": "a@example.com", "plan": None}, "timestamp": WHEN}
TRACK = {"userId": "cus_1", "event": "payment.succeeded", "properties": {"n": 1}, "messageId": "m1", "timestamp": WHEN}
GROUP = {"userId": "cus_1", "groupId": "sub_1", "traits": {"object_type_id": "7", "status": "active"}}
CALLS = {
    "identify": IDENTIFY,
    "track": TRACK,
    "group": GROUP,
    "page": {"userId": "cus_1", "name": "Pricing"},
    "screen": {"anonymousId": "anon-1", "name": "Home"},
    "alias": {"userId": "cus_1", "previousId": "anon-1"},
}


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """The spec exactly as published: no reading applied."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def raw_validator(spec: dict[str, Any], component: str) -> Draft202012Validator:
    return Draft202012Validator({"components": spec["components"], "$ref": f"#/components/schemas/{component}"})


def reasons(errors: list[Any]) -> set[tuple[int | None, str, str]]:
    return {(e.batch_index, e.field, e.reason) for e in errors}


# --- the copy ----------------------------------------------------------------------------------


def test_the_copy_is_the_published_file() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == SPEC_SHA256


def test_the_derived_schema_is_still_derived_from_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pipelines_v1.schema.json` (the renderer's unit tests read it) comes from this same file."""
    monkeypatch.syspath_prepend(str(HERE))  # the script imports its sibling as `derive_schema`
    monkeypatch.delitem(sys.modules, "derive_pipelines_schema", raising=False)
    from derive_pipelines_schema import derive

    derived = json.loads((HERE / "pipelines_v1.schema.json").read_text(encoding="utf-8"))
    assert derive(json.loads(SPEC_PATH.read_text(encoding="utf-8"))) == derived


# --- the two readings ------------------------------------------------------------------------


def test_what_the_published_spec_refuses_the_two_readings_accept(
    published: dict[str, Any], pipelines_validator: Any
) -> None:
    """A call with a `userId` matches both the known- and the anonymous-user branch, failing a oneOf (read as
    anyOf); a direct call's type comes from its path, where published it must name it."""
    batch = {"batch": [with_type("track", TRACK)]}
    for component, body in (("group", with_type("group", GROUP)), ("batch", batch), ("track", TRACK)):
        assert not raw_validator(published, component).is_valid(body), component
        assert pipelines_validator.request_errors(component, body) == [], component


def test_only_the_user_one_of_is_relaxed(published: dict[str, Any]) -> None:
    relaxed = read_spec(SPEC_PATH)
    assert relaxed == relax_user_one_of(published)

    def one_ofs(node: Any) -> Counter[frozenset[Any]]:
        """The branch titles of every oneOf in `node`, counted."""
        found: Counter[frozenset[Any]] = Counter()
        if isinstance(node, list):
            for item in node:
                found += one_ofs(item)
        elif isinstance(node, dict):
            if "oneOf" in node:
                found[frozenset(b.get("title") for b in node["oneOf"])] += 1
            for value in node.values():
                found += one_ofs(value)
        return found

    before, after = one_ofs(published), one_ofs(relaxed)
    assert any(titles >= USER_BRANCHES for titles in before)
    assert after == Counter({titles: n for titles, n in before.items() if not titles >= USER_BRANCHES})
    assert after, "other oneOf (context, the semantic track events) keep their meaning"


@pytest.mark.parametrize(("kind", "call"), CALLS.items(), ids=list(CALLS))
def test_every_call_the_spec_has_is_checked(pipelines_validator: Any, kind: str, call: dict[str, Any]) -> None:
    assert pipelines_validator.call_errors(kind, call) == []
    assert pipelines_validator.call_errors(kind, [call])[0].reason == "invalid_type"
    if kind != "alias":
        assert pipelines_validator.batch_errors({"batch": [{"type": kind, **call}]}) == []


def test_the_endpoints_are_the_specs(pipelines_validator: Any) -> None:
    assert set(pipelines_validator.call_types) == set(CALLS)
    assert set(pipelines_validator.batch_types) == set(CALLS) - {"alias"}
    assert reasons(pipelines_validator.call_errors("track", {**TRACK, "type": "identify"})) == {
        (None, "type", "invalid_value")  # a direct call's type is its path's
    }
    assert reasons(pipelines_validator.request_errors("nope", TRACK)) == {(None, "", "not_found")}


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "call", "field", "reason"),
    [
        ("track", {"userId": "u"}, "event", "required"),
        ("track", {**TRACK, "timestamp": 1788444401}, "timestamp", "invalid_type"),
        ("track", {**TRACK, "timestamp": "2026-09-03 14:06:41"}, "timestamp", "invalid_date-time"),
        ("track", {**TRACK, "timestamp": "2026-13-03T14:06:41Z"}, "timestamp", "invalid_date-time"),
        ("track", {**TRACK, "properties": ["n"]}, "properties", "invalid_type"),
        ("track", {"event": "e"}, "userId", "required"),
        ("identify", {"userId": ""}, "userId", "required"),
        ("identify", {**IDENTIFY, "traits": {"email": 5}}, "traits.email", "invalid_type"),
        ("group", {**GROUP, "traits": {"object_type_id": 7}}, "traits.object_type_id", "invalid_type"),
        ("group", {"userId": "u"}, "groupId", "required"),
        ("group", {"groupId": "g"}, "userId", "required"),
        ("alias", {"userId": "u"}, "previousId", "required"),
        ("alias", {"userId": "u", "previousId": " "}, "previousId", "required"),
    ],
)
def test_a_bad_call_is_refused_naming_the_field(
    pipelines_validator: Any, kind: str, call: dict[str, Any], field: str, reason: str
) -> None:
    assert (None, field, reason) in reasons(pipelines_validator.call_errors(kind, call))


def test_an_identify_may_go_by_traits_email_with_an_empty_user_id(pipelines_validator: Any) -> None:
    assert pipelines_validator.call_errors("identify", {"userId": "", "traits": {"email": "a@example.com"}}) == []


@pytest.mark.parametrize("when", ["2026-09-03T14:06:41Z", "2026-09-03T14:06:41.905123+05:30", "2026-09-03t14:06:41z"])
def test_rfc_3339_times_pass(pipelines_validator: Any, when: str) -> None:
    assert pipelines_validator.call_errors("track", {**TRACK, "timestamp": when}) == []


def test_batch_errors_name_the_item(pipelines_validator: Any) -> None:
    body = {
        "batch": [
            {"type": "identify", **IDENTIFY},
            {"type": "track", "userId": "u"},
            dict(TRACK),
            {"type": "alias", **CALLS["alias"]},
            "track",
        ]
    }
    assert reasons(pipelines_validator.batch_errors(body)) == {
        (1, "event", "required"),
        (2, "type", "required"),
        (3, "type", "invalid_value"),
        (4, "", "invalid_type"),
    }


@pytest.mark.parametrize("body", [{}, {"batch": {}}, [TRACK]], ids=["no-batch", "not-array", "bare-list"])
def test_a_malformed_batch_is_refused_as_a_whole(pipelines_validator: Any, body: Any) -> None:
    errors = pipelines_validator.batch_errors(body)
    assert errors
    assert all(e.batch_index is None for e in errors)


# --- limits ------------------------------------------------------------------------------------


def sized(call: dict[str, Any], size: int, kind: str | None = None) -> dict[str, Any]:
    """`call` with a `blob` property padded so that it (as a batch item of `kind`, if given) is `size` bytes."""
    padded = {**call, "properties": {**call.get("properties", {}), "blob": ""}}
    padding = size - call_size({"type": kind, **padded} if kind else padded)
    assert padding >= 0
    return {**padded, "properties": {**padded["properties"], "blob": "x" * padding}}


def test_a_call_may_be_32_kb_and_not_a_byte_more_and_the_client_keeps_within(pipelines_validator: Any) -> None:
    assert PIPELINES_LIMITS.max_call_bytes <= CALL_MAX_BYTES
    assert pipelines_validator.request_errors("track", sized(TRACK, CALL_MAX_BYTES)) == []
    assert reasons(pipelines_validator.request_errors("track", sized(TRACK, CALL_MAX_BYTES + 1))) == {
        (None, "", "payload_too_large")
    }
    item = {"type": "track", **sized(TRACK, CALL_MAX_BYTES + 1, "track")}
    assert call_size(item) == CALL_MAX_BYTES + 1
    errors = pipelines_validator.request_errors("batch", {"batch": [{"type": "track", **TRACK}, item]})
    assert reasons(errors) == {(1, "", "payload_too_large")}


def test_a_batch_may_be_500_kb_and_not_a_byte_more_and_the_client_keeps_within(pipelines_validator: Any) -> None:
    assert PIPELINES_LIMITS.max_request_bytes <= BATCH_MAX_BYTES
    body = {"batch": [{"type": "track", **sized(TRACK, 25_000, "track")}] * 20}
    size = call_size(body)
    assert size > BATCH_MAX_BYTES
    assert reasons(pipelines_validator.request_errors("batch", body)) == {(None, "", "payload_too_large")}
    assert pipelines_validator.request_errors("batch", body, size=BATCH_MAX_BYTES) == []
    assert pipelines_validator.request_errors("batch", body, size=BATCH_MAX_BYTES + 1)[0].reason == "payload_too_large"
