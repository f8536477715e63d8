"""The configuration contract in the README matches what template.yaml sets and what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from dodo_cio import config, events
from support.aws import template

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _readme_section(title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_every_variable_the_template_sets_is_documented() -> None:
    section = _readme_section("Configuration")
    resources = template()["Resources"]
    env = dict(template()["Globals"]["Function"]["Environment"]["Variables"])
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::Function":
            env.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    assert "DEAD_LETTER_QUEUE_URL" in env
    for name in env:
        assert f"`{name}`" in section, f"{name} is set by template.yaml but not in the README's Configuration"


def test_every_variable_the_code_reads_is_documented() -> None:
    section = _readme_section("Configuration")
    read = set(re.findall(r"env\.get\(\"([A-Z_]+)\"", (ROOT / "layers/dodo_cio/dodo_cio/config.py").read_text()))
    read |= set(re.findall(r"_float\(env, \"([A-Z_]+)\"", (ROOT / "layers/dodo_cio/dodo_cio/config.py").read_text()))
    assert read, "the pattern found nothing: update this test"
    for name in read:
        assert name in section, f"{name} is read by config.py but not documented"


def test_secret_names_are_documented() -> None:
    for name in config.SECRET_NAMES:
        assert f"<path>/{name}" in _readme_section("Configuration")
        assert f"/dodo-customerio/{name}" in _readme_section("Deploying")


def test_mapping_table_covers_every_customer_event_type() -> None:
    table = _readme_section("Default mapping")
    for event_type in events.ALL_TYPES:
        family, _, action = event_type.partition(".")
        assert f"`{event_type}`" in table or f"`.{action}`" in table or f"`{family}.*`" in table, event_type
