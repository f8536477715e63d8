"""The suite's own shape: pytest imports test modules by basename (rootdir mode, no packages), so two
test files with one name in different folders stop collection for everyone (it happened twice)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_its_own_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
