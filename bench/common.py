"""Shared by every benchmark: paths, signed samples, statistics, machine facts. Standard library only.

Nothing here imports the bridge, boto3 or a third-party package, so the floor scripts and the
measured processes pay only for what they measure. Facts from template.yaml are read in a helper
subprocess (samtranslator's YAML loader is heavy and would inflate the measured process's memory).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
BENCH: Final = ROOT / "bench"
SAMPLES: Final = ROOT / "events" / "dodo"
LAYER: Final = ROOT / "layers" / "dodo_cio"
INGEST_DIR: Final = ROOT / "functions" / "ingest"
RETRY_DIR: Final = ROOT / "functions" / "retry"
VENV_PYTHON: Final = ROOT / ".venv" / "bin" / "python"

# The bench's own credentials: nothing real, only the stubs and fakes accept them.
WEBHOOK_SECRET_BYTES: Final = b"bench-webhook-secret-0123456789abcdef"
WEBHOOK_SECRET: Final = "whsec_" + base64.b64encode(WEBHOOK_SECRET_BYTES).decode()
SITE_ID: Final = "bench-site"
API_KEY: Final = "bench-api-key"
SSM_PATH: Final = "/dodo-customerio"
STATE_TABLE: Final = "bench-state"
RETRY_QUEUE_URL: Final = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-retry"
SECRET_VALUES: Final = {
    f"{SSM_PATH}/webhook-secret": WEBHOOK_SECRET,
    f"{SSM_PATH}/customerio-site-id": SITE_ID,
    f"{SSM_PATH}/customerio-api-key": API_KEY,
}
# Envelope timestamps start here and grow by one second per webhook, so every freshness check
# admits its identify (the happy path: one TransactWriteItems with the idempotency record, then the
# completed record: 2 DynamoDB round trips per webhook).
BASE_EVENT_TIME: Final = 1_790_000_000


# --- samples -------------------------------------------------------------------------------------


def sample_bodies() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_bytes())) for p in sorted(SAMPLES.glob("*.json"))]


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def apigw_event(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, the shape the ingest handler receives."""
    now = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/dodo",
        "rawPath": "/webhooks/dodo",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "content-length": str(len(body)),
            "host": "bench.execute-api.us-east-1.amazonaws.com",
            "user-agent": "Svix-Webhooks/1.0",
            **headers,
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "POST", "path": "/webhooks/dodo", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": f"req-{now}",
            "routeKey": "POST /webhooks/dodo",
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def signed_events(n: int, *, prefix: str = "msg_bench_", start: int = 0) -> list[dict[str, Any]]:
    """`n` signed webhooks cycling through events/dodo, each with its own webhook id and event time."""
    samples = sample_bodies()
    now = int(time.time())
    events = []
    for i in range(start, start + n):
        _, doc = samples[i % len(samples)]
        doc = dict(doc, timestamp=iso(BASE_EVENT_TIME + i))
        body = json.dumps(doc, separators=(",", ":")).encode()
        webhook_id = f"{prefix}{i:07d}"
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(WEBHOOK_SECRET_BYTES, webhook_id, now, body),
        }
        events.append(apigw_event(body, headers))
    return events


# --- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an unsorted sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def spread(values: Iterable[float]) -> dict[str, float]:
    vals = list(values)
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def peak_rss_mb() -> float:
    """ru_maxrss of this process (kilobytes on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- facts about the machine and the template -----------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "uname": " ".join((*platform.uname()[:3], platform.uname().machine)),
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
    }


_TEMPLATE_PROBE = """
import json
from samtranslator.yaml_helper import yaml_parse
from dodo_cio_local.local_run import DEFAULT_TEMPLATE, read_template
t = read_template()
doc = yaml_parse(DEFAULT_TEMPLATE.read_text())
params = doc["Parameters"]
print(json.dumps({
    "ingest_env": t.environment,
    "retry_env": t.retry_environment,
    "ingest_memory_mb": t.memory_mb,
    "retry_memory_mb": t.retry_memory_mb,
    "ingest_timeout_s": t.timeout_seconds,
    "retry_timeout_s": t.retry_timeout_seconds,
    "retry_batch_size": t.retry_batch_size,
    "retry_max_concurrency": int(params["RetryMaxConcurrency"]["Default"]),
    "customerio_rps": float(params["CustomerioRequestsPerSecond"]["Default"]),
    "retry_queue": {"name": t.retry_queue.name, "attributes": t.retry_queue.attributes},
    "dead_letter_queue": {"name": t.dead_letter_queue.name, "attributes": t.dead_letter_queue.attributes},
    "max_receive_count": t.max_receive_count,
    "state_table": t.state_table,
    "architecture": doc["Globals"]["Function"]["Architectures"][0],
    "runtime": doc["Globals"]["Function"]["Runtime"],
}))
"""


@cache
def template_info() -> dict[str, Any]:
    """What the benchmarks take from template.yaml (read by the local run's own reader)."""
    out = subprocess.run(
        [sys.executable, "-c", _TEMPLATE_PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    info: dict[str, Any] = json.loads(out)
    return info


def ingest_environment(track_url: str) -> dict[str, str]:
    """The ingest function's environment from the template, pointed at the bench's stubs."""
    env = dict(template_info()["ingest_env"])
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_LAMBDA_FUNCTION_NAME": "bench-ingest",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(template_info()["ingest_memory_mb"]),
            "SSM_PARAMETER_PATH": SSM_PATH,
            "CUSTOMERIO_TRACK_URL": track_url,
            "RETRY_QUEUE_URL": RETRY_QUEUE_URL,
            "STATE_TABLE_NAME": STATE_TABLE,
        }
    )
    return env


def pythonpath(*dirs: Path) -> str:
    return os.pathsep.join(str(d) for d in dirs)


def write_json(path: str | None, doc: Any) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


# --- the warm-ingest driver (shared by the bridge and the floor) ----------------------------------


class BenchContext:
    """The attributes Powertools reads from a LambdaContext."""

    function_name = "bench-ingest"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-ingest"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/bench-ingest"
    log_stream_name = "bench"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 12_000


def silence_stdout(capture: str | None = None) -> Any:
    """Point fd 1 at /dev/null, or at the file `capture` to count the bytes written (handler logs
    and EMF metrics are written, then discarded, as a log shipper would take them), and return a
    writable handle on the original stdout for results."""
    original = os.fdopen(os.dup(1), "w")
    sink = os.open(capture or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(sink, 1)
    os.close(sink)
    return original


def drive(handler: Any, events: Sequence[dict[str, Any]], warmup: int, *, expect_status: int = 200) -> dict[str, Any]:
    """Invoke `handler(event, context)` for every event; time each call after the first `warmup`.

    Wall time is what Dodo waits for; CPU time (this thread's) is what the code itself costs and is
    less disturbed by other load on the machine, so both are reported.
    """
    walls: list[float] = []
    cpus: list[float] = []
    statuses: dict[str, int] = {}
    contexts = [BenchContext(f"req-{i:07d}") for i in range(len(events))]
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i, (event, context) in enumerate(zip(events, contexts, strict=True)):
        cpu_start = cpu_clock()
        start = clock()
        response = handler(event, context)
        elapsed = clock() - start
        cpu = cpu_clock() - cpu_start
        key = f"{response['statusCode']} {json.loads(response['body']).get('status', '')}".strip()
        statuses[key] = statuses.get(key, 0) + 1
        if i >= warmup:
            walls.append(elapsed / 1e6)
            cpus.append(cpu / 1e6)
    bad = {k: v for k, v in statuses.items() if not k.startswith(str(expect_status))}
    if bad:
        raise RuntimeError(f"unexpected answers: {bad}")
    return {
        "n": len(walls),
        "warmup": warmup,
        "p50_ms": percentile(walls, 50),
        "p90_ms": percentile(walls, 90),
        "p99_ms": percentile(walls, 99),
        "max_ms": max(walls),
        "mean_ms": statistics.fmean(walls),
        "cpu_p50_ms": percentile(cpus, 50),
        "cpu_p99_ms": percentile(cpus, 99),
        "cpu_mean_ms": statistics.fmean(cpus),
        "statuses": statuses,
        "peak_rss_mb": peak_rss_mb(),
    }


def ingest_main(run: Any, description: str) -> None:
    """The command line both warm-ingest scripts share (the bridge and its floor): same options, same stub."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=2000, help="timed webhooks")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--track-url", help="a running stub (default: start one)")
    parser.add_argument("--json", help="write the result here instead of stdout")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(prefix="bench-stdout-") as log:
        real_stdout = silence_stdout(log.name)
        if args.track_url:
            result = run(args.track_url, args.n, args.warmup)
        else:
            import stub_http

            with stub_http.start() as url:
                result = run(url, args.n, args.warmup)
        sys.stdout.flush()
        result["stdout_bytes_per_webhook"] = os.path.getsize(log.name) / (args.n + args.warmup)
        sys.stdout = real_stdout
    write_json(args.json, result)
