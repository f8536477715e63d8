"""The configuration contract in the README matches what template.yaml sets and what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from dodo_cio.configuration import settings as config
from dodo_cio.receiving import events
from support.aws import template

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _readme_section(title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_every_variable_the_template_sets_or_the_code_reads_is_documented() -> None:
    env = dict(template()["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template()["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            env.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    assert "DEAD_LETTER_QUEUE_URL" in env
    code = (ROOT / "layers/dodo_cio/dodo_cio/configuration/settings.py").read_text()
    read = set(re.findall(r"(?:env\.get\(|env_number\(env, )\"([A-Z_]+)\"", code))
    assert read, "the pattern found nothing: update this test"
    section = _readme_section("Configuration")
    assert sorted(name for name in {*env, *read} if f"`{name}`" not in section) == []


def test_secret_names_are_documented() -> None:
    for name in config.SECRET_NAMES:
        assert f"<path>/{name}" in _readme_section("Configuration")
        assert f"/dodo-customerio/{name}" in _readme_section("Deploying")


def test_mapping_table_covers_every_customer_event_type() -> None:
    table = _readme_section("Default mapping")
    for event_type in events.ALL_TYPES:
        family, _, action = event_type.partition(".")
        assert f"`{event_type}`" in table or f"`.{action}`" in table or f"`{family}.*`" in table, event_type


def test_every_alarm_has_a_runbook_row() -> None:
    """Each alarm's name (after "<stack>-") heads a row of the README's alarm table."""
    section = _readme_section("Alarms: what each means and what to do")
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = [
        str(resource["Properties"]["AlarmName"]["Fn::Sub"]).removeprefix("${AWS::StackName}-")
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert "quarantine-not-empty" in names
    for name in names:
        assert any(f"`{name}`" in row.split(" | ")[0] for row in rows), f"alarm {name} has no row in the runbook"


def test_reserved_concurrency_is_documented_with_its_default_and_how_to_turn_it_off() -> None:
    section = _readme_section("Permissions and concurrency")
    param = template()["Parameters"]["IngestReservedConcurrency"]
    assert f"`IngestReservedConcurrency`, default {param['Default']}" in section
    assert "`IngestReservedConcurrency=0`" in section
    # The deploy-time failure and how to check for it before deploying.
    assert "UnreservedConcurrentExecutions" in section


def test_documented_parameter_grants_match_the_template() -> None:
    """The Permissions table names, per function, exactly the SSM parameters its role may read."""
    section = _readme_section("Permissions and concurrency")
    (row,) = [line for line in section.splitlines() if line.startswith("| SSM parameters")]
    ingest_cell, retry_cell = row.split(" | ")[1:3]
    documented = set(re.findall(r"`<path>/([a-z-]+)`", ingest_cell))
    for role in ("IngestFunctionRole", "RetryFunctionRole"):
        statements = template()["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        (read,) = [s for s in statements if s.get("Sid") == "ReadBridgeParameters"]
        granted = {str(r["Fn::Sub"]).rsplit("/", 1)[-1] for r in read["Resource"]}
        if role == "IngestFunctionRole":
            assert granted == documented
        else:
            # "the same without `webhook-secret`"
            assert granted == documented - {"webhook-secret"} and "without `webhook-secret`" in retry_cell


def test_every_stack_parameter_is_named_in_the_readme() -> None:
    """An operator choosing `--parameter-overrides` finds each one explained somewhere in the README."""
    missing = [name for name in template()["Parameters"] if f"`{name}" not in README]
    assert missing == []


def test_uninstalling_says_the_state_table_is_kept_and_how_to_remove_it() -> None:
    section = _readme_section("Uninstalling")
    # test_template pins the table's Retain policies, deletion protection and generated name.
    assert "The state table is kept" in section and "`StateTableName`" in section
    # Deletion protection off first, then the delete, in that order.
    off = section.index("aws dynamodb update-table --table-name")
    assert "--no-deletion-protection-enabled" in section[off : section.index("\n", off)]
    assert section.index("aws dynamodb delete-table --table-name") > off
    # The name is generated, so a new stack of the same name does not collide with it.
    assert "nothing collides" in section


def test_day_14_is_explained_with_the_commands_that_exist() -> None:
    section = _readme_section("What happens on day 14")
    param = template()["Parameters"]["KeptMessageAgeAlarmDays"]
    assert "`KeptMessageAgeAlarmDays`" in section and f"default {param['Default']}" in section
    for command in ("redrive", "reprocess", "dlq --json", "replay"):
        assert f"`dodo-cio {command}" in section, command
    # `dlq --json` prints a listing, not the messages: the section must not promise more.
    assert "never the ops or the bodies" in section
