"""Backlog drain: 10,000 parked deliveries drained by the retry function against a rate-limited Customer.io.

Set-up:
  * AWS = `fake_aws_server.py` (SQS, DynamoDB, SSM over botocore's JSON protocol) in its own
    process, so several processes share one queue the way Lambda's pollers share the real one: the
    retry queue and its DLQ with template.yaml's properties (visibility, retention, redrive), the
    StateTable, the SSM credentials. Not moto: moto's SQS scans the whole queue on every call
    (~330 ms per ReceiveMessage with 1,000 messages queued, seeding 1,000 took 7 s, both growing
    with the queue), which would make 10,000 messages a matter of hours;
  * 10,000 ParkedDelivery messages (2 ops each, identify + event, mapped from events/dodo like
    real ones; one customer per message, so every identify and every event must arrive);
  * Customer.io = the TrackSandbox (tools/dodo_cio_local/sandbox.py) in its own process with
    `rate_limit=100` req/s (token bucket, 429 + Retry-After beyond it); `--validate` keeps its
    per-op schema validation on (off by default here: at ~0.6 ms per op it costs more than the
    bridge, see RESULTS.md);
  * the retry function = `functions/retry/app.py` in RetryMaxConcurrency (2) worker processes,
    each a container of its own (module state, rate limiter at RPS / concurrency, connection
    pool), each driven by `SqsEventSource` (tools/dodo_cio_local/event_source.py) with the
    template's RetryBatchSize. Processes rather than threads: the handler keeps its service in
    module globals and Powertools Metrics shares its buffer per process, so two containers in one
    process would share both; and two processes do not share a GIL, as two containers share nothing.
    One difference from Lambda stays: a worker receives, invokes and deletes in turn, while
    Lambda's pollers receive and delete outside the function's time.

Measured: time from "go" to the last message deleted, against the floor
`events ÷ (rate limit x events per request achieved)`; Customer.io requests per event; 429s;
the highest number of requests in any one-second window; where the workers' time went (Track
requests, the state table's DynamoDB calls (one TransactWriteItems per retry batch), SQS calls of
the handler and of the poller, the rest); DynamoDB calls per batch (invocation);
peak RSS of each container. Verified: every event id accepted exactly once, every identify
accepted, retry queue and DLQ empty.

    .venv/bin/python bench/drain.py [--events 10000] [--validate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from common import (
    BENCH,
    LAYER,
    RETRY_DIR,
    SSM_PATH,
    TOOLS,
    parked_body,
    peak_rss_mb,
    sample_bodies,
    sample_ops,
    silence_stdout,
    template_info,
    write_json,
)

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
SANDBOX_SITE = "drain-site"
SANDBOX_KEY = "drain-key"


# --- the parked backlog -----------------------------------------------------------------------------


def parked_messages(n: int) -> tuple[list[str], set[str]]:
    """`n` ParkedDelivery bodies (identify + event, one customer each) and their event ids."""
    from dodo_cio.platform.ulid import deterministic_ulid

    mapped = [sample_ops(doc) for doc in sample_bodies()]
    templates = [(envelope, ops) for envelope, ops in mapped if [op["action"] for op in ops] == ["identify", "event"]]
    now = int(time.time())
    bodies: list[str] = []
    event_ids: set[str] = set()
    for i in range(n):
        envelope, (identify, event) = templates[i % len(templates)]
        webhook_id = f"msg_drain_{i:06d}"
        customer = {"id": f"cus_drain_{i:06d}"}
        event_id = deterministic_ulid(webhook_id, envelope.timestamp * 1000)
        event_ids.add(event_id)
        ops = [{**identify, "identifiers": customer}, {**event, "identifiers": customer, "id": event_id}]
        bodies.append(parked_body(webhook_id, envelope, ops, now))
    return bodies, event_ids


# --- AWS ---------------------------------------------------------------------------------------


def provision(endpoint: str, info: dict[str, Any], sandbox_url: str) -> dict[str, str]:
    """Queues, table and secrets as the template defines them; the retry function's environment."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    dlq = info["dead_letter_queue"]
    dlq_url = sqs.create_queue(QueueName=dlq["name"], Attributes=dlq["attributes"])["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    retry = info["retry_queue"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": info["max_receive_count"]})
    queue_url = sqs.create_queue(QueueName=retry["name"], Attributes={**retry["attributes"], "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    dynamodb.create_table(TableName="bench-drain-state", **info["state_table"])
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION)
    for name, value in (("customerio-site-id", SANDBOX_SITE), ("customerio-api-key", SANDBOX_KEY)):
        ssm.put_parameter(Name=f"{SSM_PATH}/{name}", Value=value, Type="SecureString", Overwrite=True)
    return {
        **info["retry_env"],
        **AWS_ENV,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": "bench-retry",
        "SSM_PARAMETER_PATH": SSM_PATH,
        "CUSTOMERIO_TRACK_URL": sandbox_url,
        "RETRY_QUEUE_URL": queue_url,
        "DEAD_LETTER_QUEUE_URL": dlq_url,
        "STATE_TABLE_NAME": "bench-drain-state",
        # A backlog with no webhooks arriving: the drain may use the whole budget (the template's share would
        # leave it half, and the floor, which paces at the whole rate limit, would no longer compare).
        "CUSTOMERIO_INGEST_SHARE": "0",
    }


def seed(endpoint: str, queue_url: str, bodies: list[str]) -> None:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    for start in range(0, len(bodies), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": body,
                "MessageAttributes": {
                    "event_type": {"DataType": "String", "StringValue": json.loads(body)["event_type"]},
                    "error_kind": {"DataType": "String", "StringValue": "transient"},
                },
            }
            for i, body in enumerate(bodies[start : start + 10])
        ]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"seeding failed: {answer['Failed'][:1]}")


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


# --- child processes ---------------------------------------------------------------------------


class Child:
    """A child process speaking one line of JSON at a time on stdout; told what to do on stdin."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.proc.args} exited ({self.proc.wait()})")
        return json.loads(line)

    def say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def finish(self) -> Any:
        self.say("stop")
        result = self.read()
        self.proc.wait(timeout=30)
        return result


def _base_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(BENCH)),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(RETRY_DIR), str(LAYER), str(TOOLS), str(BENCH)]),
    }


def sandbox_main(rate: float, validate: bool) -> None:
    """Child: the TrackSandbox, rate-limited; on "stop", a summary of what it accepted."""
    import logging

    from dodo_cio_local.sandbox import TrackSandbox

    logging.getLogger("dodo_cio_local.sandbox").setLevel(logging.WARNING)
    with TrackSandbox(site_id=SANDBOX_SITE, api_key=SANDBOX_KEY, rate_limit=rate, validate=validate) as box:
        print(json.dumps({"url": box.base_url}), flush=True)
        sys.stdin.readline()
        requests = box.requests
        accepted = box.accepted_ops()
        events = Counter(op["id"] for op in accepted if op.get("action") == "event")
        ok = [r for r in requests if 200 <= r.status < 300]
        times = sorted(r.received_at for r in requests)
        window, peak = 0, 0
        for i, t in enumerate(times):  # most requests in any 1-second window
            while times[window] <= t - 1.0:
                window += 1
            peak = max(peak, i - window + 1)
        print(
            json.dumps(
                {
                    "requests": len(requests),
                    "statuses": dict(Counter(str(r.status) for r in requests)),
                    "rate_limited": sum(1 for r in requests if r.scripted == "rate_limit"),
                    "ops_per_ok_request": len(accepted) / len(ok) if ok else 0.0,
                    "accepted_ops": len(accepted),
                    "accepted_identifies": sum(1 for op in accepted if op.get("action") == "identify"),
                    "event_ids": sorted(events),
                    "duplicate_events": sum(c - 1 for c in events.values()),
                    "peak_requests_per_second": peak,
                    "peak_rss_mb": peak_rss_mb(),
                }
            ),
            flush=True,
        )


def _instrument() -> tuple[defaultdict[str, float], Counter[str], Any]:
    """Where the time goes: every AWS call and every Track request wrapped (in this process only).

    Returns the seconds and call counters, and a wrapper for the handler (AWS calls made inside it
    count as the handler's, the others as the poller's)."""
    from botocore.client import BaseClient

    from dodo_cio.delivery import track as customerio

    spent: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    in_handler = threading.local()

    def timed(function: Any, key: Any) -> Any:
        """`function`, counting its calls and seconds under `key(*args)` (a str: always that key)."""

        def run(*args: Any) -> Any:
            where = key(*args) if callable(key) else key
            start = time.perf_counter()
            try:
                return function(*args)
            finally:
                spent[where] += time.perf_counter() - start
                calls[where] += 1

        return run

    def api_call_key(client: Any, operation: str, params: Any) -> str:
        # The state table's calls (directory BatchGetItem, the batch's TransactWriteItems) may run on
        # the handler's worker threads (no thread-local flag there); the poller never calls DynamoDB.
        dynamodb = client.meta.service_model.service_name == "dynamodb"
        if dynamodb:
            calls["DynamoDB calls"] += 1  # every operation, for the per-batch figure
        return f"{'handler' if getattr(in_handler, 'on', False) or dynamodb else 'poller'} {operation}"

    BaseClient._make_api_call = timed(BaseClient._make_api_call, api_call_key)  # type: ignore[method-assign]
    customerio.TrackClient.send = timed(customerio.TrackClient.send, "handler Track request")  # type: ignore[method-assign]

    def wrap(lambda_handler: Any) -> Any:
        counted = timed(lambda_handler, "handler total")

        def handler(event: Any, context: Any) -> Any:
            in_handler.on = True
            try:
                return counted(event, context)
            finally:
                in_handler.on = False

        return handler

    return spent, calls, wrap


def worker_main(batch_size: int, memory_mb: int, timeout_s: int) -> None:
    """Child: one retry-function container polled by SqsEventSource until told to stop."""
    real_stdout = silence_stdout()

    def say(doc: Any) -> None:
        real_stdout.write(json.dumps(doc) + "\n")
        real_stdout.flush()

    import boto3

    import app  # functions/retry/app.py: the container's one handler module
    from dodo_cio_local.event_source import SqsEventSource
    from dodo_cio_local.lambda_context import FakeLambdaContext

    spent, calls, wrap = _instrument()
    handler = wrap(app.lambda_handler)
    sqs = boto3.client("sqs")
    source = SqsEventSource(
        sqs,
        os.environ["RETRY_QUEUE_URL"],
        handler,
        batch_size=batch_size,
        context_factory=lambda: FakeLambdaContext(
            "bench-retry", memory_limit_in_mb=memory_mb, timeout_seconds=timeout_s
        ),
    )
    _ = source.queue_arn
    say({"ready": True})
    sys.stdin.readline()  # "go"
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    totals: Counter[str] = Counter()
    errors: list[str] = []
    last_delete = 0.0
    started = time.time()
    busy = 0.0
    while not stop.is_set():
        poll_start = time.perf_counter()
        result = source.poll_once()
        if result.received:
            busy += time.perf_counter() - poll_start
        totals["polls"] += 1
        totals["received"] += result.received
        totals["deleted"] += result.deleted
        totals["left_for_retry"] += len(result.failed)
        if result.deleted:
            last_delete = time.time()
        if result.error is not None:
            errors.append(f"{type(result.error).__name__}: {result.error}"[:300])
        if result.received == 0:
            stop.wait(0.05)
    say(
        {
            "started": started,
            "last_delete": last_delete,
            "busy_s": busy,
            "totals": dict(totals),
            "errors": errors[:5],
            "spent_s": dict(spent),
            "calls": dict(calls),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


# --- the orchestration -------------------------------------------------------------------------------


def measure(events: int, validate: bool, batch_size: int | None = None) -> dict[str, Any]:
    info = template_info()
    rate = info["customerio_rps"]
    concurrency = info["retry_max_concurrency"]
    batch_size = batch_size or info["retry_batch_size"]
    bodies, expected_ids = parked_messages(events)
    import stub_http

    with stub_http.start(str(BENCH / "fake_aws_server.py")) as endpoint:
        sandbox = Child(["--sandbox", str(rate)] + (["--validate"] if validate else []), _base_env())
        sandbox_url = sandbox.read()["url"]
        os.environ.update(AWS_ENV)
        env = provision(endpoint, info, sandbox_url)
        seed_start = time.perf_counter()
        seed(endpoint, env["RETRY_QUEUE_URL"], bodies)
        seed_s = time.perf_counter() - seed_start
        workers = [
            Child(
                ["--worker", str(batch_size), str(info["retry_memory_mb"]), str(info["retry_timeout_s"])],
                {**_base_env(), **env},
            )
            for _ in range(concurrency)
        ]
        for worker in workers:
            worker.read()  # ready: module imported, queue known
        import boto3

        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        go = time.time()
        for worker in workers:
            worker.say("go")
        deadline = go + max(600.0, events / 5)
        while queue_depth(sqs, env["RETRY_QUEUE_URL"]) and time.time() < deadline:
            time.sleep(0.2)
        emptied = time.time()
        reports = [worker.finish() for worker in workers]
        accepted = sandbox.finish()
        left = queue_depth(sqs, env["RETRY_QUEUE_URL"])
        dead = queue_depth(sqs, env["DEAD_LETTER_QUEUE_URL"])

    drain_s = max(r["last_delete"] for r in reports) - go
    ok_requests = sum(int(v) for k, v in accepted["statuses"].items() if k.startswith("2"))
    events_per_request = events / ok_requests if ok_requests else 0.0
    floor_s = events / (rate * events_per_request) if events_per_request else float("inf")
    got = set(accepted.pop("event_ids"))
    spent: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    for report in reports:
        for key, seconds in report["spent_s"].items():
            spent[key] += seconds
        calls.update(report["calls"])
    batches = calls.get("handler total", 0)
    return {
        "events": events,
        "validate": validate,
        "rate_limit_rps": rate,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "seed_s": seed_s,
        "drain_s": drain_s,
        "queue_seen_empty_after_s": emptied - go,
        "floor_s": floor_s,
        "ratio_to_floor": drain_s / floor_s,
        "events_per_request": events_per_request,
        "requests_per_event": ok_requests / events if events else 0.0,
        "sandbox": accepted,
        "missing_events": len(expected_ids - got),
        "unexpected_events": len(got - expected_ids),
        "retry_queue_left": left,
        "dlq": dead,
        "workers": reports,
        "spent_s_all_workers": dict(spent),
        "calls_all_workers": dict(calls),
        "batches": batches,
        "dynamodb_calls": calls.get("DynamoDB calls", 0),
        "dynamodb_calls_per_batch": calls.get("DynamoDB calls", 0) / batches if batches else 0.0,
        "dynamodb_calls_per_event": calls.get("DynamoDB calls", 0) / events if events else 0.0,
        "worker_peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--validate", action="store_true", help="keep the sandbox's per-op validation on")
    parser.add_argument("--batch-size", type=int, help="override the template's RetryBatchSize")
    parser.add_argument("--json", help="write the result here instead of stdout")
    parser.add_argument("--sandbox", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sandbox is not None:
        sandbox_main(args.sandbox, args.validate)
    elif args.worker is not None:
        worker_main(*args.worker)
    else:
        write_json(args.json, measure(args.events, args.validate, args.batch_size))


if __name__ == "__main__":
    main()
