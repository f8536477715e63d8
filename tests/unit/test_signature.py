"""Standard Webhooks verification, cross-checked against the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import dataclasses
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dodo_cio.receiving.http_api import request_from_apigw
from dodo_cio.receiving.signature import (
    MAX_SIGNATURE_ENTRIES,
    SignatureError,
    VerifiedWebhook,
    header,
    parse_secrets,
    sign,
    signature_headers,
    verify,
)

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
OLD_WHSEC = "whsec_" + base64.b64encode(OLD_KEY).decode()
BODY = b'{"business_id":"bus_1","type":"payment.succeeded","data":{"payment_id":"pay_1"}}'
NOW = 1_754_285_400
MSG_ID = "msg_2mQw0cD9yTg4ZxJ1kPq7uVb3nRs"


def _headers(signature: str, *, msg_id: str = MSG_ID, ts: int = NOW) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def _reason(
    headers: dict[str, str] | None,
    body: bytes = BODY,
    secrets: Sequence[bytes] = (KEY,),
    *,
    now: float = NOW,
    tolerance_seconds: int = 300,
) -> str:
    with pytest.raises(SignatureError) as info:
        verify(headers, body, secrets, now=now, tolerance_seconds=tolerance_seconds)
    assert str(info.value) == info.value.reason
    return info.value.reason


# --- interoperability with the reference library -------------------------------------------------


def test_our_signature_verifies_with_reference() -> None:
    now = int(time.time())  # the reference library always uses the real clock
    headers = signature_headers(KEY, BODY, webhook_id=MSG_ID, timestamp=now)
    assert Webhook(WHSEC).verify(BODY, headers) == {
        "business_id": "bus_1",
        "type": "payment.succeeded",
        "data": {"payment_id": "pay_1"},
    }
    assert Webhook(WHSEC.removeprefix("whsec_")).verify(BODY, headers, json_parse=False) is None


def test_reference_rejects_what_we_reject_for_wrong_secret() -> None:
    now = int(time.time())
    headers = signature_headers(OLD_KEY, BODY, timestamp=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(BODY, headers)
    assert _reason(headers, now=now) == "no matching signature"


# --- header handling ------------------------------------------------------------------------------


def test_header_lookup() -> None:
    assert header(None, "webhook-id") is None
    assert header({}, "webhook-id") is None
    assert header({"Webhook-Id": "a"}, "webhook-id") == "a"
    assert header({"webhook-id": "b"}, "Webhook-ID") == "b"
    assert header({"x": "y"}, "webhook-id") is None
    assert header({"webhook-id": None}, "webhook-id") is None  # type: ignore[dict-item]


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(name: str) -> None:
    headers = _headers(sign(KEY, MSG_ID, NOW, BODY))
    del headers[name]
    assert _reason(headers) == f"missing {name} header"
    headers[name] = "   "
    assert _reason(headers) == f"missing {name} header"


def test_no_headers_at_all() -> None:
    assert _reason(None) == "missing webhook-id header"
    assert _reason({}) == "missing webhook-id header"


# --- rotation and several entries -----------------------------------------------------------------


def test_several_secrets_only_second_matches() -> None:
    headers = _headers(sign(KEY, MSG_ID, NOW, BODY))
    assert verify(headers, BODY, [OLD_KEY, KEY], now=NOW).webhook_id == MSG_ID
    assert verify(headers, BODY, parse_secrets(f"{OLD_WHSEC}, {WHSEC}"), now=NOW).webhook_id == MSG_ID


@pytest.mark.parametrize("joiner", [",", ", ", " ", " , ", "  "])
def test_comma_merged_signature_headers(joiner: str) -> None:
    old, new = sign(OLD_KEY, MSG_ID, NOW, BODY), sign(KEY, MSG_ID, NOW, BODY)
    assert verify(_headers(old + joiner + new), BODY, [KEY], now=NOW).webhook_id == MSG_ID
    assert verify(_headers(new + joiner + old), BODY, [KEY], now=NOW).webhook_id == MSG_ID


def test_only_other_versions_is_rejected() -> None:
    digest = sign(KEY, MSG_ID, NOW, BODY).split(",", 1)[1]
    assert _reason(_headers(f"v2,{digest}")) == "no v1 signature"
    assert _reason(_headers(f"v1a,{digest} v2,{digest}")) == "no v1 signature"
    assert _reason(_headers(digest)) == "no v1 signature"


def test_other_versions_are_ignored_next_to_v1() -> None:
    good = sign(KEY, MSG_ID, NOW, BODY)
    assert verify(_headers(f"v1a,AAAA {good}"), BODY, [KEY], now=NOW).timestamp == NOW


def test_not_base64_signature_does_not_match_and_does_not_crash() -> None:
    for junk in ["v1,not*base64!", "v1,é", "v1,AAA", "v1,====", "v1,"]:
        assert _reason(_headers(junk)) in {"no matching signature", "no v1 signature"}
    good = sign(KEY, MSG_ID, NOW, BODY)
    assert verify(_headers(f"v1,not*base64! {good}"), BODY, [KEY], now=NOW).webhook_id == MSG_ID


@pytest.mark.parametrize(
    ("body", "msg_id", "ts"),
    [
        pytest.param(BODY.replace(b"pay_1", b"pay_2"), MSG_ID, NOW, id="body changed"),
        pytest.param(BODY.replace(b":", b": "), MSG_ID, NOW, id="JSON re-serialised"),  # spacing is a change too
        pytest.param(BODY, "msg_other", NOW, id="other webhook id"),
        pytest.param(BODY, MSG_ID, NOW + 1, id="other timestamp"),
    ],
)
def test_body_id_and_timestamp_are_all_signed(body: bytes, msg_id: str, ts: int) -> None:
    headers = _headers(sign(KEY, MSG_ID, NOW, BODY), msg_id=msg_id, ts=ts)
    assert _reason(headers, body=body) == "no matching signature"


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-360, 360, -301, 301, -300, 0, 300])
def test_the_timestamp_may_be_five_minutes_off_either_way(offset: int) -> None:
    ts = NOW + offset
    headers = _headers(sign(KEY, MSG_ID, ts, BODY), ts=ts)
    if abs(offset) > 300:
        assert _reason(headers) == "timestamp outside tolerance"
    else:
        assert verify(headers, BODY, [KEY], now=NOW).timestamp == ts


def test_custom_tolerance_and_default_clock() -> None:
    ts = NOW - 3600
    headers = _headers(sign(KEY, MSG_ID, ts, BODY), ts=ts)
    assert verify(headers, BODY, [KEY], now=NOW, tolerance_seconds=3600).timestamp == ts
    assert _reason(headers, tolerance_seconds=60, now=NOW) == "timestamp outside tolerance"
    fresh = signature_headers(KEY, BODY)
    assert verify(fresh, BODY, [KEY]).webhook_id == fresh["webhook-id"]


@pytest.mark.parametrize("value", ["abc", "12.5", "-5", "1e9", "0x10", "١٢٣", "1" * 40, "+123"])
def test_timestamp_not_an_integer(value: str) -> None:
    headers = _headers(sign(KEY, MSG_ID, NOW, BODY))
    headers["webhook-timestamp"] = value
    assert _reason(headers) == "invalid webhook-timestamp header"


def test_timestamp_surrounding_whitespace_is_tolerated() -> None:
    headers = _headers(sign(KEY, MSG_ID, NOW, BODY))
    headers["webhook-timestamp"] = f" {NOW}\t"
    assert verify(headers, BODY, [KEY], now=NOW).timestamp == NOW


# --- caps and configuration -----------------------------------------------------------------------


def test_too_many_signature_entries() -> None:
    good = sign(KEY, MSG_ID, NOW, BODY)
    junk = [sign(OLD_KEY, f"m{i}", NOW, BODY) for i in range(MAX_SIGNATURE_ENTRIES)]
    assert _reason(_headers(" ".join([*junk, good]))) == "too many entries in webhook-signature header"
    within = " ".join([*junk[: MAX_SIGNATURE_ENTRIES - 1], good])
    assert verify(_headers(within), BODY, [KEY], now=NOW).webhook_id == MSG_ID


def test_signature_header_too_long() -> None:
    good = sign(KEY, MSG_ID, NOW, BODY)
    assert _reason(_headers(good + " " * 5000)) == "webhook-signature header too long"
    assert _reason(_headers("v1," + "A" * 5000)) == "webhook-signature header too long"


def test_webhook_id_too_long() -> None:
    msg_id = "msg_" + "x" * 300
    assert _reason(_headers(sign(KEY, msg_id, NOW, BODY), msg_id=msg_id)) == "webhook-id header too long"


@pytest.mark.parametrize("secrets", [(), [], [b""]])
def test_no_secret_configured(secrets: Sequence[bytes]) -> None:
    assert _reason(_headers(sign(KEY, MSG_ID, NOW, BODY)), secrets=secrets) == "no webhook secret configured"
    assert _reason(None, secrets=secrets) == "no webhook secret configured"


def test_reasons_never_contain_secret_or_signature() -> None:
    signature = sign(OLD_KEY, MSG_ID, NOW, BODY)
    reason = _reason(_headers(signature))
    for secret_text in (WHSEC, WHSEC[6:], signature, signature[3:]):
        assert secret_text not in reason


def test_unencodable_webhook_id() -> None:
    assert _reason(_headers("v1,AAAA", msg_id="msg_\udc80")) == "invalid webhook-id header"


def test_non_utf8_body() -> None:
    body = b"\xff\xfe\x00binary"
    assert verify(_headers(sign(KEY, MSG_ID, NOW, body)), body, [KEY], now=NOW).webhook_id == MSG_ID


def test_verified_webhook_is_frozen() -> None:
    result = VerifiedWebhook(webhook_id="a", timestamp=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.webhook_id = "b"  # type: ignore[misc]


# --- parse_secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        f"{OLD_WHSEC} {WHSEC}",
        f"{OLD_WHSEC},{WHSEC}",
        f"{OLD_WHSEC}, {WHSEC}",
        f"\n{OLD_WHSEC}\n{WHSEC}\n",
        f"{OLD_WHSEC[6:]}\t{WHSEC}",
        f"{OLD_WHSEC} ,\n {WHSEC[6:]} ,",
    ],
)
def test_parse_secrets_separators_and_prefix(raw: str) -> None:
    assert parse_secrets(raw) == (OLD_KEY, KEY)


def test_parse_secrets_missing_padding() -> None:
    key = b"\x01" * 24 + b"\x02"  # 25 bytes -> base64 ends in "=="
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("==")
    assert parse_secrets("whsec_" + encoded.rstrip("=")) == (key,)
    assert parse_secrets(encoded) == (key,)
    # the reference library accepts the same unpadded form
    assert Webhook("whsec_" + encoded.rstrip("="))._whsecret == key


@pytest.mark.parametrize("raw", ["", "   ", " , \n"])
def test_parse_secrets_empty(raw: str) -> None:
    with pytest.raises(ValueError, match="no webhook secret configured"):
        parse_secrets(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"{WHSEC} whsec_s3cr3t*value!", "webhook secret #2 is not valid base64"),
        ("whsec_ab-_cd", "webhook secret #1 is not valid base64"),  # url-safe alphabet is not standard
        (f"{WHSEC},{WHSEC},whsec_AAAAA", "webhook secret #3 is not valid base64"),  # impossible length
        ("whsec_péché", "webhook secret #1 is not valid base64"),
        ("whsec_", "webhook secret #1 is empty"),
    ],
)
def test_parse_secrets_errors_do_not_echo_the_secret(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_secrets(raw)
    assert str(info.value) == message
    for part in raw.replace(",", " ").split():
        if part != "whsec_":
            assert part.removeprefix("whsec_") not in str(info.value)
    assert info.value.__cause__ is None


# --- senders --------------------------------------------------------------------------------------


def test_signature_headers_defaults() -> None:
    before = int(time.time())
    headers = signature_headers(KEY, BODY)
    after = int(time.time())
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert re.fullmatch(r"msg_[0-9A-Za-z]{27}", headers["webhook-id"])
    assert before <= int(headers["webhook-timestamp"]) <= after
    assert headers["webhook-signature"] == sign(KEY, headers["webhook-id"], int(headers["webhook-timestamp"]), BODY)
    assert signature_headers(KEY, BODY)["webhook-id"] != headers["webhook-id"]


# --- properties -----------------------------------------------------------------------------------

ids = st.text(
    alphabet=st.characters(min_codepoint=33, blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
    min_size=1,
    max_size=64,
)


@given(body=st.binary(max_size=512), msg_id=ids, key=st.binary(min_size=1, max_size=64))
def test_round_trip(body: bytes, msg_id: str, key: bytes) -> None:
    headers = signature_headers(key, body, webhook_id=msg_id, timestamp=NOW)
    assert verify(headers, body, [key], now=NOW) == VerifiedWebhook(msg_id, NOW)


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    headers = signature_headers(KEY, body, webhook_id=MSG_ID, timestamp=NOW)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = bytearray(body)
    tampered[index] ^= flip
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(headers, bytes(tampered), [KEY], now=NOW)


@given(body=st.text(max_size=256), msg_id=st.from_regex(r"msg_[0-9A-Za-z]{1,27}", fullmatch=True))
def test_reference_agrees_on_random_input(body: str, msg_id: str) -> None:
    ref = Webhook(WHSEC).sign(msg_id, datetime.fromtimestamp(NOW, tz=UTC), body)
    assert ref == sign(KEY, msg_id, NOW, body.encode())
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", ref)


# --- the raw bytes Dodo signed, from an API Gateway event ------------------------------------------


def test_plain_body_is_taken_as_utf8_bytes() -> None:
    assert request_from_apigw({"body": '{"a":"é"}', "headers": {"X": "1"}}).body == '{"a":"é"}'.encode()


def test_base64_body_is_decoded() -> None:
    raw = b"\xff\x00binary"
    event = {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    assert request_from_apigw(event).body == raw


def test_invalid_base64_becomes_bytes_no_signature_can_match() -> None:
    assert request_from_apigw({"body": "!!!", "isBase64Encoded": True}).body.startswith(b"\x00")


def test_a_lone_surrogate_does_not_crash() -> None:
    assert request_from_apigw({"body": "ab\ud83dcd"}).body.startswith(b"ab")


def test_missing_body_and_headers() -> None:
    request = request_from_apigw({})
    assert (request.body, dict(request.headers)) == (b"", {})
