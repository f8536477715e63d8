"""Fixtures for the template tests: the SAM template translated offline, once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.cfn import TEMPLATE_PATH, load_sam, translate


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_sam(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def cfn(sam_template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml as plain CloudFormation, as `sam deploy` would submit it (with S3 placeholders)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return translate(sam_template)


@pytest.fixture(scope="session")
def translated_path(cfn: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("translated") / "template.json"
    path.write_text(json.dumps(cfn, indent=2), encoding="utf-8")
    return path
