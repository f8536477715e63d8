"""Shared by the benchmarks: paths, the signed webhooks both warm sides serve, statistics, machine facts.

Nothing here imports the bridge at import time, so the floor and the measured processes pay only
for what they measure. The webhooks are built by the tools' API Gateway builder
(`dodo_cio_cli.apigw`, which signs with the bridge's signature module) once, by the orchestrator,
into a file both sides read; the Lambda context is the tools' `FakeLambdaContext`. Facts from
template.yaml are read in a helper subprocess (its YAML loader is heavy and would inflate the
measured process's memory).
"""

from __future__ import annotations

import base64
import datetime as dt
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
TOOLS: Final = ROOT / "tools"
SAMPLES: Final = ROOT / "events" / "dodo"
LAYER: Final = ROOT / "layers" / "dodo_cio"
INGEST_DIR: Final = ROOT / "functions" / "ingest"
RETRY_DIR: Final = ROOT / "functions" / "retry"

# The bench's own credentials: nothing real, only the stubs and fakes accept them.
WEBHOOK_SECRET: Final = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789abcdef").decode()
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
# The ingest function's Timeout: given to the context so it never reads template.yaml while timed.
INGEST_TIMEOUT_S: Final = 12


def sample_bodies() -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("*.json"))]


def _tools_and_layer() -> None:
    """Let this process import the tools and the bridge's modules (only the orchestrating side does)."""
    for path in (str(LAYER), str(TOOLS)):
        if path not in sys.path:
            sys.path.insert(0, path)


def signed_events(n: int, *, prefix: str = "msg_bench_", later_by: int = 0) -> list[dict[str, Any]]:
    """`n` signed API Gateway events cycling through events/dodo, each with its own id and event time
    (`later_by` seconds after the default times: newer than any webhook sent before, the happy path)."""
    _tools_and_layer()
    from dodo_cio_cli.apigw import signed_webhook_event

    samples = sample_bodies()
    events = []
    for i in range(n):
        stamp = dt.datetime.fromtimestamp(BASE_EVENT_TIME + later_by + i, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc = dict(samples[i % len(samples)], timestamp=stamp)
        # Each payment and refund its own id, as in real traffic: the same id again is a payment the
        # commercial summary has already counted (dodo_cio.state.summary), which is not the common case.
        data = dict(doc["data"])
        for key in ("payment_id", "refund_id"):
            if doc["type"].startswith(key.removesuffix("_id")) and isinstance(data.get(key), str):
                data[key] = f"{data[key]}_{prefix}{i}"
        body = json.dumps(dict(doc, data=data), separators=(",", ":")).encode()
        events.append(signed_webhook_event(body, WEBHOOK_SECRET, webhook_id=f"{prefix}{i:07d}"))
    return events


def write_events(path: str | Path, n: int) -> None:
    """Sign `n` webhooks into `path`: both warm sides then serve the very same requests."""
    Path(path).write_text(json.dumps(signed_events(n)))


def sample_ops(doc: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """(envelope, ops) of one sample body as the bridge maps and fits it: what a parked message holds."""
    _tools_and_layer()
    from dodo_cio.mapping.limits import fit_op
    from dodo_cio.mapping.mapper import MappingConfig, map_event
    from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_payload

    envelope = parse_envelope(doc)
    event = DodoEvent("msg_sample", envelope, parse_payload(envelope))
    return envelope, [fit_op(op).op for op in map_event(event, MappingConfig())]


def parked_body(webhook_id: str, envelope: Any, ops: list[dict[str, Any]], now: int) -> str:
    """A ParkedDelivery message body: `ops` failed with a 503 a minute before `now`."""
    from dodo_cio.delivery.parking import LastError, ParkedDelivery

    return ParkedDelivery(
        webhook_id=webhook_id,
        event_type=envelope.type,
        event_time=envelope.timestamp,
        first_seen=now - 60,
        attempts=1,
        ops=ops,
        last_error=LastError("transient", "HTTP 503: Service Unavailable", 503, now - 60),
        customer_id=ops[0]["identifiers"]["id"],
    ).to_json()


def lambda_contexts(n: int, function_name: str = "bench-ingest") -> list[Any]:
    """One context per invocation, built before anything is timed (the tools' shared fake)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    from dodo_cio_local.lambda_context import FakeLambdaContext

    return [
        FakeLambdaContext(function_name, timeout_seconds=INGEST_TIMEOUT_S, request_id=f"req-{i:07d}") for i in range(n)
    ]


# --- statistics and facts -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an unsorted sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def spread(values: Iterable[float]) -> dict[str, float]:
    vals = list(values)
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def peak_rss_mb() -> float:
    """ru_maxrss of this process (kilobytes on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        commit += " (uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    uname = platform.uname()
    return {
        "uname": f"{uname.system} {uname.node} {uname.release} {uname.machine}",
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
    }


_TEMPLATE_PROBE = """
import json
from samtranslator.yaml_helper import yaml_parse
from dodo_cio_local.local_template import DEFAULT_TEMPLATE, read_template
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
    "tracing_mode": params["TracingMode"]["Default"],
    "retry_queue": {"name": t.retry_queue.name, "attributes": t.retry_queue.attributes},
    "dead_letter_queue": {"name": t.dead_letter_queue.name, "attributes": t.dead_letter_queue.attributes},
    "max_receive_count": t.max_receive_count,
    "state_table": t.state_table,
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
    return {
        **template_info()["ingest_env"],
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
        # What a webhook costs, not how fast Customer.io may be called: one container with all of a budget
        # no burst reaches (with the template's, 2,000 webhooks in a second spent it and were parked).
        "INGEST_MAX_CONCURRENCY": "1",
        "CUSTOMERIO_RATE_LIMIT_RPS": "1000000",
    }


def write_json(path: str | None, doc: Any) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


def silence_stdout(capture: str | None = None) -> Any:
    """Point fd 1 at /dev/null, or at the file `capture` to count the bytes written (handler logs
    and EMF metrics are written, then discarded, as a log shipper would take them), and return a
    writable handle on the original stdout for results."""
    original = os.fdopen(os.dup(1), "w")
    sink = os.open(capture or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(sink, 1)
    os.close(sink)
    return original


# --- the warm-ingest driver (shared by the bridge and the floor) ----------------------------------


def drive(handler: Any, events: Sequence[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Invoke `handler(event, context)` for every event; time each call after the first `warmup`.

    Wall time is what Dodo waits for; CPU time (this thread's) is what the code itself costs and is
    less disturbed by other load on the machine, so both are reported.
    """
    walls: list[float] = []
    cpus: list[float] = []
    statuses: dict[str, int] = {}
    contexts = lambda_contexts(len(events))
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
    if any(not key.startswith("200") for key in statuses):
        raise RuntimeError(f"unexpected answers: {statuses}")
    return {
        "n": len(walls),
        "warmup": warmup,
        **{f"p{q}_ms": percentile(walls, q) for q in (50, 90, 99)},
        "mean_ms": statistics.fmean(walls),
        "cpu_p50_ms": percentile(cpus, 50),
        "cpu_p99_ms": percentile(cpus, 99),
        "cpu_mean_ms": statistics.fmean(cpus),
        "statuses": statuses,
        "peak_rss_mb": peak_rss_mb(),
    }
