"""Contract fixtures: check that a request body is one Customer.io's Track API v2 (or Pipelines API) would accept.

Tests that capture what the bridge sends (sandbox recordings, mocked HTTP) pass each body through
``track_v2_validator`` so a drift from the published contract fails loudly, naming the field.
The checks themselves live in ``dodo_cio_local.sandbox.TrackV2Validator`` so the sandbox and the
tests can never disagree about what "valid" means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dodo_cio_local.sandbox import OpError, PipelinesValidator, TrackV2ValidationError, TrackV2Validator

SCHEMA_PATH = Path(__file__).with_name("track_v2.schema.json")
PIPELINES_SPEC_PATH = Path(__file__).with_name("customerio-pipelines-openapi.json")


def _decode(body: Any) -> Any:
    """Accept raw bodies as recorded on the wire as well as already-parsed JSON."""
    if isinstance(body, bytes | bytearray | str):
        try:
            return json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"request body is not JSON: {exc}") from None
    return body


class TrackV2Contract:
    """Assertion-style wrapper: ``validate_*`` raise ``AssertionError`` listing every problem."""

    def __init__(self, validator: TrackV2Validator) -> None:
        self.validator = validator
        self.schema = validator.schema

    def entity_errors(self, op: Any) -> list[OpError]:
        return self.validator.entity_errors(_decode(op))

    def batch_errors(self, body: Any) -> list[OpError]:
        return self.validator.batch_errors(_decode(body))

    def validate_entity(self, op: Any) -> None:
        try:
            self.validator.validate_entity(_decode(op))
        except TrackV2ValidationError as exc:
            raise AssertionError(f"POST /api/v2/entity: {exc}") from None

    def validate_batch(self, body: Any) -> None:
        try:
            self.validator.validate_batch(_decode(body))
        except TrackV2ValidationError as exc:
            raise AssertionError(f"POST /api/v2/batch: {exc}") from None

    def validate_request(self, path: str, body: Any) -> None:
        """Pick the right check from the request path (a full URL is fine)."""
        if path.rstrip("/").endswith("/api/v2/entity"):
            self.validate_entity(body)
        elif path.rstrip("/").endswith("/api/v2/batch"):
            self.validate_batch(body)
        else:
            raise AssertionError(f"not a Track v2 entity/batch request: {path}")


@pytest.fixture(scope="session")
def track_v2_validator() -> TrackV2Contract:
    return TrackV2Contract(TrackV2Validator.from_path(SCHEMA_PATH))


@pytest.fixture(scope="session")
def pipelines_validator() -> PipelinesValidator:
    """The sandbox's own Pipelines validator over the spec copy: `validate_request` raises what strict
    mode would refuse, so the tests and the sandbox cannot disagree."""
    return PipelinesValidator.from_path(PIPELINES_SPEC_PATH)
