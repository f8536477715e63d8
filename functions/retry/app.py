"""Retry Lambda: SQS retry queue -> dodo_cio.retry. Wiring only; the logic is in the layer.

The whole batch is delivered first (few Customer.io requests for many messages), then Powertools'
batch utility reports exactly the messages whose verdict is "retry" as item failures.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from dodo_cio import aws, deadline, wiring
from dodo_cio.config import SecretStore, Settings
from dodo_cio.logmask import MaskingFormatter
from dodo_cio.retry import RetryService, failed_message_ids

logger = Logger(logger_formatter=MaskingFormatter())
metrics = Metrics()
# A batch where every message must wait is normal during an outage, not a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_service: RetryService | None = None


class RetryLater(Exception):
    """Marks a message for SQS to deliver again after the visibility delay already set on it."""


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
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    failed = failed_message_ids(service().handle(event.get("Records") or []))

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise RetryLater(record.message_id)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
