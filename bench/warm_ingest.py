"""Warm ingest: the real ingest handler (`functions/ingest/app.py`) called in-process, per-webhook time.

Set-up, identical for the floor (`floor_ingest.py`):
  * the same signed webhooks (`--events`, written by `common.write_events`), cycling through
    events/dodo, each with its own webhook id and a later event time (so the freshness check admits
    every identify: the happy path); one `FakeLambdaContext` each, built before the timed loop;
  * Customer.io = `stub_http.py` on loopback (keep-alive HTTP/1.1, answers 200 `{}`), in its own process;
  * AWS = `fakeaws.FakeAws` in memory: the bridge reaches it through boto3 (patched) and Powertools
    exactly as it would reach AWS (SSM GetParameters; DynamoDB TransactWriteItems carrying the
    idempotency record with the webhook's state records, or a plain PutItem when there are none,
    then UpdateItem for the completed record; BatchGetItem when an op needs the identity
    directory); the floor makes its own calls on the same fake. Not moto, which the tests use: it
    costs ~1.4 ms of CPU per DynamoDB call here, five floor webhooks' worth, and the floor makes more
    calls than the bridge (2.59 against 2.00), so the comparison would measure moto;
  * stdout (Powertools' JSON logs and EMF metrics) goes to a file, counted, then discarded.
The first `--warmup` webhooks (imports, client creation, the first TCP connection) are not timed.

    .venv/bin/python bench/warm_ingest.py [--n 2000] [--events FILE] [--track-url URL] [--json out.json]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from common import INGEST_DIR, LAYER, SECRET_VALUES, drive, ingest_environment, sample_bodies
from ingest_cli import ingest_main


def run(track_url: str, events: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    os.environ.update(ingest_environment(track_url))
    sys.path[:0] = [str(INGEST_DIR), str(LAYER)]  # as in Lambda: the function, then the layer
    from fakeaws import botocore_fake, install_into_boto3

    fake = botocore_fake(SECRET_VALUES)
    install_into_boto3(fake)
    import app  # after the environment: Powertools reads it at import, as in Lambda

    result = drive(app.lambda_handler, events, warmup)
    calls = {k: round(v / len(events), 3) for k, v in sorted(fake.calls.items())}
    write_units = round(fake.write_units / len(events), 3)
    by_kind = round_trips_by_kind(app.lambda_handler, fake)
    return {
        **result,
        "aws_calls_per_webhook": calls,
        "dynamodb_write_units_per_webhook": write_units,
        "dynamodb_round_trips_by_kind": by_kind,
        "impl": "bridge",
    }


def round_trips_by_kind(handler: Any, fake: Any) -> dict[str, Any]:
    """DynamoDB calls per webhook, untimed, over one pass of the samples: the most any webhook that
    changes the commercial summary makes (a succeeded payment or refund, or a subscription webhook:
    its customer's ledger is read first),
    the most any other makes, and the types of the others that make more than 2."""
    import json

    from common import lambda_contexts, signed_events

    events = signed_events(len(sample_bodies()), prefix="msg_count_", later_by=10**6)  # after the timed run
    summary: list[int] = []
    other: dict[str, int] = {}
    for event, context in zip(events, lambda_contexts(len(events)), strict=True):
        before = sum(v for k, v in fake.calls.items() if k.startswith("dynamodb."))
        handler(event, context)
        calls = sum(v for k, v in fake.calls.items() if k.startswith("dynamodb.")) - before
        event_type = json.loads(event["body"])["type"]
        if event_type in ("payment.succeeded", "refund.succeeded") or event_type.startswith("subscription."):
            summary.append(calls)
        else:
            other[event_type] = max(calls, other.get(event_type, 0))
    return {
        "summary": max(summary),
        "other": max(other.values()),
        "other_over_2": sorted(t for t, n in other.items() if n > 2),
    }


if __name__ == "__main__":
    ingest_main(run, __doc__.splitlines()[0])
