"""A requests-style session (the probes of `dodo-cio check`, replay, a Pipelines client): answers in order,
records each call."""

from __future__ import annotations

from typing import Any


class FakeResponse:
    """`body` is what json() returns; a str body is the raw text, which json() refuses."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._body = body
        self.headers = headers or {}
        self.text = "" if body is None else str(body)
        self.content = self.text.encode()

    def json(self) -> Any:
        if isinstance(self._body, str):
            raise ValueError("not json")
        return self._body


class FakeSession:
    """get and post take the next answer; an exception as an answer is raised."""

    def __init__(self, *answers: FakeResponse | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append((url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    post = get

    def close(self) -> None:
        pass
