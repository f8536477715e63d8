"""Deterministic ULIDs: a redelivered webhook must map to the same id downstream (idempotent writes)
while ids still sort by event time."""

from __future__ import annotations

import hashlib

__all__ = ["deterministic_ulid", "is_ulid", "ulid_time_ms"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {c.lower(): i for i, c in enumerate(_ALPHABET)}
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)  # indexed by 10 bits
_PAIR_SHIFTS = tuple(range(120, -1, -10))  # 13 pairs: bits 129..120 first (two always 0), 9..0 last
_LENGTH = 26
_TIME_CHARS = 10
_MAX_TIME_MS = 2**48 - 1
_RANDOM_BITS = 80


def deterministic_ulid(seed: str, time_ms: int) -> str:
    """Time part from ``time_ms`` (clamped to 48 bits); the rest from sha256(seed), so retries agree."""
    clamped = min(max(int(time_ms), 0), _MAX_TIME_MS)
    entropy = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:10], "big")
    number = (clamped << _RANDOM_BITS) | entropy
    # 26 characters of 5 bits, looked up two at a time (a loop over the 26 cost more than the hash).
    return "".join([_PAIRS[(number >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


def is_ulid(value: str) -> bool:
    """Accepts the canonical form, case-insensitively as the ULID spec allows; overflow is rejected."""
    if not isinstance(value, str) or len(value) != _LENGTH:
        return False
    # 26 chars carry 130 bits; a first digit above 7 would overflow 128.
    return value[0] in "01234567" and all(c in _DECODE for c in value)


def ulid_time_ms(value: str) -> int:
    """The embedded Unix time in milliseconds; ValueError for anything that is not a ULID."""
    if not is_ulid(value):
        raise ValueError("not a ULID")
    number = 0
    for char in value[:_TIME_CHARS]:
        number = (number << 5) | _DECODE[char]
    return number
