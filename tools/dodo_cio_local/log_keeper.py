"""The local run's stand-in for CloudWatch Logs: both functions' recent log lines, kept for `dodo-cio trace --local`.

On AWS, `trace` reads the functions' log lines through Logs Insights. Locally they go to `make run`'s
terminal, where nobody can search them from another one. So the run keeps the last
:data:`KEPT_LINES` lines each function's Powertools logger writes, exactly as written (JSON, masked
by the same formatter as in Lambda), and serves them at `GET /__local/logs`; `trace --local` filters
them by webhook and customer id as its Logs Insights query does.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from dodo_cio_cli.local_target import LOGS_PATH

KEPT_LINES: Final = 5000
__all__ = ["KEPT_LINES", "LOGS_PATH", "LogKeeper"]


class LogKeeper(logging.Handler):
    """A handler that formats each record with its logger's own formatter and keeps the line."""

    def __init__(self, limit: int = KEPT_LINES) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=limit)
        self._guard = threading.Lock()
        self._attached: list[logging.Logger] = []

    def attach(self, modules: Iterable[Any]) -> None:
        """Listen to the Powertools `logger` of each handler module (each underlying logger once)."""
        for module in modules:
            powertools = getattr(module, "logger", None)
            target = getattr(powertools, "_logger", None)
            if isinstance(target, logging.Logger) and target not in self._attached:
                formatter = getattr(powertools, "registered_formatter", None)
                if formatter is not None and self.formatter is None:
                    self.setFormatter(formatter)
                target.addHandler(self)
                self._attached.append(target)

    def detach(self) -> None:
        for target in self._attached:
            target.removeHandler(self)
        self._attached.clear()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a line that cannot be formatted is not worth failing an invocation
            return
        with self._guard:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._guard:
            return list(self._lines)
