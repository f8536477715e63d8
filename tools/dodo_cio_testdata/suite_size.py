"""`make size`: lines of product and of tests, per area, and the ratio the project holds itself to.

Counts physical lines of the Python files git tracks (what a reader has to read), by where they
live. "Product" is said two ways, because the answer depends on it and both are worth knowing:
what is deployed (the layer and the two handlers), and that plus the merchant's CLI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
AREAS: Final = (  # (label, path prefix), first match wins
    ("layer (deployed)", "layers/"),
    ("handlers (deployed)", "functions/"),
    ("merchant CLI", "tools/dodo_cio_cli/"),
    ("local emulator", "tools/dodo_cio_local/"),
    ("load test, sample data", "tools/dodo_cio_testdata/"),
    ("tests", "tests/"),
    ("benchmarks", "bench/"),
)


def count(root: Path = ROOT) -> Counter[str]:
    git = shutil.which("git") or "git"
    listed = subprocess.run([git, "ls-files", "*.py"], cwd=root, capture_output=True, text=True, check=True)  # noqa: S603
    lines: Counter[str] = Counter()
    for name in listed.stdout.split():
        label = next((label for label, prefix in AREAS if name.startswith(prefix)), None)
        if label is not None:
            with (root / name).open(encoding="utf-8") as handle:
                lines[label] += sum(1 for _ in handle)
    return lines


def report(lines: Counter[str]) -> str:
    deployed = lines["layer (deployed)"] + lines["handlers (deployed)"]
    with_cli = deployed + lines["merchant CLI"]
    tests = lines["tests"]
    rows = [f"{n:>8,}  {label}" for label, _ in AREAS for n in [lines[label]]]
    rows += [
        "",
        f"tests / deployed product           {tests / deployed:.2f}",
        f"tests / deployed product + CLI     {tests / with_cli:.2f}",
    ]
    return "\n".join(rows)


def main() -> int:
    print(report(count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
