"""Customer.io's refusal to change the email of a person addressed by id (issue 17, part 3): permanent,
its reason naming the workspace setting, counted apart, on Track and Pipelines alike.

Customer.io documents the setting ("Allow updates to email using ID") but not the answer a refused
change gets, so the answers below are stand-ins shaped like the Track v2 error items the spec does
document (`batch_index`, `reason`, `field`, `message`); their words are ours, not Customer.io's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from dodo_cio.delivery.destination import PIPELINES_LIMITS
from dodo_cio.delivery.pipelines import PipelinesClient
from dodo_cio.delivery.track import (
    EMAIL_BY_ID_SETTING,
    EMAIL_CHANGE_REFUSED,
    changes_email_by_id,
    classify_response,
    email_change_refusals,
)
from support.track_ops import event_op, identify_op

TS = 1_800_000_000
BY_ID = identify_op({"id": "cus_maya"}, {"email": "maya.new@example.com", "dodo_customer_id": "cus_maya"}, timestamp=TS)
BY_EMAIL = identify_op({"email": "maya.new@example.com"}, {"email": "maya.new@example.com"}, timestamp=TS)
NO_EMAIL = identify_op({"id": "cus_maya"}, {"dodo_customer_id": "cus_maya", "phone": "+4915112345678"}, timestamp=TS)
EVENT = event_op("cus_maya")


def item(index: int, field_name: str, message: str) -> dict[str, Any]:
    return {"batch_index": index, "reason": "stand-in", "field": field_name, "message": message}


def body(*errors: dict[str, Any]) -> bytes:
    return json.dumps({"errors": list(errors)}).encode()


REFUSED_EMAIL = item(0, "email", "stand-in: the email of this person cannot be changed here")
NAMES_E_MAIL = body(item(0, "identifiers", "stand-in: cannot update E-mail of an existing person"))
ABOUT_THE_EVENT = body(item(1, "email", "stand-in: about the email"))
ABOUT_ELSE = body(item(0, "attributes.plan", "stand-in: value too long"))
ECHOES_ADDRESS = body(item(0, "", "stand-in: maya.new@mailbox.example is refused"))
BAD_ADDRESS = body(item(0, "attributes.email", "stand-in: Invalid address"))


# -- which ops a refusal can be about ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (EVENT, False),
        ({**BY_ID, "identifiers": {"cio_id": "a3000001"}}, False),  # by cio_id a change is always allowed
        ({**BY_ID, "attributes": {"email": "  "}}, False),
        ({**BY_ID, "attributes": {"email": None}}, False),
        ({**BY_ID, "type": "object"}, False),
        ({"type": "person", "action": "identify"}, False),
    ],
)
def test_only_an_identify_by_id_that_sets_an_email_can_be_refused_so(op: dict[str, Any], expected: bool) -> None:
    assert changes_email_by_id(op) is expected


# -- classify_response -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "ops", "expected"),
    [
        pytest.param(207, body(REFUSED_EMAIL), [BY_ID, EVENT], ["refused", "delivered"], id="207-item-names-email"),
        pytest.param(207, NAMES_E_MAIL, [BY_ID, EVENT], ["refused", "delivered"], id="207-message-names-e-mail"),
        # under `email` a new address is a new identifier, not a change by id
        pytest.param(207, body(REFUSED_EMAIL), [BY_EMAIL, EVENT], ["permanent", "delivered"], id="207-by-email"),
        pytest.param(207, body(REFUSED_EMAIL), [NO_EMAIL, EVENT], ["permanent", "delivered"], id="207-no-email-set"),
        pytest.param(207, ABOUT_THE_EVENT, [BY_ID, EVENT], ["delivered", "permanent"], id="207-the-event-item"),
        pytest.param(207, ABOUT_ELSE, [BY_ID, EVENT], ["permanent", "delivered"], id="207-about-something-else"),
        pytest.param(207, ECHOES_ADDRESS, [BY_ID, EVENT], ["permanent", "delivered"], id="207-only-echoes-an-address"),
        pytest.param(207, b"stand-in: email not json", [BY_ID, EVENT], ["transient", "transient"], id="207-unreadable"),
        pytest.param(
            207, BAD_ADDRESS, [BY_ID, EVENT], ["permanent", "delivered"], id="207-bad-address-not-the-setting"
        ),
        pytest.param(400, b"stand-in: email has a bad format", [BY_ID], ["permanent"], id="400-format"),
        pytest.param(400, b"stand-in: malformed e-mail", [BY_ID], ["permanent"], id="400-malformed"),
        pytest.param(400, body({**REFUSED_EMAIL, "batch_index": None}), [BY_ID], ["refused"], id="400-entity"),
        pytest.param(422, b"stand-in: email", [BY_ID], ["refused"], id="422"),
        pytest.param(409, b"stand-in: email conflict", [BY_ID], ["refused"], id="409-is-not-retried"),
        pytest.param(409, b"stand-in: conflict", [BY_ID], ["transient"], id="409-without-email"),
        pytest.param(401, b"stand-in: email", [BY_ID], ["config"], id="401"),
        pytest.param(403, b"stand-in: email", [BY_ID], ["config"], id="403"),
        pytest.param(404, b"stand-in: email", [BY_ID], ["config"], id="404"),
        pytest.param(429, b"stand-in: email", [BY_ID], ["transient"], id="429"),
        pytest.param(413, b"stand-in: email", [BY_ID], ["transient"], id="413"),
        pytest.param(503, b"stand-in: email", [BY_ID], ["transient"], id="503"),
        pytest.param(200, b"{}", [BY_ID], ["delivered"], id="200"),
    ],
)
def test_classify_response_tells_the_refusal_apart(
    status: int, answer: bytes, ops: list[dict[str, Any]], expected: list[str]
) -> None:
    results, _ = classify_response(status, answer, {}, len(ops), batch=len(ops) > 1, ops=ops)
    got = ["refused" if r.refusal == EMAIL_CHANGE_REFUSED else r.outcome for r in results]
    assert got == expected
    for result in results:
        if result.refusal:
            assert result.outcome == "permanent"  # dead-lettered, never retried
            assert f'"{EMAIL_BY_ID_SETTING}"' in result.reason
            assert result.reason.startswith(f"HTTP {status}: ")  # Customer.io's own words first, as in every reason
            assert "stand-in" in result.reason
    assert email_change_refusals(results) == expected.count("refused")


def test_without_the_ops_nothing_is_marked() -> None:
    results, _ = classify_response(207, body(REFUSED_EMAIL), {}, 2, batch=True)
    assert [r.outcome for r in results] == ["permanent", "delivered"]
    assert email_change_refusals(results) == 0


# -- both clients ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status_code: int
    content: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Session:
    """A requests-style session answering each POST with `respond(path, body)`."""

    respond: Any
    paths: list[str] = field(default_factory=list)

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Answer:
        path = url.split("/v1", 1)[-1] if "/v1" in url else url.split(".test", 1)[-1]
        self.paths.append(path)
        answer: Answer = self.respond(path, json.loads(data))
        return answer

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "op", "refused"),
    [(409, BY_ID, True), (400, BY_ID, True), (400, BY_EMAIL, False)],  # by email: a plain permanent failure
    ids=["409", "400", "400-by-email"],
)
def test_a_lone_pipelines_call_refused_does_not_stop_the_rest(status: int, op: dict[str, Any], refused: bool) -> None:
    """A 409 naming the email is the refusal, not a transient answer that would hold back the calls after it."""
    session = Session(lambda path, doc: Answer(status, b"stand-in: email") if path == "/identify" else Answer(200))
    one_per_request = replace(PIPELINES_LIMITS, max_calls_per_request=1)  # each call its own request
    client = PipelinesClient("https://cdp.example.test/v1", "key", session=session, limits=one_per_request)
    result = client.send([op, EVENT])
    assert [(r.outcome, r.refusal == EMAIL_CHANGE_REFUSED) for r in result.results] == [
        ("permanent", refused),
        ("delivered", False),
    ]
    assert session.paths == ["/identify", "/track"]
