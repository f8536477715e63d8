"""Payload timestamps -> Unix time; never raises, whatever the payload holds."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dodo_cio.platform.times import to_unix_ms, to_unix_seconds

BASE = 1_754_285_400  # 2025-08-04T05:30:00Z


@pytest.mark.parametrize(
    ("text", "seconds", "ms"),
    [
        ("2025-08-04T05:30:00.9Z", BASE, BASE * 1000 + 900),
        ("2025-08-04T05:30:00.123456789Z", BASE, BASE * 1000 + 123),  # > 6 digits: truncated
        ("2025-08-04T05:30:00.999999999Z", BASE, BASE * 1000 + 999),  # never rounds into the next second
        ("2025-08-04T05:30:00.123+00:00", BASE, BASE * 1000 + 123),
        ("2025-08-04T07:30:00.5+02:00", BASE, BASE * 1000 + 500),
        ("2025-08-04T00:00:00-05:30", BASE, BASE * 1000),
        ("2025-08-04T11:00:00+0530", BASE, BASE * 1000),
        ("2025-08-04T07:30:00+02", BASE, BASE * 1000),
        ("2025-08-04 05:30:00Z", BASE, BASE * 1000),
        ("2025-08-04t05:30:00z", BASE, BASE * 1000),
        ("2025-08-04T05:30Z", BASE, BASE * 1000),
        ("2025-08-04T05:30:00,25Z", BASE, BASE * 1000 + 250),
        ("  2025-08-04T05:30:00Z \n", BASE, BASE * 1000),
        ("2025-08-04", BASE - 5 * 3600 - 1800, (BASE - 5 * 3600 - 1800) * 1000),  # midnight UTC
        ("1970-01-01T00:00:00Z", 0, 0),
        ("1969-12-31T23:59:59.5Z", -1, -500),
        ("2024-02-29T12:00:00Z", 1_709_208_000, 1_709_208_000_000),
    ],
)
def test_iso_strings(text: str, seconds: int, ms: int) -> None:
    assert to_unix_seconds(text) == seconds
    assert to_unix_ms(text) == ms


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        "",
        "   ",
        "not a date",
        "2025-13-01",
        "2025-02-30T00:00:00Z",
        "2025-08-04T24:00:00Z",
        "2025-08-04T05:60:00Z",
        "2025-08-04T05:30:60Z",
        "2025-08-04T05:30:00+24:00",
        "2025-08-04T05:30:00+05:75",
        "2025-08-04T05:30:00 UTC",
        "2025-08-04T",
        "2025/08/04",
        "04-08-2025",
        "0000-01-01",
        "2025-08-04T05:30:00." + "1" * 100,
        "x" * 10_000,
        float("nan"),
        float("inf"),
        float("-inf"),
        10**30,
        -(10**30),
        [],
        {},
        b"2025-08-04",
        object(),
    ],
)
def test_garbage_is_none(value: object) -> None:
    assert to_unix_seconds(value) is None
    assert to_unix_ms(value) is None


@pytest.mark.parametrize(
    ("value", "seconds", "ms"),
    [
        (BASE, BASE, BASE * 1000),
        (BASE * 1000 + 123, BASE, BASE * 1000 + 123),  # > 1e11: milliseconds
        (BASE + 0.123, BASE, BASE * 1000 + 123),
        (1722750600.999, 1722750600, 1722750600999),
        (0, 0, 0),
        (-1.5, -2, -1500),
        (100_000_000_000, 100_000_000_000, 100_000_000_000_000),  # exactly 1e11 is still seconds
        (100_000_000_001, 100_000_000, 100_000_000_001),
        (float(BASE * 1000), BASE, BASE * 1000),
        (str(BASE), BASE, BASE * 1000),
        (f" {BASE}.25 ", BASE, BASE * 1000 + 250),
    ],
)
def test_numbers(value: object, seconds: int, ms: int) -> None:
    assert to_unix_seconds(value) == seconds
    assert to_unix_ms(value) == ms


def test_datetime_objects() -> None:
    aware = datetime(2025, 8, 4, 7, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert to_unix_seconds(aware) == BASE
    assert to_unix_ms(aware) == BASE * 1000 + 123
    assert to_unix_seconds(datetime(2025, 8, 4, 5, 30)) == BASE  # naive = UTC
    assert to_unix_seconds(date(2025, 8, 4)) == BASE - 5 * 3600 - 1800
    assert to_unix_seconds(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) is None


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)))
def test_round_trips_isoformat(moment: datetime) -> None:
    expected_ms = (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    for text in (moment.isoformat(), moment.isoformat() + "Z", moment.isoformat() + "+00:00"):
        assert to_unix_ms(text) == expected_ms
        assert to_unix_seconds(text) == expected_ms // 1000


@given(st.one_of(st.text(max_size=60), st.integers(), st.floats(), st.none(), st.booleans()))
def test_never_raises(value: object) -> None:
    seconds = to_unix_seconds(value)
    ms = to_unix_ms(value)
    assert (seconds is None) == (ms is None)
    if seconds is not None and ms is not None:
        assert seconds == ms // 1000
