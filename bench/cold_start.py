"""Cold start: a fresh interpreter imports a handler module and serves its first event, vs `import boto3`.

Each run is a new process (`cold_child.py`), timed from spawn to its exit right after the first
answer (`os._exit`, no teardown), less the bench's own harness (`harness_ms`: the fake Lambda
context), median and spread over `--runs` runs, interleaved so machine load falls on every
subject alike. The code is laid out as `sam build` ships it: the layer (dodo_cio plus its
requirements and their dependencies) and the function, each compiled to unchecked-hash bytecode
by their Makefiles, run with -B (Lambda's /opt and /var/task are read-only); the standard library
and boto3 keep their .pyc as the Lambda runtime image ships them. Subjects:

  floor                    `import boto3` alone (what any Python Lambda that talks to AWS pays)
  ingest                   functions/ingest/app.py + one signed webhook, Customer.io stub, fake AWS
  retry                    functions/retry/app.py + one SQS batch of 10 parked messages (2 ops each)
  ingest, real clients     as ingest, but AWS is reached through real botocore clients (creation,
                           signing, parsing) pointed at the loopback stub with AWS_ENDPOINT_URL

Also `python -X importtime` of the ingest cold path, aggregated over 3 runs: which imports to defer.

    .venv/bin/python bench/cold_start.py [--runs 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    INGEST_DIR,
    LAYER,
    RETRY_DIR,
    SECRET_VALUES,
    TOOLS,
    ingest_environment,
    parked_body,
    sample_ops,
    signed_events,
    spread,
    template_info,
    write_json,
)

SUBJECTS = {
    "floor": "floor: import boto3",
    "ingest": "ingest: import + first webhook",
    "retry": "retry: import + first batch of 10",
    "ingest_endpoint": "ingest, real botocore clients",
}
VARIANT = "lambda_precompiled"
VARIANT_LABEL = "as `sam build` ships it (layer and function precompiled)"
# Shipped by the Lambda Python runtime, so never part of the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath-runtime"})
# Modules whose cumulative import time tells what a change would save.
WATCH = (
    "app",
    "customize",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.utilities.parameters",
    "boto3",
    "dodo_cio.mapping.mapper",
    "dodo_cio.receiving.models",
    "dodo_cio.ingest.service",
    "dodo_cio.delivery.track",
)
_STARTUP = ("site", "__editable__")  # interpreter start-up (the venv's .pth files), not there in Lambda
_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)")


def _closure(roots: list[str]) -> list[str]:
    """The distributions `roots` need, less what the runtime provides."""
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist.metadata["Name"]
        todo += [m.group(0) for r in dist.requires or [] if "extra ==" not in r and (m := re.match(r"[\w.-]+", r))]
    return sorted(seen.values())


def layer_requirements() -> list[str]:
    lines = (LAYER / "requirements.txt").read_text().splitlines()
    return [m.group(0) for ln in lines if not ln.startswith("#") and (m := re.match(r"[\w.-]+", ln.strip()))]


def build_lambda_tree(dest: Path, function_dir: Path) -> tuple[Path, Path]:
    """(function dir, layer dir) as `sam build` produces them with the Makefiles: precompiled."""
    layer, task = dest / "opt-python", dest / "var-task"
    no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LAYER / "dodo_cio", layer / "dodo_cio", ignore=no_bytecode)
    for dist_name in _closure(layer_requirements()):
        dist = importlib.metadata.distribution(dist_name)
        for file in dist.files or []:
            if file.parts[0] != ".." and "__pycache__" not in file.parts and file.suffix != ".pyc":
                target = layer / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(str(dist.locate_file(file))), target)
    shutil.copytree(function_dir, task, ignore=no_bytecode)
    compile_all = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*compile_all, str(task), str(layer)], check=True)
    return task, layer


def retry_event(n: int = 10) -> dict[str, Any]:
    """One Lambda SQS event of `n` parked deliveries, each with the 2 ops the bridge would park."""
    from dodo_cio_local.event_source import lambda_record

    doc = json.loads((BENCH.parent / "events" / "dodo" / "payment.succeeded.json").read_bytes())
    now = int(time.time())
    records = []
    for i in range(n):
        envelope, ops = sample_ops(doc)
        customer = {"id": f"cus_cold_{i:04d}"}
        body = parked_body(f"msg_cold_{i:04d}", envelope, [{**op, "identifiers": customer} for op in ops], now)
        message = {
            "MessageId": f"00000000-0000-0000-0000-{i:012d}",
            "ReceiptHandle": f"receipt-{i}",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(now * 1000)},
            "MessageAttributes": {
                "event_type": {"DataType": "String", "StringValue": envelope.type},
                "error_kind": {"DataType": "String", "StringValue": "transient"},
            },
        }
        records.append(lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:bench-retry"))
    return {"Records": records}


class Runner:
    def __init__(self, workdir: Path, stub_url: str) -> None:
        self.workdir = workdir
        self.stub_url = stub_url
        self.events = {"ingest": workdir / "ingest-event.json", "retry": workdir / "retry-event.json"}
        self.events["retry"].write_text(json.dumps(retry_event()))
        info = template_info()
        ingest_env = ingest_environment(stub_url)
        self.env_of = {
            "ingest": {**ingest_env, "BENCH_COLD_TIMEOUT_S": str(info["ingest_timeout_s"])},
            "retry": {
                **ingest_env,
                **info["retry_env"],
                "CUSTOMERIO_TRACK_URL": stub_url,
                "DEAD_LETTER_QUEUE_URL": ingest_env["RETRY_QUEUE_URL"] + "-dlq",
                "AWS_LAMBDA_FUNCTION_NAME": "bench-retry",
                "BENCH_COLD_TIMEOUT_S": str(info["retry_timeout_s"]),
            },
        }
        functions = {"ingest": INGEST_DIR, "retry": RETRY_DIR}
        self.trees = {kind: build_lambda_tree(workdir / kind, fn) for kind, fn in functions.items()}

    def run(self, subject: str, *, importtime: bool = False) -> dict[str, Any]:
        kind = "retry" if subject == "retry" else "ingest"
        if kind == "ingest":  # signed now: the signature must be within 5 minutes of the run
            event = signed_events(1, prefix=f"msg_cold_{time.monotonic_ns()}_")[0]
            self.events["ingest"].write_text(json.dumps(event))
        out = self.workdir / "result.json"
        out.unlink(missing_ok=True)
        paths = [BENCH] if subject == "floor" else [*self.trees[kind], BENCH, TOOLS]
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(map(str, paths)),
            "BENCH_COLD_SUBJECT": "floor" if subject == "floor" else kind,
            "BENCH_COLD_OUT": str(out),
            "BENCH_COLD_SECRETS": json.dumps(SECRET_VALUES),
            "BENCH_COLD_AWS": "endpoint" if subject == "ingest_endpoint" else "fake",
            "BENCH_COLD_EVENT": str(self.events[kind]),
            **self.env_of[kind],
            **({"AWS_ENDPOINT_URL": self.stub_url} if subject == "ingest_endpoint" else {}),
        }
        flags = ["-B", *(["-X", "importtime"] if importtime else [])]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        command = [sys.executable, *flags, "-c", "import cold_child; cold_child.main()"]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=self.workdir)
        total = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{subject} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        cpu = (after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime) * 1000
        result["total_ms"] = total - result["harness_ms"]
        result["cpu_ms"] = cpu - result["harness_ms"]
        if importtime:
            result["importtime"] = proc.stderr
        return result


def importtime_summary(runs: list[str], top: int = 12) -> dict[str, Any]:
    """Median over runs of: package entries by cumulative time, and the watched modules' cumulative time.

    An entry is the first module of a package imported from another package (or the top level);
    `-X importtime` prints children before their parent, so a row's importer is the next row less deep.
    """
    entries: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    watched: defaultdict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    for text in runs:
        rows = [(int(s), int(c), len(d) // 2, m) for s, c, d, m in _IMPORT_LINE.findall(text)]
        totals.append(sum(row[0] for row in rows) / 1000)
        for i, (_, cumulative, depth, module) in enumerate(rows):
            importer = next((r[3] for r in rows[i + 1 :] if r[2] < depth), "(top level)")
            if module in WATCH:
                watched[module].append(cumulative / 1000)
            startup = module.startswith(_STARTUP) or importer.startswith(_STARTUP)
            if not startup and module.split(".")[0] != importer.split(".")[0]:
                entries[(module, importer)].append(cumulative / 1000)

    def median(values: list[float]) -> float:
        return statistics.median(values + [0.0] * (len(runs) - len(values)))

    ranked = sorted(((median(v), k) for k, v in entries.items()), reverse=True)[:top]
    return {
        "total_import_ms": statistics.median(totals),
        "entries": [{"module": m, "imported_by": by, "cumulative_ms": ms} for ms, (m, by) in ranked],
        "watched": {name: median(watched[name]) for name in WATCH if name in watched},
    }


def measure(runs: int, stub_url: str, importtime_runs: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        runner = Runner(Path(tmp), stub_url)
        samples: dict[str, list[dict[str, Any]]] = {s: [] for s in SUBJECTS}
        for _ in range(runs):
            for subject in SUBJECTS:
                samples[subject].append(runner.run(subject))
        importtime = importtime_summary(
            [runner.run("ingest", importtime=True)["importtime"] for _ in range(importtime_runs)]
        )
    floor = statistics.median(r["total_ms"] for r in samples["floor"])
    floor_cpu = statistics.median(r["cpu_ms"] for r in samples["floor"])
    results: dict[str, Any] = {}
    for subject, rs in samples.items():
        entry: dict[str, Any] = {
            key: spread(r[key] for r in rs) for key in ("total_ms", "cpu_ms", "import_ms", "peak_rss_mb")
        }
        if subject != "floor":
            entry["first_event_ms"] = spread(r["first_event_ms"] for r in rs)
            entry["harness_ms"] = spread(r["harness_ms"] for r in rs)
            entry["status"] = sorted({r["status"] for r in rs})
        entry["ratio_to_floor"] = entry["total_ms"]["median"] / floor
        entry["cpu_ratio_to_floor"] = entry["cpu_ms"]["median"] / floor_cpu
        results[subject] = entry
    return {
        "runs": runs,
        "results": {VARIANT: results},
        "importtime": {VARIANT: importtime},
        "subjects": SUBJECTS,
        "variants": {VARIANT: VARIANT_LABEL},
        "layer_packages": _closure(layer_requirements()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", help="write the result here instead of stdout")
    args = parser.parse_args()
    import stub_http

    with stub_http.start() as url:
        write_json(args.json, measure(args.runs, url))


if __name__ == "__main__":
    main()
