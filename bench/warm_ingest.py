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

from common import INGEST_DIR, LAYER, SECRET_VALUES, drive, ingest_environment, ingest_main


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
    return {**result, "aws_calls_per_webhook": calls, "dynamodb_write_units_per_webhook": write_units, "impl": "bridge"}


if __name__ == "__main__":
    ingest_main(run, __doc__.splitlines()[0])
