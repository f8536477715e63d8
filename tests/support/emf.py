"""The metrics a Lambda handler printed as CloudWatch embedded metric format (EMF) documents."""

from __future__ import annotations

import json


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Each metric's total over the EMF documents in `stdout` (a list value counts as its sum)."""
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = doc[metric["Name"]]
                    out[metric["Name"]] = out.get(metric["Name"], 0) + (
                        sum(value) if isinstance(value, list) else value
                    )
    return out
