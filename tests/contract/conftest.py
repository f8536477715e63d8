"""Contract fixtures: the sandbox's own validators (`dodo_cio_local`), over the schema and spec copies in this
folder, so the sandbox and the tests can never disagree about what Customer.io would accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from dodo_cio_local.sandbox import PipelinesValidator, TrackV2Validator

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def track_v2_validator() -> TrackV2Validator:
    """Track API v2: the derived schema plus the byte and length limits it cannot express."""
    return TrackV2Validator.from_path(HERE / "track_v2.schema.json")


@pytest.fixture(scope="session")
def pipelines_validator() -> PipelinesValidator:
    """Pipelines API: `validate_request` raises what strict mode would refuse."""
    return PipelinesValidator.from_path(HERE / "customerio-pipelines-openapi.json")
