"""The process a cold-start run starts: import one handler module and serve its first event, then exit.

Started by cold_start.py as `python -c "import cold_child; cold_child.main()"` with the function's
directory and the layer on PYTHONPATH (as Lambda puts /var/task and /opt/python on sys.path) and
the function's environment. What the bench itself needs (the in-memory AWS, the tools'
`FakeLambdaContext`) is loaded after the handler module and its time reported as `harness_ms`,
which cold_start.py takes off the run's total: a Lambda has its context for free.

BENCH_COLD_SUBJECT  floor | ingest | retry
BENCH_COLD_AWS      fake (in-memory, bench/fakeaws.py: moto would add ~165 ms of its own to a cold
                    process) | endpoint (real botocore clients, AWS_ENDPOINT_URL)
BENCH_COLD_EVENT    path of the JSON event to serve
BENCH_COLD_OUT      where to write {"import_ms", "first_event_ms", "harness_ms", "peak_rss_mb", "status"}
"""

from __future__ import annotations

import json
import os
import resource
import time


def main() -> None:
    start = time.perf_counter()
    subject = os.environ["BENCH_COLD_SUBJECT"]
    result: dict[str, object] = {"harness_ms": 0.0}
    if subject == "floor":
        import boto3  # noqa: F401 - the floor is this import alone

        result["import_ms"] = (time.perf_counter() - start) * 1000
    else:
        import app  # the handler module: functions/<subject>/app.py

        imported = time.perf_counter()
        result["import_ms"] = (imported - start) * 1000
        with open(os.environ["BENCH_COLD_EVENT"], encoding="utf-8") as fh:
            event = json.load(fh)
        event_start = time.perf_counter()
        if os.environ.get("BENCH_COLD_AWS", "fake") == "fake":
            # Imports boto3, which the first event would import anyway: it stays in the event's time.
            import fakeaws

            fakeaws.install_into_boto3(fakeaws.botocore_fake(json.loads(os.environ["BENCH_COLD_SECRETS"])))
        harness = time.perf_counter()
        from dodo_cio_local.lambda_context import FakeLambdaContext

        context = FakeLambdaContext(f"bench-{subject}", timeout_seconds=int(os.environ["BENCH_COLD_TIMEOUT_S"]))
        harness_ms = (time.perf_counter() - harness) * 1000
        response = app.lambda_handler(event, context)
        result["first_event_ms"] = (time.perf_counter() - event_start) * 1000 - harness_ms
        result["harness_ms"] = harness_ms
        if subject == "ingest":
            result["status"] = f"{response['statusCode']} {json.loads(response['body']).get('status')}"
        else:
            result["status"] = f"{len(response.get('batchItemFailures', []))} failures"
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.environ["BENCH_COLD_OUT"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os._exit(0)  # no interpreter teardown: Lambda freezes the process, it does not exit it
