"""Peak RSS of each handler process, against the MemorySize template.yaml gives the functions.

The figures come from the other benchmarks (each reads `resource.getrusage(RUSAGE_SELF).ru_maxrss`
in the process that ran the handler):
  ingest, cold     the cold-start child after its first webhook (Lambda as built; fake AWS, and real
                   botocore clients), i.e. what a fresh container holds;
  ingest, warm     the warm-ingest process after 2,000+ webhooks (growth = a leak or a cache);
  retry, cold      the cold-start child after its first batch of 10;
  retry, drained   each drain worker after its share of the 10,000-event backlog (~100 invocations);
  floor            `import boto3` alone.
Lambda's "Max Memory Used" also counts the runtime interface client that imports the handler
(the same process), a few MB more than measured here.

    .venv/bin/python bench/memory.py --from bench/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

FULL_VCPU_MB = 1769


def assess(results: dict[str, Any]) -> dict[str, Any]:
    info = results["template"]
    cold = results["cold_start"]["results"]["lambda"]
    rows = [
        ("floor: import boto3", cold["floor"]["peak_rss_mb"]["median"], None),
        ("ingest, cold (fake AWS)", cold["ingest"]["peak_rss_mb"]["median"], info["ingest_memory_mb"]),
        ("ingest, cold (real botocore clients)", cold["ingest_endpoint"]["peak_rss_mb"]["median"], None),
        (
            "ingest, warm after 2,000+ webhooks",
            results["warm_ingest"]["bridge"]["peak_rss_mb"]["max"],
            info["ingest_memory_mb"],
        ),
        ("retry, cold (first batch of 10)", cold["retry"]["peak_rss_mb"]["median"], info["retry_memory_mb"]),
    ]
    if results.get("drain"):
        rows.append(
            (
                f"retry, after draining {results['drain']['events'] // 2:,} events (real clients)",
                results["drain"]["worker_peak_rss_mb"],
                info["retry_memory_mb"],
            )
        )
    table = [
        {
            "process": name,
            "peak_rss_mb": rss,
            "memory_size_mb": size,
            "headroom": (size / rss) if size else None,
        }
        for name, rss, size in rows
    ]
    peak = max(r["peak_rss_mb"] for r in table)
    memory = int(info["ingest_memory_mb"])
    return {
        "rows": table,
        "peak_rss_mb": peak,
        "ingest_memory_mb": memory,
        "retry_memory_mb": int(info["retry_memory_mb"]),
        "cpu_share": min(1.0, memory / FULL_VCPU_MB),
        "supported": peak * 1.5 <= memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args()
    print(json.dumps(assess(json.loads(Path(args.source).read_text())), indent=2))


if __name__ == "__main__":
    main()
