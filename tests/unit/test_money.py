"""ISO 4217 minor units: Dodo amounts are integers in the currency's smallest unit.

Amounts leave as JSON numbers a template prints as a person writes them (`49`, `19.99`, never
`49.0`), with a display string beside them (`$49.00`, `KWD 1.250`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dodo_cio.mapping.money import (
    EXPONENTS,
    SYMBOLS,
    decimal_number,
    exponent,
    format_amount,
    is_known_currency,
    json_number,
    to_major,
)


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1999, "USD", 19.99),
        (5, "USD", 0.05),
        (0, "USD", 0),
        (4900, "USD", 49),  # whole amounts are ints: a template prints 49, not 49.0
        (-1999, "EUR", -19.99),
        (4980, "JPY", 4980),
        (1250, "KWD", 1.25),
        (1, "BHD", 0.001),
        (1050, "MGA", 10.5),  # ISO: 2 decimals (Stripe treats MGA as zero-decimal)
        (1250, "EUR", 12.5),
        (1000, "CLF", 0.1),
        (1000, "KWD", 1),
        (4980, "jpy", 4980),  # codes are read case- and space-insensitively
        (1250, "kwd", 1.25),
        (1999, " usd ", 19.99),
    ],
)
def test_to_major(minor: int, currency: str, expected: float) -> None:
    result = to_major(minor, currency)
    assert result == expected
    assert type(result) is type(expected)


def test_unknown_and_empty_codes_default_to_two() -> None:
    for code in ("XYZ", "", "US", "bitcoin"):
        assert exponent(code) == 2
        assert not is_known_currency(code)
        assert to_major(1999, code) == 19.99
    assert exponent(None) == 2  # type: ignore[arg-type]
    assert exponent("Jpy") == 0


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
    assert format_amount(1000, "MGA", stripe_style) == "MGA 1,000"
    assert to_major(1999, "USD", stripe_style) == 1.999
    assert format_amount(1999, "USD", stripe_style) == "$1.999"
    assert to_major(1250, "KWD", stripe_style) == 1.25  # untouched codes keep the table value
    assert to_major(1999, "USD", {}) == 19.99
    assert to_major(1999, "USD", None) == 19.99
    assert exponent("XBT", {"XBT": 8}) == 8
    assert format_amount(1000, "XBT", {"XBT": 8}) == "XBT 0.00001000"


@pytest.mark.parametrize("bad", [-1, 9, 2.0, "2", True, None])
def test_override_values_are_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="exponent override for USD"):
        to_major(1, "USD", {"USD": bad})  # type: ignore[dict-item]


def test_large_values_are_exact() -> None:
    # exact decimals up to 15 digits (1234567890123.45 USD): test_matches_decimal_division
    assert to_major(123456789012345678, "JPY") == 123456789012345678
    # 16 significant digits have no exact float: the nearest one (the minor integer stays exact)
    assert to_major(9007199254740993, "KWD") == float(Decimal("9007199254740.993"))
    assert type(to_major(10**22, "USD")) is float  # whole, but past 2**63: the nearest float


@pytest.mark.parametrize("convert", [to_major, format_amount])
@pytest.mark.parametrize("bad", [True, False, 19.99, "1999", None, Decimal(1999)])
def test_rejects_non_int(convert: Any, bad: object) -> None:
    with pytest.raises(TypeError):
        convert(bad, "USD")


@given(minor=st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1), code=st.sampled_from(sorted(EXPONENTS)))
def test_matches_decimal_division(minor: int, code: str) -> None:
    places = EXPONENTS[code]
    result = to_major(minor, code)
    exact = Decimal(minor) / Decimal(10**places)
    if exact == exact.to_integral_value():
        assert result == exact and type(result) is int
    else:
        assert type(result) is float
        assert result == float(exact)
        # printed, the float is the exact decimal, so it round-trips to the same minor amount
        assert Decimal(repr(result)) == exact


# -------------------------------------------------------------------------------------------------
# display strings


# What a person reads beside the number: per currency code, minor units -> display string.
DISPLAYS: dict[str, dict[int, str]] = {
    "USD": {4900: "$49.00", 1999: "$19.99", 5: "$0.05", 0: "$0.00", 123456789: "$1,234,567.89", -4900: "-$49.00"},
    "usd": {1999: "$19.99"},
    "JPY": {4980: "¥4,980", 123456789: "¥123,456,789"},
    "KWD": {1250: "KWD 1.250", -1250: "-KWD 1.250"},
    "EUR": {1250: "€12.50", -1: "-€0.01"},
    "BHD": {1234567: "BHD 1,234.567"},
    "MGA": {1050: "MGA 10.50"},
    "KRW": {123456: "₩123,456"},
    "XYZ": {1999: "XYZ 19.99"},  # unknown code: 2 decimals, as the number
    "GBP": {1999: "£19.99"},
    "INR": {1999: "₹19.99"},
    "CAD": {1999: "CA$19.99"},
    "AUD": {1999: "A$19.99"},
    "CHF": {1999: "CHF 19.99"},
    "SEK": {1999: "SEK 19.99"},
}


@pytest.mark.parametrize(
    ("minor", "currency", "display"),
    [(minor, code, shown) for code, by_minor in DISPLAYS.items() for minor, shown in by_minor.items()],
)
def test_format_amount(minor: int, currency: str, display: str) -> None:
    assert format_amount(minor, currency) == display


def test_every_symbol_is_for_a_known_code() -> None:
    assert all(code in EXPONENTS for code in SYMBOLS)
    assert list(SYMBOLS.values()).count("$") == 1  # only the US dollar is a bare "$"


@given(minor=st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1), code=st.sampled_from(sorted(EXPONENTS)))
def test_display_carries_the_exact_amount(minor: int, code: str) -> None:
    shown = format_amount(minor, code)
    places = EXPONENTS[code]
    prefix = SYMBOLS.get(code, f"{code} ")
    assert shown == ("-" if minor < 0 else "") + prefix + shown.removeprefix("-").removeprefix(prefix)
    digits = shown.removeprefix("-").removeprefix(prefix)
    assert re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})*" + (rf"\.[0-9]{{{places}}}" if places else ""), digits), shown
    assert Decimal(digits.replace(",", "")) == abs(Decimal(minor).scaleb(-places))


# -------------------------------------------------------------------------------------------------
# decimal strings as numbers (credit balances)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1000", 1000),
        ("0", 0),
        ("-250", -250),
        ("12.5", 12.5),
        ("1000.00", 1000),  # trailing zeros are formatting, not a fraction
        (" 180 ", 180),
        ("0.1", 0.1),
        ("+7", 7),
        ("007", 7),
        (42, 42),
    ],
)
def test_decimal_number(text: object, number: int | float) -> None:
    result = decimal_number(text)
    assert result == number
    assert type(result) is type(number)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1e3",
        "12,5",
        "1,000",
        "NaN",
        "Infinity",
        ".5",
        "5.",
        "0x10",
        "99999999999999999999",  # whole, but past 2**63
        "0.1000000000000000055511151231257827",  # no float carries it exactly
        None,
        True,
        1.5,
        [],
    ],
)
def test_decimal_number_refuses_what_it_cannot_carry_exactly(text: object) -> None:
    assert decimal_number(text) is None


def test_json_number() -> None:
    assert json_number(Decimal("19.990")) == 19.99
    assert type(json_number(Decimal("49.00"))) is int
    assert json_number(Decimal("NaN")) is None
    assert json_number(Decimal("Infinity")) is None
    assert json_number(Decimal("-0")) == 0
