"""ISO 4217 minor units: Dodo amounts are integers in the currency's smallest unit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dodo_cio.money import EXPONENTS, exponent, is_known_currency, to_major


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1999, "USD", 19.99),
        (5, "USD", 0.05),
        (0, "USD", 0.0),
        (-1999, "EUR", -19.99),
        (4980, "JPY", 4980),
        (1250, "KWD", 1.25),
        (1, "BHD", 0.001),
        (123456, "KRW", 123456),
        (1000, "MGA", 10.0),  # ISO: 2 decimals (Stripe treats MGA as zero-decimal)
        (1000, "HUF", 10.0),
        (1000, "TWD", 10.0),
        (1000, "IDR", 10.0),
        (1000, "CLF", 0.1),
    ],
)
def test_to_major(minor: int, currency: str, expected: float) -> None:
    result = to_major(minor, currency)
    assert result == expected
    assert type(result) is type(expected)


def test_zero_decimal_returns_int_others_float() -> None:
    assert type(to_major(4980, "JPY")) is int
    assert type(to_major(100, "USD")) is float  # whole values stay float outside 0-decimal currencies
    assert to_major(100, "USD") == 1.0


def test_lowercase_and_whitespace_codes() -> None:
    assert to_major(4980, "jpy") == 4980
    assert to_major(1250, "kwd") == 1.25
    assert to_major(1999, " usd ") == 19.99
    assert exponent("Jpy") == 0


def test_unknown_and_empty_codes_default_to_two() -> None:
    for code in ("XYZ", "", "US", "bitcoin"):
        assert exponent(code) == 2
        assert not is_known_currency(code)
        assert to_major(1999, code) == 19.99
    assert exponent(None) == 2  # type: ignore[arg-type]


def test_known_currency() -> None:
    for code in ("USD", "usd", "JPY", "KWD", "MGA", "INR", "XOF"):
        assert is_known_currency(code)
    assert is_known_currency("XBT", {"xbt": 8})


def test_tables() -> None:
    zero = [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
    three = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
    assert all(EXPONENTS[c] == 0 for c in zero)
    assert all(EXPONENTS[c] == 3 for c in three)
    assert all(EXPONENTS[c] == 2 for c in ("MGA", "HUF", "TWD", "IDR", "USD", "EUR", "GBP", "INR", "BRL"))
    assert all(len(c) == 3 and c.isupper() for c in EXPONENTS)


def test_override_table() -> None:
    stripe_style = {"MGA": 0, "usd": 3}
    assert to_major(1000, "MGA", stripe_style) == 1000
    assert type(to_major(1000, "mga", stripe_style)) is int
    assert to_major(1999, "USD", stripe_style) == 1.999
    assert to_major(1250, "KWD", stripe_style) == 1.25  # untouched codes keep the table value
    assert to_major(1999, "USD", {}) == 19.99
    assert to_major(1999, "USD", None) == 19.99
    assert exponent("XBT", {"XBT": 8}) == 8


@pytest.mark.parametrize("bad", [-1, 9, 2.0, "2", True, None])
def test_override_values_are_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="exponent override for USD"):
        to_major(1, "USD", {"USD": bad})  # type: ignore[dict-item]


def test_large_values_are_exact() -> None:
    assert to_major(123456789012345, "USD") == 1234567890123.45
    assert repr(to_major(123456789012345, "USD")) == "1234567890123.45"
    assert to_major(123456789012345678, "JPY") == 123456789012345678
    assert to_major(9007199254740993, "KWD") == float(Decimal("9007199254740.993"))


@pytest.mark.parametrize("bad", [True, False, 19.99, "1999", None, Decimal(1999)])
def test_rejects_non_int(bad: object) -> None:
    with pytest.raises(TypeError):
        to_major(bad, "USD")  # type: ignore[arg-type]


@given(minor=st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1), code=st.sampled_from(sorted(EXPONENTS)))
def test_matches_decimal_division(minor: int, code: str) -> None:
    places = EXPONENTS[code]
    result = to_major(minor, code)
    if places == 0:
        assert result == minor and type(result) is int
    else:
        assert type(result) is float
        assert result == float(Decimal(minor) / Decimal(10**places))
        # the float round-trips to the same minor amount
        assert round(Decimal(repr(result)) * 10**places) == minor
