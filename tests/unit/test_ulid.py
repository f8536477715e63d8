"""Deterministic ULIDs, checked against an independent encoder written differently."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dodo_cio.platform.ulid import deterministic_ulid, is_ulid, ulid_time_ms

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_TIME = 2**48 - 1


def reference_ulid(seed: str, time_ms: int) -> str:
    """Bit string -> 5-bit groups: a different route from the module's shift-and-mask loop."""
    bits = format(time_ms, "048b") + "".join(format(b, "08b") for b in hashlib.sha256(seed.encode()).digest()[:10])
    bits = "00" + bits  # 128 bits padded to 130 = 26 * 5
    return "".join(CROCKFORD[int(bits[i : i + 5], 2)] for i in range(0, 130, 5))


@pytest.mark.parametrize(
    ("seed", "time_ms", "expected"),
    [
        ("msg_abc", 1_754_285_400_123, "01K1SRXR1V2PZAEZV0K85CXC4Y"),  # 2025-08-04T05:30:00.123Z
        ("", 0, "0000000000WERC8GMRZGE196QV"),  # all-zero time: only the hash, sha256("") = e3b0c44298fc1c149afb...
        ("x", MAX_TIME, "7ZZZZZZZZZ5NRHCGNQ4TR480B2"),
    ],
)
def test_known_vectors(seed: str, time_ms: int, expected: str) -> None:
    assert deterministic_ulid(seed, time_ms) == reference_ulid(seed, time_ms) == expected
    assert ulid_time_ms(expected) == time_ms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("01K1SRXR1V2PZAEZV0K85CXC4Y", True),
        ("01k1sq7n0vabcdefghjkmnpqrs", True),  # case-insensitive per the ULID spec
        ("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", True),
        ("8ZZZZZZZZZZZZZZZZZZZZZZZZZ", False),  # overflows 128 bits
        ("01K1SQ7N0VABCDEFGHJKMNPQR", False),  # 25 chars
        ("01K1SQ7N0VABCDEFGHJKMNPQRSS", False),
        ("01K1SQ7N0VABCDEFGHIKMNPQRS", False),  # I is not Crockford
        ("01K1SQ7N0VABCDEFGHJKMNPQRU", False),  # nor U
        ("", False),
        (None, False),
        (12345, False),
    ],
)
def test_is_ulid(value: object, expected: bool) -> None:
    assert is_ulid(value) is expected  # type: ignore[arg-type]


def test_ulid_time_ms_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a ULID"):
        ulid_time_ms("nope")
    assert ulid_time_ms("01k1sq7n0vabcdefghjkmnpqrs") == ulid_time_ms("01K1SQ7N0VABCDEFGHJKMNPQRS")


@given(seed=st.text(max_size=80), time_ms=st.integers(min_value=-(2**50), max_value=2**50))
def test_properties(seed: str, time_ms: int) -> None:
    value = deterministic_ulid(seed, time_ms)
    clamped = min(max(time_ms, 0), MAX_TIME)
    assert len(value) == 26
    assert is_ulid(value)
    assert value[0] in "01234567"
    assert set(value) <= set(CROCKFORD)
    assert ulid_time_ms(value) == clamped
    assert value == reference_ulid(seed, clamped)
    assert value == deterministic_ulid(seed, time_ms)


@given(
    a=st.integers(min_value=0, max_value=MAX_TIME),
    b=st.integers(min_value=0, max_value=MAX_TIME),
    seed_a=st.text(max_size=20),
    seed_b=st.text(max_size=20),
)
def test_order_follows_time(a: int, b: int, seed_a: str, seed_b: str) -> None:
    if a < b:
        assert deterministic_ulid(seed_a, a) < deterministic_ulid(seed_b, b)
