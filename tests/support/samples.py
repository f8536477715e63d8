"""The Dodo webhook sample bodies in events/dodo/, as the tests read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "dodo"


def sample_paths() -> list[Path]:
    return sorted(SAMPLES.glob("*.json"))


def load_sample(name: str) -> dict[str, Any]:
    """A fresh parse of the sample `name` (e.g. "payment.succeeded.json"): the caller may change it."""
    doc: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return doc
