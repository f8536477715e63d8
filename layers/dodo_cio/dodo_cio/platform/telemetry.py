"""What both flows need from their logger and metrics (protocols, so tests can pass fakes), and the
ingest function's metrics writer.

`EmfMetrics` writes the lines Powertools Metrics writes (CloudWatch embedded metric format: the
namespace, the `service` dimension the template's alarms and dashboard select on, a `ColdStart`
metric with `function_name` on a container's first invocation), for a fraction of the cost:
Powertools validated and logged every `add_metric` and re-read its settings at every flush, about
a tenth of a warm webhook's CPU time for four counters (bench/RESULTS.md).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

E = TypeVar("E")
C = TypeVar("C")
R = TypeVar("R")

# CloudWatch's units (docs: MetricDatum.Unit); a name outside them would be rejected by CloudWatch.
UNITS: Final = frozenset(
    "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits "  # noqa: SIM905
    "Megabits Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second "
    "Gigabytes/Second Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second "
    "Terabits/Second Count/Second None".split()
)
# EMF takes at most 100 metrics per document and 100 values per metric.
MAX_EMF_ENTRIES: Final = 100


class Metrics(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class Log(Protocol):
    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def append_keys(self, **additional_keys: object) -> None: ...


def _unit_name(unit: Any) -> str:
    name = str(getattr(unit, "value", unit))  # a Powertools MetricUnit, or a name
    if name not in UNITS:
        raise ValueError(f"{unit!r} is not a CloudWatch unit")
    return name


def _truthy(name: str) -> bool:
    return os.getenv(name, "").strip().lower() in ("1", "true", "yes", "on", "y")


class EmfMetrics:
    """Metrics of one function, printed as one EMF document per invocation (see the module docstring).

    `namespace` and `service` default to POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME,
    which the template sets; POWERTOOLS_METRICS_DISABLED turns the output off, as it did.
    """

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        self.namespace = namespace or os.getenv("POWERTOOLS_METRICS_NAMESPACE")
        self.service = service or os.getenv("POWERTOOLS_SERVICE_NAME") or "service_undefined"
        self.disabled = _truthy("POWERTOOLS_METRICS_DISABLED")
        self._units: dict[str, str] = {}
        self._values: dict[str, list[float]] = {}
        self._cold = True

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        if unit not in UNITS:
            unit = _unit_name(unit)
        values = self._values.setdefault(name, [])
        self._units[name] = unit
        values.append(float(value))
        if len(values) >= MAX_EMF_ENTRIES or len(self._values) >= MAX_EMF_ENTRIES:
            self.flush()

    def flush(self) -> None:
        """Print what was added since the last flush (nothing if nothing was), then forget it."""
        if self._values and not self.disabled:
            self._print(self._values, self._units, {"service": self.service})
        self._values, self._units = {}, {}

    def log_metrics(self, handler: Callable[[E, C], R]) -> Callable[[E, C], R]:
        """Decorate a Lambda handler: the cold-start metric first, and a flush whatever the handler does."""

        @functools.wraps(handler)
        def run(event: E, context: C) -> R:
            try:
                if self._cold:
                    self._cold = False
                    name = getattr(context, "function_name", None) or "unknown"
                    dimensions = {"function_name": str(name), "service": self.service}
                    self._print({"ColdStart": [1.0]}, {"ColdStart": "Count"}, dimensions)
                return handler(event, context)
            finally:
                self.flush()

        return run

    def _print(self, values: dict[str, list[float]], units: dict[str, str], dimensions: dict[str, str]) -> None:
        if self.disabled:
            return
        if not self.namespace:
            raise ValueError("metrics need a namespace (POWERTOOLS_METRICS_NAMESPACE)")
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
                    }
                ],
            },
            **dimensions,
            **values,
        }
        print(json.dumps(document, separators=(",", ":")))  # CloudWatch reads EMF from the function's stdout
