"""Timestamps from webhook payloads -> Unix time, without ever raising.

A hand-written parser instead of ``datetime.fromisoformat``: Python 3.11's version rejects more than
six fraction digits, and a bad date in one field must not fail the whole delivery.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

__all__ = ["to_unix_ms", "to_unix_seconds"]

_ISO = re.compile(
    r"\s*(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,32}))?)?"
    r"\s*(?P<zone>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?)?\s*"
)
_NUMBER = re.compile(r"\s*[+-]?[0-9]{1,20}(?:\.[0-9]{1,20})?\s*")
_MAX_TEXT = 80
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)  # naive UTC, like the values it is subtracted from
# Numbers above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_MS_THRESHOLD = Decimal(10**11)
# datetime's range (years 1..9999); anything outside is garbage, not a date.
_MIN_US = (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400 * 1_000_000
_MAX_US = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * 86_400 * 1_000_000 - 1
_US = timedelta(microseconds=1)


def to_unix_seconds(value: object) -> int | None:
    """Whole Unix seconds (floored), or None when the value is absent or not a recognisable time."""
    micros = _to_micros(value)
    return None if micros is None else micros // 1_000_000


def to_unix_ms(value: object) -> int | None:
    """Like ``to_unix_seconds`` at millisecond precision (ULID time parts need it)."""
    micros = _to_micros(value)
    return None if micros is None else micros // 1_000


def _to_micros(value: object) -> int | None:
    try:
        if isinstance(value, bool) or value is None:
            micros = None
        elif isinstance(value, int | float):
            micros = _number_micros(value)
        elif isinstance(value, str):
            micros = _text_micros(value)
        elif isinstance(value, datetime):
            micros = _datetime_micros(value)
        elif isinstance(value, date):
            micros = (value.toordinal() - _EPOCH_ORDINAL) * 86_400 * 1_000_000
        else:
            micros = None
    except (ValueError, OverflowError, ArithmeticError):
        return None
    if micros is None or not _MIN_US <= micros <= _MAX_US:
        return None
    return micros


def _number_micros(value: int | float) -> int | None:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # repr() is the shortest exact spelling, so 1722750600.123 stays .123, not .12299999.
        amount = Decimal(repr(value))
    else:
        amount = Decimal(value)
    scale = 1_000 if abs(amount) > _MS_THRESHOLD else 1_000_000
    return int((amount * scale).to_integral_value(rounding=ROUND_FLOOR))


def _text_micros(text: str) -> int | None:
    if len(text) > _MAX_TEXT:
        return None
    if _NUMBER.fullmatch(text):
        stripped = text.strip()
        return _number_micros(float(stripped) if "." in stripped else int(stripped))
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    days = date(int(match["year"]), int(match["month"]), int(match["day"])).toordinal() - _EPOCH_ORDINAL
    hour = int(match["hour"] or 0)
    minute = int(match["minute"] or 0)
    second = int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if match["sign"]:
        off_hours, off_minutes = int(match["oh"]), int(match["om"] or 0)
        if off_hours > 23 or off_minutes > 59:
            return None
        offset = (off_hours * 3600 + off_minutes * 60) * (-1 if match["sign"] == "-" else 1)
    # Digits past microseconds are truncated (never rounded up into the next second).
    fraction = int((match["fraction"] or "")[:6].ljust(6, "0"))
    seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset
    return seconds * 1_000_000 + fraction


def _datetime_micros(value: datetime) -> int:
    offset = value.utcoffset()
    naive = value.replace(tzinfo=None)
    if offset is not None:
        naive -= offset
    return (naive - _EPOCH) // _US
