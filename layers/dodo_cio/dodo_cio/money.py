"""Minor-unit -> major-unit conversion using ISO 4217 exponents.

Dodo sends every amount as an integer in the currency's smallest unit (yen for JPY, fils for KWD),
so dividing by 100 everywhere is wrong for 0- and 3-decimal currencies. This table follows ISO 4217.
Stripe-style tables differ (MGA is zero-decimal there; HUF, TWD, ISK and UGX get special rules), and
even Dodo's own DataFast guide copies that. Dodo documents amounts in the currency's smallest unit, so
this follows ISO; a deployment can still override single codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

__all__ = ["DEFAULT_EXPONENT", "EXPONENTS", "exponent", "is_known_currency", "to_major"]

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


def to_major(minor: int, currency: str, exponents: Mapping[str, int] | None = None) -> int | float:
    """A JSON number in major units: int for 0-decimal currencies, else the nearest float (via Decimal,
    so no binary rounding happens before the final conversion)."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor amount must be int, not {type(minor).__name__}")
    places = exponent(currency, exponents)
    if places == 0:
        return minor
    return float(Decimal(minor).scaleb(-places))
