"""Ingest Lambda: API Gateway (HTTP API) -> dodo_cio.ingest.service. Wiring only; the logic is in the layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from customize import build_mapping
from dodo_cio.configuration import wiring
from dodo_cio.configuration.settings import SecretStore, Settings
from dodo_cio.ingest.service import IngestService
from dodo_cio.mapping.mapper import MappingConfig
from dodo_cio.platform import aws, deadline
from dodo_cio.platform.env import ConfigError
from dodo_cio.platform.logmask import MaskingFormatter
from dodo_cio.platform.telemetry import EmfMetrics
from dodo_cio.receiving.http_api import HttpResponse, MalformedEvent, request_from_apigw
from dodo_cio.receiving.quarantine import QuarantineFormatError, reprocess_request
from dodo_cio.state.idempotency import WebhookDeduplicator

logger = Logger(logger_formatter=MaskingFormatter())
metrics = EmfMetrics()  # Powertools' EMF lines, without its per-metric cost (dodo_cio.platform.telemetry)
_service: IngestService | None = None
_dedupe: WebhookDeduplicator | None = None


def _client(service: str) -> Any:
    return aws.client(service)  # one session per container, created on the first AWS call


def _merchant_mapping(settings: Settings) -> MappingConfig:
    """customize.build_mapping is the merchant's code: whatever it raises is a misconfiguration."""
    try:
        return build_mapping(settings.mapping())
    except Exception as exc:
        logger.exception("customize.build_mapping failed")
        raise ConfigError(f"customize.build_mapping failed: {type(exc).__name__}") from exc


def service() -> IngestService:
    """Built on the first invocation (not at import) so a bad setting is answered, not a crash loop."""
    global _service, _dedupe  # noqa: PLW0603 - one service per Lambda container
    if _service is None:
        settings = Settings.from_env()
        secrets = SecretStore(settings)
        state = wiring.state_table(settings, lambda: _client("dynamodb"))
        if settings.state_table:
            _dedupe = WebhookDeduplicator(settings.state_table, state=state)
        _service = IngestService(
            settings=settings,
            secrets=secrets,
            mapping=_merchant_mapping(settings),
            metrics=metrics,
            logger=logger,
            sqs_factory=lambda: _client("sqs"),
            dedupe=_dedupe,
            state=state,
            resolver=wiring.resolver(settings, secrets, state),
        )
    return _service


@metrics.log_metrics  # ColdStart on a container's first call
@logger.inject_lambda_context(clear_state=True)
@deadline.per_invocation  # every call runs to the time Lambda has left, less a reserve to answer
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        ingest = service()
    except ConfigError as exc:
        metrics.add_metric(name="ConfigError", unit="Count", value=1)
        logger.error("bridge misconfigured: %s", exc)
        return HttpResponse(500, {"error": "bridge misconfigured"}).to_apigw()
    if _dedupe is not None:
        _dedupe.register_context(context)
    try:  # a direct invoke from `dodo-cio reprocess`; API Gateway events never take this shape
        quarantined = reprocess_request(event)
    except QuarantineFormatError as exc:
        return HttpResponse(400, {"error": "not a quarantined webhook", "detail": str(exc)}).to_apigw()
    if quarantined is not None:
        return ingest.reprocess(quarantined).to_apigw()
    try:
        request = request_from_apigw(event)
    except MalformedEvent as exc:  # only a direct invoke can send this; say what is wrong
        return HttpResponse(400, {"error": "not an API Gateway event", "detail": str(exc)}).to_apigw()
    return ingest.handle(request).to_apigw()
