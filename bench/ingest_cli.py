"""The command line both warm-ingest benchmarks share (the bridge and its floor): same options, same stub.

Apart from `common.py` because it starts the stub Customer.io (`stub_http.py`), which itself reads
`common.py`'s secrets: keeping it there made the two import each other.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from common import signed_events, silence_stdout, write_json


def ingest_main(run: Any, description: str) -> None:
    """The command line both warm-ingest scripts share (the bridge and its floor): same options, same stub."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=2000, help="timed webhooks")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--events", help="signed webhooks from write_events (default: sign them now)")
    parser.add_argument("--track-url", help="a running stub (default: start one)")
    parser.add_argument("--json", help="write the result here instead of stdout")
    args = parser.parse_args()
    total = args.n + args.warmup
    events = json.loads(Path(args.events).read_text())[:total] if args.events else signed_events(total)
    if len(events) < total:
        raise SystemExit(f"{args.events} holds {len(events)} webhooks, {total} are needed")
    with tempfile.NamedTemporaryFile(prefix="bench-stdout-") as log:
        real_stdout = silence_stdout(log.name)
        if args.track_url:
            result = run(args.track_url, events, args.warmup)
        else:
            import stub_http

            with stub_http.start() as url:
                result = run(url, events, args.warmup)
        sys.stdout.flush()
        result["stdout_bytes_per_webhook"] = os.path.getsize(log.name) / total
        sys.stdout = real_stdout
    write_json(args.json, result)
