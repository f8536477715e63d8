"""The ingest function's metrics writer prints what Powertools Metrics printed: the alarms and dashboard read it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dodo_cio.platform.telemetry import EmfMetrics

ENV = {"POWERTOOLS_METRICS_NAMESPACE": "DodoCustomerioTest", "POWERTOOLS_SERVICE_NAME": "bridge-test"}


class Context:
    function_name = "ingest-fn"


def _documents(text: str) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    for doc in docs:
        doc["_aws"].pop("Timestamp")
    return docs


def _invoke(metrics: Any, adds: list[tuple[str, str, float]], calls: int = 1) -> None:
    def handler(event: Any, context: Any) -> None:
        for name, unit, value in adds:
            metrics.add_metric(name=name, unit=unit, value=value)

    for _ in range(calls):
        handler_with_metrics(metrics, handler)({}, Context())


def handler_with_metrics(metrics: Any, handler: Any) -> Any:
    if isinstance(metrics, EmfMetrics):
        return metrics.log_metrics(handler)
    return metrics.log_metrics(handler, capture_cold_start_metric=True)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


ADDS = [
    ("WebhookReceived", "Count", 1),
    ("DeliveryLatency", "Milliseconds", 31.5),
    ("OpsDelivered", "Count", 2),
    ("WebhookReceived", "Count", 1),
]


def test_the_documents_are_those_powertools_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.is_cold_start = True
    _invoke(Metrics(), ADDS, calls=2)
    powertools = _documents(capsys.readouterr().out)
    _invoke(EmfMetrics(), ADDS, calls=2)
    ours = _documents(capsys.readouterr().out)
    key = lambda doc: json.dumps(doc, sort_keys=True)  # noqa: E731 - the cold-start line's place may differ
    assert sorted(ours, key=key) == sorted(powertools, key=key)
    assert [d.get("ColdStart") for d in ours].count([1.0]) == 1, "one ColdStart per container"


def test_a_failing_handler_still_flushes_its_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EmfMetrics()

    @metrics.log_metrics
    def handler(event: Any, context: Any) -> None:
        metrics.add_metric(name="ConfigError", unit="Count", value=1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, Context())
    assert any(doc.get("ConfigError") == [1.0] for doc in _documents(capsys.readouterr().out))


def test_nothing_added_prints_no_document_but_the_cold_start(capsys: pytest.CaptureFixture[str]) -> None:
    _invoke(EmfMetrics(), [], calls=2)
    assert [list(doc)[1:] for doc in _documents(capsys.readouterr().out)] == [["function_name", "service", "ColdStart"]]


def test_disabled_prints_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    _invoke(EmfMetrics(), ADDS)
    assert capsys.readouterr().out == ""


def test_a_unit_cloudwatch_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CloudWatch unit"):
        EmfMetrics().add_metric(name="Latency", unit="Fortnights", value=1)


def test_a_metric_past_100_values_starts_a_new_document(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EmfMetrics()
    for _ in range(150):
        metrics.add_metric(name="OpsDelivered", unit="Count", value=1)
    metrics.flush()
    assert [len(doc["OpsDelivered"]) for doc in _documents(capsys.readouterr().out)] == [100, 50]
