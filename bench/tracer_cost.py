"""What Powertools Tracer would add to a cold start, measured before deciding to adopt it.

Runs fresh interpreters that import the ingest handler's Powertools pieces with and without
`Tracer()`, with warm bytecode and with none (Lambda compiles the deployment package at every
cold start because `sam build` ships no .pyc). Prints median and spread in milliseconds.

    .venv/bin/python bench/tracer_cost.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

BASE = "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics(namespace='x')"
CASES = {
    "python -c pass": "pass",
    "Logger + Metrics": BASE,
    "Logger + Metrics + Tracer()": BASE + "; from aws_lambda_powertools import Tracer; Tracer(service='x')",
}


def run(code: str, no_pyc: bool) -> float:
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "false"}
    with tempfile.TemporaryDirectory() as cache:
        if no_pyc:
            env["PYTHONPYCACHEPREFIX"] = cache
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return (time.perf_counter() - start) * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"python {sys.version.split()[0]}, {runs} runs each, milliseconds (median [min-max])")
    for label, code in CASES.items():
        for no_pyc in (False, True):
            times = [run(code, no_pyc) for _ in range(runs)]
            tag = "no pyc" if no_pyc else "pyc   "
            print(f"  {label:32s} {tag} {statistics.median(times):7.0f} [{min(times):.0f}-{max(times):.0f}]")


if __name__ == "__main__":
    main()
