"""`make size`: the ratios are computed from the counts, and the counts from git's files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dodo_cio_testdata import suite_size


def test_the_report_divides_tests_by_each_idea_of_product() -> None:
    lines = Counter({"layer (deployed)": 900, "handlers (deployed)": 100, "merchant CLI": 1000, "tests": 3000})
    text = suite_size.report(lines)
    assert "tests / deployed product           3.00" in text
    assert "tests / deployed product + CLI     1.50" in text
    assert "   3,000  tests" in text


def test_this_repository_is_counted_by_area() -> None:
    lines = suite_size.count(Path(suite_size.ROOT))
    assert lines["layer (deployed)"] > 1000 and lines["tests"] > 1000
    assert set(lines) <= {label for label, _ in suite_size.AREAS}
