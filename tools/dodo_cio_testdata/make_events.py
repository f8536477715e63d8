"""Regenerate events/apigw/*.json from events/dodo/*.json (one API Gateway HTTP API v2 event each).

Deterministic (fixed secret, timestamp, ids) so a re-run changes nothing unless a body changed, and
`--check` can tell whether the stored events are stale:

    .venv/bin/python -m dodo_cio_testdata.make_events [--check]

The stored events are signed at FIXED_TIMESTAMP, so they verify only with a frozen clock; for
`sam local invoke` make a fresh one with `dodo-cio event BODY_FILE --secret ...`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Final

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, signed_webhook_event

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BODIES_DIR: Final = REPO_ROOT / "events" / "dodo"
EVENTS_DIR: Final = REPO_ROOT / "events" / "apigw"
# 2026-10-14T09:21:47Z, the time of the sample payment.succeeded body.
FIXED_TIMESTAMP: Final = 1_791_969_707


def _stable_ids(name: str) -> tuple[str, str]:
    """webhook-id and API Gateway requestId derived from the file name, so output is reproducible."""
    digest = hashlib.sha256(name.encode()).digest()
    webhook_id = "msg_" + base64.b32encode(digest[:15]).decode().lower()
    req_id = base64.b64encode(digest[15:25]).decode("ascii")
    return webhook_id, req_id


def event_for(body_file: Path) -> dict[str, Any]:
    webhook_id, req_id = _stable_ids(body_file.name)
    return signed_webhook_event(
        body_file.read_bytes(),
        DEV_WEBHOOK_SECRET,
        timestamp=FIXED_TIMESTAMP,
        webhook_id=webhook_id,
        req_id=req_id,
    )


def render(body_file: Path) -> str:
    return json.dumps(event_for(body_file), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dodo_cio_testdata.make_events", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any stored event is stale")
    parser.add_argument("--bodies", type=Path, default=BODIES_DIR)
    parser.add_argument("--out", type=Path, default=EVENTS_DIR)
    args = parser.parse_args(argv)

    bodies = sorted(args.bodies.glob("*.json"))
    if not bodies:
        print(f"no *.json bodies in {args.bodies}", file=sys.stderr)
        return 2
    expected = {args.out / f.name: render(f) for f in bodies}
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    orphans = sorted(set(args.out.glob("*.json")) - set(expected)) if args.out.is_dir() else []
    if args.check:
        for path in [*stale, *orphans]:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale or orphans else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path}")
    for path in orphans:
        path.unlink()
        print(f"removed {path} (no body in {args.bodies})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
