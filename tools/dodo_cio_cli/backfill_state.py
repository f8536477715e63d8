"""Backfill, the resumable state file: what each listing has done, so a rerun resumes, not repeats."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dodo_cio_cli.backfill_source import STATE_VERSION, BackfillError

# -- state ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ListingState:
    next_page: int = 0
    done: bool = False
    objects: int = 0  # read from Dodo
    delivered: int = 0  # objects whose every op Customer.io accepted
    failed: int = 0  # objects rejected (207/400) or unusable
    ops: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)  # the first MAX_RECORDED_FAILURES

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ListingState:
        return cls(
            next_page=int(doc.get("next_page", 0)),
            done=bool(doc.get("done", False)),
            objects=int(doc.get("objects", 0)),
            delivered=int(doc.get("delivered", 0)),
            failed=int(doc.get("failed", 0)),
            ops=int(doc.get("ops", 0)),
            failures=[dict(f) for f in doc.get("failures", []) if isinstance(f, dict)],
        )


@dataclass(slots=True)
class State:
    """The checkpoint: per listing, the next Dodo page to read; written atomically after each page."""

    fingerprint: dict[str, Any]
    listings: dict[str, ListingState] = field(default_factory=dict)
    started_at: int = 0
    updated_at: int = 0
    completed_at: int | None = None

    def listing(self, key: str) -> ListingState:
        return self.listings.setdefault(key, ListingState())

    def to_json(self) -> str:
        doc = {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "listings": {k: asdict(v) for k, v in self.listings.items()},
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackfillError(f"cannot read the state file {path}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                raise ValueError("not a backfill state file of this version")
            return cls(
                fingerprint=dict(doc["fingerprint"]),
                listings={str(k): ListingState.from_json(v) for k, v in doc.get("listings", {}).items()},
                started_at=int(doc.get("started_at", 0)),
                updated_at=int(doc.get("updated_at", 0)),
                completed_at=doc.get("completed_at"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackfillError(
                f"the state file {path} is unreadable ({exc}); move it away, or pass --restart to start over"
            ) from None

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over the old one: a crash never leaves half a file."""
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(self.to_json(), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            raise BackfillError(f"cannot write the state file {path}: {exc.strerror or exc}") from None


def fingerprint(
    *, dodo: str, customerio_url: str, site_id: str, identifier: str, events: bool, page_size: int
) -> dict[str, Any]:
    """What must not change between a run and its resumption (page cursors mean nothing otherwise)."""
    workspace = hashlib.sha256(f"{customerio_url}\n{site_id}".encode()).hexdigest()[:16]
    return {
        "dodo": dodo,
        "customerio": workspace,
        "identifier": identifier,
        "events": events,
        "page_size": page_size,
    }
