"""Standard Webhooks (HMAC-SHA256, ``v1``) verification for Dodo Payments deliveries.

Written against the spec rather than wrapping a library so the Lambda layer stays stdlib-only and
can verify against several secrets at once (24 h rotation window) with bounded work per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_SIGNATURE_ENTRIES",
    "MAX_SIGNATURE_HEADER_LENGTH",
    "MAX_WEBHOOK_ID_LENGTH",
    "SECRET_PREFIX",
    "SignatureError",
    "VerifiedWebhook",
    "encodable",
    "header",
    "parse_secrets",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# Bounds on attacker-controlled input: the work done per request stays small whatever is sent.
MAX_SIGNATURE_HEADER_LENGTH = 4096
MAX_SIGNATURE_ENTRIES = 20
MAX_WEBHOOK_ID_LENGTH = 256
_MAX_TIMESTAMP_DIGITS = 15

_SEPARATORS = re.compile(r"[\s,]+")
_TIMESTAMP = re.compile(rf"\s*([0-9]{{1,{_MAX_TIMESTAMP_DIGITS}}})\s*")
# A version token ("v1", "v1a", ...) is short; a base64 HMAC never looks like one.
_VERSION = re.compile(r"v[0-9]{1,3}[a-z]{0,3}")
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class SignatureError(Exception):
    """Delivery failed authentication; ``reason`` is safe to log (never holds secrets or signatures)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """Header values that are trustworthy only because the signature over them checked out."""

    webhook_id: str
    timestamp: int


def parse_secrets(raw: str) -> tuple[bytes, ...]:
    """Decode the configured secret(s); several may be listed to survive a rotation window."""
    parts = [p for p in _SEPARATORS.split(raw or "") if p]
    if not parts:
        raise ValueError("no webhook secret configured")
    keys: list[bytes] = []
    for number, part in enumerate(parts, start=1):
        encoded = part.removeprefix(SECRET_PREFIX)
        # Messages name the position only: the value itself must never reach a log line.
        try:
            key = _b64decode_lenient(encoded)
        except ValueError:
            raise ValueError(f"webhook secret #{number} is not valid base64") from None
        if not key:
            raise ValueError(f"webhook secret #{number} is empty")
        keys.append(key)
    return tuple(keys)


def _b64decode_lenient(encoded: str) -> bytes:
    """Standard base64 with optional padding; anything else is an error, not silently skipped."""
    if not encoded.isascii():
        raise ValueError("not ascii")
    missing = -len(encoded) % 4
    if missing == 3:
        raise ValueError("bad length")
    try:
        return base64.b64decode(encoded + "=" * missing, validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive lookup: HTTP APIs lower-case header names, REST APIs and local runs may not."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = headers.get(wanted)
        if value is None:
            for key, candidate in headers.items():
                if isinstance(key, str) and key.lower() == wanted:
                    value = candidate
                    break
    return value if isinstance(value, str) else None


def _required(headers: Mapping[str, str] | None, name: str) -> str:
    value = header(headers, name)
    if value is None or not value.strip():
        raise SignatureError(f"missing {name} header")
    return value


def _parse_timestamp(value: str) -> int:
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise SignatureError(f"invalid {TIMESTAMP_HEADER} header")
    return int(match.group(1))


def _v1_signatures(value: str) -> list[str]:
    """Collect v1 entries; also copes with a proxy that joined repeated headers with commas."""
    if len(value) > MAX_SIGNATURE_HEADER_LENGTH:
        raise SignatureError(f"{SIGNATURE_HEADER} header too long")
    tokens = [t for t in _SEPARATORS.split(value) if t]
    if len(tokens) > 2 * MAX_SIGNATURE_ENTRIES:
        raise SignatureError(f"too many entries in {SIGNATURE_HEADER} header")
    found: list[str] = []
    index = 0
    while index < len(tokens) - 1:
        version, candidate = tokens[index], tokens[index + 1]
        if _VERSION.fullmatch(version) and not _VERSION.fullmatch(candidate):
            if version == "v1":
                found.append(candidate)
            index += 2
        else:
            index += 1
    return found


def encodable(text: str) -> bool:
    """Lone surrogates (possible in hand-built events) cannot be signed; reject instead of crashing."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _digest(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(secret, signed, hashlib.sha256).digest()


def verify(
    headers: Mapping[str, str] | None,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: float | None = None,
    tolerance_seconds: int | None = 300,
) -> VerifiedWebhook:
    """Authenticate one delivery over the raw body bytes; raises SignatureError, never anything else.

    `tolerance_seconds=None` skips the timestamp window: only for a webhook the bridge verified at
    receipt and kept (dodo_cio.receiving.quarantine), whose re-run comes long after it was sent.
    """
    keys = [s for s in secrets if s]
    if not keys:
        raise SignatureError("no webhook secret configured")

    webhook_id = _required(headers, ID_HEADER)
    raw_timestamp = _required(headers, TIMESTAMP_HEADER)
    raw_signature = _required(headers, SIGNATURE_HEADER)
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise SignatureError(f"{ID_HEADER} header too long")
    if not encodable(webhook_id):
        raise SignatureError(f"invalid {ID_HEADER} header")

    timestamp = _parse_timestamp(raw_timestamp)
    current = time.time() if now is None else now
    # Both directions: a far-future timestamp would otherwise extend a replay window.
    if tolerance_seconds is not None and abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp outside tolerance")

    candidates = _v1_signatures(raw_signature)
    if not candidates:
        raise SignatureError("no v1 signature")

    expected = [_digest(key, webhook_id, timestamp, body) for key in keys]
    matched = False
    for candidate in candidates:
        try:
            given = base64.b64decode(candidate, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            continue
        for digest in expected:
            # No early exit: timing must not reveal which entry or key was close.
            matched |= hmac.compare_digest(digest, given)
    if not matched:
        raise SignatureError("no matching signature")
    return VerifiedWebhook(webhook_id=webhook_id, timestamp=timestamp)


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry, as a Standard Webhooks sender would put in the header."""
    return "v1," + base64.b64encode(_digest(secret, webhook_id, timestamp, body)).decode("ascii")


def _random_message_id() -> str:
    """``msg_`` + 27 base62 chars (160 random bits), the shape Standard Webhooks senders use."""
    number = int.from_bytes(os.urandom(20), "big")
    chars: list[str] = []
    for _ in range(27):
        number, digit = divmod(number, 62)
        chars.append(_ID_ALPHABET[digit])
    return "msg_" + "".join(reversed(chars))


def signature_headers(
    secret: bytes,
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three headers a sender needs, so tools and tests don't re-implement signing."""
    msg_id = _random_message_id() if webhook_id is None else webhook_id
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, msg_id, ts, body),
    }
