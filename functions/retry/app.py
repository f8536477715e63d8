"""Retry Lambda: SQS retry queue -> dodo_cio.retry. Wiring only; the logic is in the layer.

The whole batch is delivered first (few Customer.io requests for many messages), then the handler
answers Lambda's partial batch response itself (the event source has ReportBatchItemFailures):
`{"batchItemFailures": [...]}` names exactly the messages whose verdict is "retry", deferred ones
included, and an empty list means every message was delivered, re-parked or dead-lettered.

Powertools' batch utility (`BatchProcessor` + `process_partial_response`) is not used. It calls a
handler per record and reports the records whose handler raised; here every verdict is already
known, so all it would add is raising once per failed message to build the same list, plus an
error on an event without records (SQS never sends one). Its import (asyncio and every event
source's data classes, ~45 ms in `python -X importtime`) was a sixth of the retry cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

from dodo_cio.configuration import wiring
from dodo_cio.configuration.settings import SecretStore, Settings
from dodo_cio.platform import aws, deadline
from dodo_cio.platform.logmask import MaskingFormatter
from dodo_cio.retry.service import RetryService
from dodo_cio.retry.verdicts import BatchResponse, batch_response

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(logger_formatter=MaskingFormatter())
metrics = Metrics()
_service: RetryService | None = None


def _client(service: str) -> Any:
    return aws.client(service)  # one session per container, created on the first AWS call


def service() -> RetryService:
    global _service  # noqa: PLW0603 - one service per Lambda container
    if _service is None:
        settings = Settings.from_env()
        secrets = SecretStore(settings)
        state = wiring.state_table(settings, lambda: _client("dynamodb"))
        _service = RetryService(
            settings=settings,
            secrets=secrets,
            metrics=metrics,
            logger=logger,
            sqs_factory=lambda: _client("sqs"),
            state=state,
            resolver=wiring.resolver(settings, secrets, state),
        )
    return _service


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@deadline.per_invocation  # every call runs to the time Lambda has left, less a reserve to answer
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    # A batch where every message must wait is normal during an outage: answered, not raised.
    return batch_response(service().handle(event.get("Records") or []))
