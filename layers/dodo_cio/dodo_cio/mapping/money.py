"""Minor-unit -> major-unit conversion using ISO 4217 exponents, and amounts as people read them.

Dodo sends every amount as an integer in the currency's smallest unit (yen for JPY, fils for KWD),
so dividing by 100 everywhere is wrong for 0- and 3-decimal currencies. This table follows ISO 4217.
Stripe-style tables differ (MGA is zero-decimal there; HUF, TWD, ISK and UGX get special rules), and
even Dodo's own DataFast guide copies that. Dodo documents amounts in the currency's smallest unit, so
this follows ISO; a deployment can still override single codes.

Numbers leave here as JSON numbers a template prints the way a person writes them: an integral
amount is an int (`49`, never `49.0`), any other amount the float whose shortest form is the exact
decimal (`19.99`). A display string (`$49.00`, `KWD 1.250`) goes beside it for templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

__all__ = [
    "DEFAULT_EXPONENT",
    "EXPONENTS",
    "SYMBOLS",
    "decimal_number",
    "exponent",
    "format_amount",
    "is_known_currency",
    "json_number",
    "to_major",
]

DEFAULT_EXPONENT = 2

_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"  # UYI: ISO fund code
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL = "CLF UYW"  # ISO units of account; Dodo does not price in them, listed for completeness
# Two decimals per ISO 4217, including MGA, MRU, HUF, TWD and IDR. Some codes are recently retired
# (HRK, SLL, CUC, ZWL, ANG); they are kept so old payloads still count as "known".
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD "
    "XCG YER ZAR ZMW ZWG ZWL"
)

EXPONENTS: Mapping[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL.split(), 2),
    **dict.fromkeys(_ZERO_DECIMAL.split(), 0),
    **dict.fromkeys(_THREE_DECIMAL.split(), 3),
    **dict.fromkeys(_FOUR_DECIMAL.split(), 4),
}


def _code(currency: object) -> str:
    return currency.strip().upper() if isinstance(currency, str) else ""


def _override(code: str, exponents: Mapping[str, int] | None) -> int | None:
    """Overrides are matched case-insensitively and validated, since they come from configuration."""
    if not exponents or not code:
        return None
    for key, value in exponents.items():
        if isinstance(key, str) and key.strip().upper() == code:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 8:
                raise ValueError(f"exponent override for {code} must be an integer 0..8")
            return value
    return None


def exponent(currency: str, exponents: Mapping[str, int] | None = None) -> int:
    """Decimal places of ``currency``; unknown or empty codes get 2 (see ``is_known_currency``)."""
    code = _code(currency)
    found = _override(code, exponents)
    if found is not None:
        return found
    return EXPONENTS.get(code, DEFAULT_EXPONENT)


def is_known_currency(currency: str, exponents: Mapping[str, int] | None = None) -> bool:
    """Lets callers flag amounts whose exponent was guessed."""
    code = _code(currency)
    return code in EXPONENTS or _override(code, exponents) is not None


# Symbols only where an English-speaking reader cannot mistake the currency: a bare "$" is the US
# dollar, other dollars carry their prefix (CA$, A$). Everything else reads "CODE 1,234.50".
SYMBOLS: Mapping[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "INR": "₹",
    "KRW": "₩",
    "CNY": "CN¥",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "HKD": "HK$",
    "SGD": "S$",
    "MXN": "MX$",
    "BRL": "R$",
    "TWD": "NT$",
    "ILS": "₪",
    "VND": "₫",
    "PHP": "₱",
    "NGN": "₦",
}

_MAX_EXACT_INT = 2**63  # past this an integer is not a number Customer.io stores exactly
_CLEAN_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def json_number(value: Decimal) -> int | float | None:
    """`value` as a JSON number that carries it exactly, or None when no such number exists.

    Integral values become ints (a template prints `49`, not `49.0`); others become the float
    whose shortest repr is the same decimal (`19.99`), which holds for up to 15 significant digits.
    """
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        whole = int(value)
        return whole if abs(whole) < _MAX_EXACT_INT else None
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        return None
    return as_float


def decimal_number(value: object) -> int | float | None:
    """A decimal string (Dodo sends credit balances as `"1000"` or `"12.5"`) as a JSON number.

    None when the value is not a plain decimal (`"1e3"`, `"12,5"`, `"abc"`) or no JSON number holds
    it exactly: the caller then keeps the string rather than send a different number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < _MAX_EXACT_INT else None
    if not isinstance(value, str) or not _CLEAN_DECIMAL.fullmatch(value.strip()):
        return None
    try:
        return json_number(Decimal(value.strip()))
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def _major_decimal(minor: int, currency: str, exponents: Mapping[str, int] | None) -> tuple[Decimal, int]:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor amount must be int, not {type(minor).__name__}")
    places = exponent(currency, exponents)
    return Decimal(minor).scaleb(-places), places


def to_major(minor: int, currency: str, exponents: Mapping[str, int] | None = None) -> int | float:
    """A JSON number in major units: an int when the amount is whole (`4900` USD cents -> `49`),
    else the float whose shortest form is the exact decimal (`1999` -> `19.99`).

    Amounts with more than 15 significant digits have no exact float; they get the nearest one
    (the minor-unit integer sent beside it stays exact). An amount past the float range is `inf`,
    which the caller must not send.
    """
    major, _ = _major_decimal(minor, currency, exponents)
    exact = json_number(major)
    if exact is not None:
        return exact
    if major == major.to_integral_value() and not exponent(currency, exponents):
        return minor  # a 0-decimal currency: the minor integer is the major amount
    return float(major)


def format_amount(minor: int, currency: str, exponents: Mapping[str, int] | None = None) -> str:
    """The amount as a person reads it: `$49.00`, `¥4,980`, `KWD 1.250`, `-€12.50`.

    Exactly the currency's decimal places, thousands separated by commas, the sign before the
    symbol. English conventions: a template that needs another locale formats `<prefix>_minor`.
    """
    major, places = _major_decimal(minor, currency, exponents)
    code = _code(currency)
    digits = f"{abs(major):,.{places}f}"
    sign = "-" if major < 0 else ""
    symbol = SYMBOLS.get(code)
    if symbol is not None:
        return f"{sign}{symbol}{digits}"
    return f"{sign}{code or '?'} {digits}"
