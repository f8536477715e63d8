"""Cold start: a fresh interpreter imports a handler module and serves its first event, vs `import boto3`.

Each run is a new process (`cold_child.py`), timed from spawn to its exit right after the first
answer (`os._exit`, no teardown), median and spread over `--runs` runs, interleaved so machine
load falls on every subject alike. Subjects:

  floor                    `import boto3` alone (what any Python Lambda that talks to AWS pays)
  ingest                   functions/ingest/app.py + one signed webhook, Customer.io stub, fake AWS
  retry                    functions/retry/app.py + one SQS batch of 10 parked messages (2 ops each)
  ingest, real clients     as ingest, but AWS is reached through real botocore clients (creation,
                           signing, parsing) pointed at the loopback stub with AWS_ENDPOINT_URL

Bytecode variants:

  warm .pyc                everything has its .pyc (a developer machine; a warm Lambda sandbox never
                           re-imports, so this is the best case)
  no .pyc at all           PYTHONPYCACHEPREFIX = a fresh empty dir and -B: every module, stdlib and
                           boto3 included, is compiled (the pessimistic extreme; the floor pays it too)
  Lambda as `sam build`    the layer rebuilt like `sam build` does (dodo_cio + the requirements and
                           their dependencies, sources only) and the function sources, run with -B
                           (Lambda's /opt and /var/task are read-only); stdlib and boto3 keep their
                           .pyc as the Lambda runtime image ships them. This is what deploys today.
  Lambda, precompiled      the same layer and function after `python -m compileall
                           --invalidation-mode unchecked-hash` (what a build step could ship)

Also: `python -X importtime` of the ingest cold path (warm .pyc and Lambda as built), aggregated
over 3 runs, to show which imports to make lazy.

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
    ingest_environment,
    signed_events,
    spread,
    template_info,
    write_json,
)

SUBJECTS = ("floor", "ingest", "retry", "ingest_endpoint")
SUBJECT_LABELS = {
    "floor": "floor: import boto3",
    "ingest": "ingest: import + first webhook",
    "retry": "retry: import + first batch of 10",
    "ingest_endpoint": "ingest, real botocore clients",
}
VARIANTS = ("warm", "nopyc", "lambda", "lambda_precompiled")
# Real clients without any .pyc would add ~10 s a round for a row nobody deploys.
SKIPPED = frozenset({("nopyc", "ingest_endpoint")})
VARIANT_LABELS = {
    "warm": "warm .pyc",
    "nopyc": "no .pyc at all",
    "lambda": "Lambda as `sam build` ships it (layer + function without .pyc)",
    "lambda_precompiled": "Lambda, layer + function precompiled",
}
# Shipped by the Lambda Python runtime, so never part of the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath-runtime"})


# --- the layer as `sam build` builds it -----------------------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = _normalise(todo.pop())
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist.metadata["Name"]
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9_.-]+", requirement)
            if match:
                todo.append(match.group(0))
    return sorted(seen.values())


def layer_requirements() -> list[str]:
    lines = (LAYER / "requirements.txt").read_text().splitlines()
    names = [re.match(r"[A-Za-z0-9_.-]+", ln.strip()) for ln in lines if ln.strip() and not ln.startswith("#")]
    return [m.group(0) for m in names if m]


def build_lambda_tree(dest: Path, function_dir: Path) -> tuple[Path, Path]:
    """(function dir, layer dir) as `sam build` produces them: sources only, no __pycache__."""
    layer = dest / "opt-python"
    task = dest / "var-task"
    no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LAYER / "dodo_cio", layer / "dodo_cio", ignore=no_bytecode)
    for dist_name in _closure(layer_requirements()):
        dist = importlib.metadata.distribution(dist_name)
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            target = layer / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
    shutil.copytree(function_dir, task, ignore=no_bytecode)
    return task, layer


def precompile(*dirs: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", *map(str, dirs)],
        check=True,
    )


# --- events ---------------------------------------------------------------------------------------


def retry_event(n: int = 10) -> dict[str, Any]:
    """One Lambda SQS event of `n` parked deliveries, each with the 2 ops the bridge would park."""
    from dodo_cio.limits import fit_op
    from dodo_cio.mapping import MappingConfig, map_event
    from dodo_cio.models import DodoEvent, parse_envelope, parse_json, parse_payload
    from dodo_cio.parking import LastError, ParkedDelivery
    from dodo_cio_local.event_source import lambda_record

    raw = (BENCH.parent / "events" / "dodo" / "payment.succeeded.json").read_bytes()
    envelope = parse_envelope(parse_json(raw))
    payload = parse_payload(envelope)
    records = []
    now = int(time.time())
    for i in range(n):
        webhook_id = f"msg_cold_{i:04d}"
        ops = [fit_op(op).op for op in map_event(DodoEvent(webhook_id, envelope, payload), MappingConfig())]
        for op in ops:
            op["identifiers"] = {"id": f"cus_cold_{i:04d}"}
        parked = ParkedDelivery(
            webhook_id=webhook_id,
            event_type=envelope.type,
            event_time=envelope.timestamp,
            first_seen=now - 60,
            attempts=1,
            ops=ops,
            last_error=LastError("transient", "HTTP 503: bench", 503, now - 60),
            customer_id=f"cus_cold_{i:04d}",
        )
        message = {
            "MessageId": f"00000000-0000-0000-0000-{i:012d}",
            "ReceiptHandle": f"receipt-{i}",
            "Body": parked.to_json(),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(now * 1000)},
            "MessageAttributes": {
                "event_type": {"DataType": "String", "StringValue": parked.event_type},
                "error_kind": {"DataType": "String", "StringValue": "transient"},
            },
        }
        records.append(lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:bench-retry"))
    return {"Records": records}


# --- one run ----------------------------------------------------------------------------------------


class Runner:
    def __init__(self, workdir: Path, stub_url: str) -> None:
        self.workdir = workdir
        self.stub_url = stub_url
        self.ingest_event = workdir / "ingest-event.json"
        self.retry_event = workdir / "retry-event.json"
        self.retry_event.write_text(json.dumps(retry_event()))
        info = template_info()
        self.ingest_env = ingest_environment(stub_url)
        self.retry_env = {
            **self.ingest_env,
            **info["retry_env"],
            "CUSTOMERIO_TRACK_URL": stub_url,
            "DEAD_LETTER_QUEUE_URL": self.ingest_env["RETRY_QUEUE_URL"] + "-dlq",
            "AWS_LAMBDA_FUNCTION_NAME": "bench-retry",
        }
        self.trees: dict[str, dict[str, tuple[Path, Path]]] = {}
        for variant in ("lambda", "lambda_precompiled"):
            self.trees[variant] = {}
            for subject, fn_dir in (("ingest", INGEST_DIR), ("retry", RETRY_DIR)):
                self.trees[variant][subject] = build_lambda_tree(workdir / variant / subject, fn_dir)
                if variant == "lambda_precompiled":
                    precompile(*self.trees[variant][subject])

    def _paths(self, variant: str, subject: str) -> list[Path]:
        if subject == "floor":
            return [BENCH]
        kind = "retry" if subject == "retry" else "ingest"
        if variant in self.trees:
            task, layer = self.trees[variant][kind]
            return [task, layer, BENCH]
        return [INGEST_DIR if kind == "ingest" else RETRY_DIR, LAYER, BENCH]

    def env(self, variant: str, subject: str, out: Path, cache: Path | None) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(map(str, self._paths(variant, subject))),
            "BENCH_COLD_SUBJECT": "retry" if subject == "retry" else "floor" if subject == "floor" else "ingest",
            "BENCH_COLD_OUT": str(out),
            "BENCH_COLD_SECRETS": json.dumps(SECRET_VALUES),
            "BENCH_COLD_AWS": "endpoint" if subject == "ingest_endpoint" else "fake",
            "BENCH_COLD_EVENT": str(self.retry_event if subject == "retry" else self.ingest_event),
        }
        env.update(self.retry_env if subject == "retry" else self.ingest_env)
        if subject == "ingest_endpoint":
            env["AWS_ENDPOINT_URL"] = self.stub_url
        if cache is not None:
            env["PYTHONPYCACHEPREFIX"] = str(cache)
        return env

    def run(self, variant: str, subject: str, *, importtime: bool = False) -> dict[str, Any]:
        if subject.startswith("ingest"):
            # Signed now: the signature must be within 5 minutes of the run.
            event = signed_events(1, prefix=f"msg_cold_{time.monotonic_ns()}_")[0]
            self.ingest_event.write_text(json.dumps(event))
        out = self.workdir / "result.json"
        out.unlink(missing_ok=True)
        flags = ["-X", "importtime"] if importtime else []
        with tempfile.TemporaryDirectory(dir=self.workdir) as cache:
            if variant != "warm":
                flags.append("-B")
            env = self.env(variant, subject, out, Path(cache) if variant == "nopyc" else None)
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, *flags, "-c", "import cold_child; cold_child.main()"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                cwd=self.workdir,
            )
            total = (time.perf_counter() - start) * 1000
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime) * 1000
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{subject}/{variant} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        result["total_ms"] = total
        result["cpu_ms"] = cpu
        if importtime:
            result["importtime"] = proc.stderr
        return result


# --- importtime ---------------------------------------------------------------------------------------

_LINE = re.compile(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)")


def parse_importtime(text: str) -> list[dict[str, Any]]:
    """Rows of (module, self_us, cumulative_us, importer); `importer` is the module that imported it."""
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            rows.append(
                {
                    "self": int(match.group(1)),
                    "cumulative": int(match.group(2)),
                    "depth": len(match.group(3)) // 2,
                    "module": match.group(4),
                }
            )
    # importtime prints children before their parent: a row's importer is the next row less deep.
    for i, row in enumerate(rows):
        row["importer"] = next((r["module"] for r in rows[i + 1 :] if r["depth"] < row["depth"]), "(top level)")
    return rows


def _top(module: str) -> str:
    return module.split(".", 1)[0]


# Modules whose cumulative import time tells what a change would save.
WATCH = (
    "app",
    "customize",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.batch",
    "boto3",
    "requests",
    "charset_normalizer",
    "idna",
    "jmespath",
    "typing_extensions",
    "dodo_cio.mapping",
    "dodo_cio.models",
    "dodo_cio.ingest",
    "dodo_cio.customerio",
)
# Interpreter start-up (the venv's .pth files), the same for the floor and not there in Lambda.
_STARTUP = ("site", "__editable__")


def importtime_summary(runs: list[str], top: int = 15) -> dict[str, Any]:
    """Median over runs of: package entries by cumulative time, and self time per top-level package."""
    entries: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    packages: defaultdict[str, list[float]] = defaultdict(list)
    watched: defaultdict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    for text in runs:
        rows = parse_importtime(text)
        per_package: defaultdict[str, float] = defaultdict(float)
        for row in rows:
            per_package[_top(row["module"])] += row["self"] / 1000
            if row["module"] in WATCH:
                watched[row["module"]].append(row["cumulative"] / 1000)
            if row["module"].startswith(_STARTUP) or row["importer"].startswith(_STARTUP):
                continue
            # An "entry": the first module of a package imported from another package (or the top).
            if _top(row["module"]) != _top(row["importer"]):
                entries[(row["module"], row["importer"])].append(row["cumulative"] / 1000)
        for name, ms in per_package.items():
            packages[name].append(ms)
        totals.append(sum(r["self"] for r in rows) / 1000)
    n = len(runs)

    def median(values: list[float]) -> float:
        return statistics.median(values + [0.0] * (n - len(values)))

    ranked = sorted(((median(v), k) for k, v in entries.items()), reverse=True)[:top]
    return {
        "total_import_ms": statistics.median(totals),
        "entries": [{"module": m, "imported_by": by, "cumulative_ms": ms} for ms, (m, by) in ranked],
        "watched": {name: median(watched[name]) for name in WATCH if name in watched},
        "packages": [
            {"package": name, "self_ms": ms}
            for ms, name in sorted(((median(v), k) for k, v in packages.items()), reverse=True)[:top]
        ],
    }


# --- the whole benchmark --------------------------------------------------------------------------------


def measure(runs: int, stub_url: str, importtime_runs: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        runner = Runner(Path(tmp), stub_url)
        for subject in SUBJECTS:  # write the .pyc the "warm" variant reads (not timed)
            runner.run("warm", subject)
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {v: {s: [] for s in SUBJECTS} for v in VARIANTS}
        for _ in range(runs):
            for variant in VARIANTS:
                for subject in SUBJECTS:
                    if (variant, subject) not in SKIPPED:
                        samples[variant][subject].append(runner.run(variant, subject))
        importtimes = {
            variant: importtime_summary(
                [runner.run(variant, "ingest", importtime=True)["importtime"] for _ in range(importtime_runs)]
            )
            for variant in ("warm", "lambda")
        }
    # The floor runs identically (boto3 with its .pyc) in every variant but "no .pyc at all": pool those.
    pooled = [r for v in VARIANTS if v != "nopyc" for r in samples[v]["floor"]]
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        floor_runs = samples[variant]["floor"] if variant == "nopyc" else pooled
        floor = statistics.median(r["total_ms"] for r in floor_runs)
        floor_cpu = statistics.median(r["cpu_ms"] for r in floor_runs)
        results[variant] = {}
        for subject in SUBJECTS:
            rs = samples[variant][subject] if subject != "floor" else floor_runs
            if not rs:
                continue
            entry: dict[str, Any] = {
                "total_ms": spread(r["total_ms"] for r in rs),
                "cpu_ms": spread(r["cpu_ms"] for r in rs),
                "import_ms": spread(r["import_ms"] for r in rs),
                "peak_rss_mb": spread(r["peak_rss_mb"] for r in rs),
            }
            if subject != "floor":
                entry["first_event_ms"] = spread(r["first_event_ms"] for r in rs)
                entry["status"] = sorted({r["status"] for r in rs})
            entry["ratio_to_floor"] = entry["total_ms"]["median"] / floor
            entry["cpu_ratio_to_floor"] = entry["cpu_ms"]["median"] / floor_cpu
            results[variant][subject] = entry
    return {
        "runs": runs,
        "results": results,
        "importtime": importtimes,
        "subjects": SUBJECT_LABELS,
        "variants": VARIANT_LABELS,
        "layer_packages": _closure(layer_requirements()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", help="write the result here instead of stdout")
    args = parser.parse_args()
    import stub_http

    with stub_http.start() as url:
        result = measure(args.runs, url)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
