"""The retry function behind Lambda's SQS poller, wired the way template.yaml wires it."""

from __future__ import annotations

from typing import Any

from dodo_cio_local.event_source import Handler, SqsEventSource
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_run import TemplateSettings

RETRY_FUNCTION = "dodo-customerio-retry"


def retry_event_source(sqs: Any, queue_url: str, handler: Handler, template: TemplateSettings) -> SqsEventSource:
    """Polls the retry queue with the template's batch size and partial-batch reporting; each
    invocation gets the retry function's context."""
    return SqsEventSource(
        sqs,
        queue_url,
        handler,
        batch_size=template.retry_batch_size,
        context_factory=lambda: FakeLambdaContext(function_name=RETRY_FUNCTION),
        report_batch_item_failures=template.retry_reports_batch_item_failures,
    )
