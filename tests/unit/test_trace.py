"""`dodo-cio trace` (dodo_cio_cli.trace): the log query and what a failing source leaves, without AWS."""

from __future__ import annotations

from typing import Any

from dodo_cio_cli import trace


class Logs:
    """Logs Insights: one query's rows after one 'Running' poll; `fail` raises on start."""

    def __init__(self, rows: list[list[dict[str, str]]], *, fail: bool = False) -> None:
        self.rows, self.fail, self.queries, self.polls = rows, fail, [], 0

    def start_query(self, **kwargs: Any) -> dict[str, str]:
        if self.fail:
            raise RuntimeError("AccessDeniedException")
        self.queries.append(kwargs)
        return {"queryId": "q1"}

    def get_query_results(self, queryId: str) -> dict[str, Any]:
        self.polls += 1
        return {"status": "Running"} if self.polls == 1 else {"status": "Complete", "results": self.rows}


def sources(logs: Logs) -> trace.Sources:
    return trace.Sources(None, None, None, "customer_id", "fn", {}, logs=logs, log_groups={"ingest log": "/g"})


def test_the_log_query_looks_for_the_id_as_webhook_or_customer_and_orders_the_rows(monkeypatch: Any) -> None:
    monkeypatch.setattr(trace.time, "sleep", lambda s: None)
    rows = [
        [{"field": "@timestamp", "value": "2026-12-01 10:00:05.000"}, {"field": "message", "value": "parked for retry"},
         {"field": "level", "value": "WARNING"}, {"field": "webhook_id", "value": "msg_2"}],
        [{"field": "@timestamp", "value": "2026-12-01 10:00:01.000"}, {"field": "message", "value": "delivered"},
         {"field": "level", "value": "INFO"}, {"field": "webhook_id", "value": "msg_1"}],
    ]  # fmt: skip
    logs = Logs(rows)
    found = trace.trace("cus_maya", sources(logs), since_days=1, now=1_800_000_000)
    (query,) = logs.queries
    assert 'webhook_id in ["cus_maya"] or customer_id in ["cus_maya"]' in query["queryString"]
    assert query["endTime"] - query["startTime"] == 86400
    assert [e.what.split(" (")[0] for e in found.ordered()] == ["INFO delivered", "WARNING parked for retry"]
    assert found.ordered()[0].at == 1_796_119_201  # 2026-12-01 10:00:01 UTC


def test_a_log_group_that_cannot_be_read_is_a_note_not_a_failure() -> None:
    found = trace.trace("cus_maya", sources(Logs([], fail=True)))
    assert found.entries == [] and "AccessDeniedException" in found.notes[0]
    assert "nothing found" in found.format()
