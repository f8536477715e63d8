"""AWS list-price cost per million webhooks, from the measured figures of a `make bench` run.

Prices: us-east-1, on-demand list prices, first pricing tier. Written 2026-11 from the public
pricing pages (aws.amazon.com/{api-gateway,lambda,sqs,dynamodb,cloudwatch,xray,kms}/pricing/) and
checked against third-party summaries found the same month; AWS changes prices, so check them
before relying on a figure here. Free tiers are ignored (they are per account, not per webhook).

Two durations per webhook are priced:
  measured   the ingest handler's own time on the bench machine (full core, loopback stubs, fake AWS):
             a lower bound;
  projected  what Lambda at the template's MemorySize would bill: the measured CPU time, plus one
             real botocore call per DynamoDB request (measured separately, the fake leaves it out),
             stretched by the CPU share Lambda gives that memory (1,769 MB = 1 vCPU, linear below),
             plus network waits that cannot be measured here (ASSUMPTIONS below, override them with
             the flags). Graviton (arm64) per-core speed is taken as equal to the bench machine's.

    .venv/bin/python bench/cost.py --from bench/results.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

PRICES: dict[str, tuple[float, str]] = {
    "http_api_request": (1.00e-6, "API Gateway HTTP API: $1.00 per million requests (first 300M/month)"),
    "lambda_request": (0.20e-6, "Lambda: $0.20 per million requests"),
    "lambda_arm64_gb_s": (0.0000133334, "Lambda arm64: $0.0000133334 per GB-second (first 7.5B GB-s/month)"),
    "sqs_request": (0.40e-6, "SQS standard: $0.40 per million requests (each 64 KB chunk is a request)"),
    "dynamodb_wru": (0.625e-6, "DynamoDB on-demand: $0.625 per million write request units (since Nov 2024)"),
    "dynamodb_rru": (0.125e-6, "DynamoDB on-demand: $0.125 per million read request units"),
    "logs_ingest_gb": (0.50, "CloudWatch Logs ingestion: $0.50 per GB (Lambda logs, first 10 TB tier)"),
    "xray_trace": (5.00e-6, "X-Ray: $5.00 per million traces recorded"),
}
PRICES_DATE = "2026-11"

# What the bench cannot measure; stated so the projection can be argued with.
ASSUMPTIONS: dict[str, tuple[float, str]] = {
    "customerio_ms_p50": (30.0, "Customer.io Track API answer from us-east-1, kept-alive TLS, p50 (ms)"),
    "customerio_ms_p99": (150.0, "the same, p99 (ms)"),
    "dynamodb_ms_p50": (5.0, "one DynamoDB round trip in-region (a write or a transaction), p50 (ms)"),
    "dynamodb_ms_p99": (15.0, "the same, p99 (ms)"),
    "cold_start_share": (0.01, "share of invocations that are cold starts (AWS: 'under 1%' in production)"),
    "xray_sampled_share": (
        1.0,
        "share of webhooks X-Ray records with TracingMode=Active (default rule: 1/s + 5%; ~all below ~1/s)",
    ),
}
FULL_VCPU_MB = 1769


def cpu_share(memory_mb: int) -> float:
    return min(1.0, memory_mb / FULL_VCPU_MB)


def lambda_duration_cost(ms: float, memory_mb: int) -> float:
    return math.ceil(ms) / 1000 * memory_mb / 1024 * PRICES["lambda_arm64_gb_s"][0]


def compute(results: dict[str, Any], assumptions: dict[str, float] | None = None) -> dict[str, Any]:
    a = {k: v for k, (v, _) in ASSUMPTIONS.items()} | (assumptions or {})
    p = {k: v for k, (v, _) in PRICES.items()}
    info = results["template"]
    memory = int(info["ingest_memory_mb"])
    warm = results["warm_ingest"]["bridge"]
    botocore_cpu = results["breakdown"]["botocore_update_item"]["cpu_p50_ms"]
    share = cpu_share(memory)
    # Measured by the fake AWS in the warm-ingest run over the bench's mix of webhooks.
    calls = warm["aws_calls_per_webhook"]
    round_trips = sum(v for k, v in calls.items() if k.startswith("dynamodb."))
    write_units = float(warm["dynamodb_write_units_per_webhook"])
    aws_cpu = round_trips * botocore_cpu
    durations = {
        "measured_p50": warm["p50_ms"]["median"],
        "measured_p99": warm["p99_ms"]["median"],
        "projected_p50": (warm["cpu_p50_ms"]["median"] + aws_cpu) / share
        + a["customerio_ms_p50"]
        + round_trips * a["dynamodb_ms_p50"],
        "projected_p99": (warm["cpu_p99_ms"]["median"] + aws_cpu) / share
        + a["customerio_ms_p99"]
        + round_trips * a["dynamodb_ms_p99"],
    }
    cold = results["cold_start"]["results"]["lambda_precompiled"]["ingest_endpoint"]["total_ms"]["median"]
    log_bytes = warm["stdout_bytes_per_webhook"]["median"]

    def per_million(duration_ms: float) -> list[dict[str, Any]]:
        rows = [
            ("API Gateway HTTP API", "1 request", p["http_api_request"]),
            ("Lambda requests", "1 invocation", p["lambda_request"]),
            (
                f"Lambda duration ({memory} MB arm64)",
                f"{math.ceil(duration_ms)} ms billed",
                lambda_duration_cost(duration_ms, memory),
            ),
            (
                "Lambda INIT (billed since Aug 2025)",
                f"{a['cold_start_share']:.0%} x {cold:.0f} ms",
                a["cold_start_share"] * lambda_duration_cost(cold, memory),
            ),
            (
                "DynamoDB writes",
                f"{write_units:.2f} WRU (items < 1 KB; transactional items count twice)",
                write_units * p["dynamodb_wru"],
            ),
            ("CloudWatch Logs", f"{log_bytes:.0f} bytes (log line + EMF)", log_bytes / 1e9 * p["logs_ingest_gb"]),
            (
                "X-Ray (only with TracingMode=Active)",
                f"{a['xray_sampled_share']:.0%} of webhooks",
                a["xray_sampled_share"] * p["xray_trace"],
            ),
        ]
        return [{"item": i, "quantity": q, "usd_per_million": c * 1e6} for i, q, c in rows]

    tables = {key: per_million(ms) for key, ms in durations.items()}
    # The template's TracingMode: Active records a trace per sampled webhook, PassThrough none.
    totals = {key: sum(r["usd_per_million"] for r in rows) for key, rows in tables.items()}
    untraced = {key: totals[key] - rows[-1]["usd_per_million"] for key, rows in tables.items()}

    parked = None
    drain = results.get("drain")
    if drain:
        events = drain["events"]
        calls = drain["calls_all_workers"]
        handler_s = drain["spent_s_all_workers"].get("handler total", 0.0)
        sqs_requests = (
            events  # SendMessage when parked (bodies are far below 64 KB)
            + calls.get("poller ReceiveMessage", 0)
            + calls.get("poller DeleteMessageBatch", 0)
        ) / events
        invocations = calls.get("handler total", 0) / events
        retry_memory = int(info["retry_memory_mb"])
        retry_ms = handler_s * 1000 / events
        parked = {
            "sqs_requests_per_event": sqs_requests,
            "invocations_per_event": invocations,
            "handler_ms_per_event": retry_ms,
            "rows": [
                {
                    "item": "SQS requests",
                    "quantity": f"{sqs_requests:.2f}",
                    "usd_per_million": sqs_requests * p["sqs_request"] * 1e6,
                },
                {
                    "item": "Lambda requests (retry)",
                    "quantity": f"{invocations:.3f}",
                    "usd_per_million": invocations * p["lambda_request"] * 1e6,
                },
                {
                    "item": f"Lambda duration (retry, {retry_memory} MB, measured)",
                    "quantity": f"{retry_ms:.2f} ms",
                    "usd_per_million": retry_ms / 1000 * retry_memory / 1024 * p["lambda_arm64_gb_s"] * 1e6,
                },
                {
                    # The identify's piece of state on its customer's record, in the batch's transaction.
                    "item": "DynamoDB state record (transactional)",
                    "quantity": "2 WRU",
                    "usd_per_million": 2 * p["dynamodb_wru"] * 1e6,
                },
            ],
        }
        parked["total"] = sum(r["usd_per_million"] for r in parked["rows"])
    return {
        "memory_mb": memory,
        "cpu_share": share,
        "botocore_cpu_ms_per_call": botocore_cpu,
        "dynamodb_round_trips": round_trips,
        "dynamodb_write_units": write_units,
        "durations_ms": durations,
        "tables": tables,
        "totals": totals,
        "totals_without_tracing": untraced,
        "tracing_mode_default": info.get("tracing_mode", "Active"),
        "parked_extra": parked,
        "prices": {k: d for k, (_, d) in PRICES.items()},
        "prices_date": PRICES_DATE,
        "assumptions": {k: {"value": a[k], "meaning": d} for k, (_, d) in ASSUMPTIONS.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(Path(__file__).with_name("results.json")))
    for key, (value, meaning) in ASSUMPTIONS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, default=value, help=meaning)
    args = parser.parse_args()
    results = json.loads(Path(args.source).read_text())
    out = compute(results, {k: getattr(args, k) for k in ASSUMPTIONS})
    for key, rows in out["tables"].items():
        print(f"\n{key}: {out['durations_ms'][key]:.1f} ms per webhook")
        for row in rows:
            print(f"  {row['item']:40s} {row['quantity']:32s} ${row['usd_per_million']:8.3f}")
        print(f"  {'total, TracingMode=Active':73s} ${out['totals'][key]:8.3f} per million webhooks")
        print(
            f"  {'total, TracingMode=PassThrough':73s} ${out['totals_without_tracing'][key]:8.3f} per million webhooks"
        )


if __name__ == "__main__":
    main()
