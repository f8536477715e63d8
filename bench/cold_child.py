"""The process a cold-start run starts: import one handler module and serve its first event, then exit.

Started by cold_start.py as `python -c "import cold_child; cold_child.main()"` with the function's
directory and the layer on PYTHONPATH (as Lambda puts /var/task and /opt/python on sys.path) and
the function's environment. Kept tiny and stdlib-only so it costs nothing the handler would not.

BENCH_COLD_SUBJECT  floor | ingest | retry
BENCH_COLD_AWS      fake (in-memory, bench/fakeaws.py) | endpoint (real botocore clients, AWS_ENDPOINT_URL)
BENCH_COLD_EVENT    path of the JSON event to serve
BENCH_COLD_OUT      where to write {"import_ms", "first_event_ms", "peak_rss_mb", "status"}
"""

from __future__ import annotations

import json
import os
import resource
import time


def main() -> None:
    start = time.perf_counter()
    subject = os.environ["BENCH_COLD_SUBJECT"]
    result: dict[str, object] = {}
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
            # Imports boto3, which the first event would import anyway (Powertools Idempotency/Parameters).
            import fakeaws

            secrets = json.loads(os.environ["BENCH_COLD_SECRETS"])
            fakeaws.install_into_boto3(fakeaws.botocore_fake(secrets))
        response = app.lambda_handler(event, _Context())
        result["first_event_ms"] = (time.perf_counter() - event_start) * 1000
        if subject == "ingest":
            result["status"] = f"{response['statusCode']} {json.loads(response['body']).get('status')}"
        else:
            result["status"] = f"{len(response.get('batchItemFailures', []))} failures"
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.environ["BENCH_COLD_OUT"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os._exit(0)  # no interpreter teardown: Lambda freezes the process, it does not exit it


class _Context:
    function_name = "bench-cold"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-cold"
    memory_limit_in_mb = 256
    aws_request_id = "cold-0001"
    log_group_name = "/aws/lambda/bench-cold"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 12_000
