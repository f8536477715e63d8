"""A requests-style session standing in for Customer.io's Track API under the real TrackClient: no socket."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from requests.structures import CaseInsensitiveDict


class Answer:
    """The fields of a `requests.Response` the client reads."""

    def __init__(self, status: int, content: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.content = content
        self.headers = CaseInsensitiveDict(headers or {})


class TrackSession:
    """413 for requests of more than `max_ops` ops, else the status `statuses` gives the first op's id (`default`).

    `scripted` answers (or exceptions to raise) come first, in order. Every request is recorded as
    (path under /api/v2, its ops, headers, timeout).
    """

    def __init__(
        self,
        statuses: dict[str, int] | None = None,
        *,
        max_ops: int = 1000,
        scripted: Sequence[Any] = (),
        default: int = 200,
    ) -> None:
        self.statuses = statuses or {}
        self.default = default
        self.max_ops = max_ops
        self.scripted = list(scripted)
        self.requests: list[tuple[str, list[dict[str, Any]], dict[str, str], Any]] = []
        self.closed = False

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: Any) -> Answer:
        doc = json.loads(data)
        path = url.rsplit("/api/v2", 1)[1]
        ops = doc["batch"] if path == "/batch" else [doc]
        self.requests.append((path, ops, headers, timeout))
        if self.scripted:
            answer = self.scripted.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[no-any-return]
        if len(ops) > self.max_ops:
            return Answer(413, b"Request Entity Too Large")
        status = self.statuses.get(ops[0]["id"], self.default)
        return Answer(status, b"" if status < 300 else f"status {status}".encode())

    def close(self) -> None:
        self.closed = True
