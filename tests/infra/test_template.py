"""template.yaml: linted, scanned, and checked property by property on the translated CloudFormation.

Assertions run on the output of the SAM translator (see conftest.py), not on the raw YAML, so they see
what CloudFormation will actually create: the generated role, stage, API body and layer version.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dodo_cio.delivery.destination import APIS, TRACK
from dodo_cio.mapping.mapper import CONTACT_FIELDS_MODES
from infra.cfn import (
    REPO_ROOT,
    TEMPLATE_PATH,
    as_list,
    getatt,
    only_resource_of_type,
    policy_statements,
    ref_name,
    resources_of_type,
    sub_template,
)

WEBHOOK_PATH = "/webhooks/dodo"

# cfn-lint findings we accept on the translated template, each with its reason.
CFN_LINT_IGNORED = {
    # Raised on action names inside SAM's own generated policies, not on anything this template writes.
    "W3037": "comes from SAM-generated policies",
}


_CFN_LINT_MAIN = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"


def _cfn_lint(path: Path, *ignore: str) -> list[dict[str, Any]]:
    # cfnlint has no __main__; call its console-script entry point with this interpreter.
    args = [sys.executable, "-c", _CFN_LINT_MAIN, "--format", "json"]
    if ignore:
        args += ["--ignore-checks", *ignore]
    proc = subprocess.run([*args, "--", str(path)], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.stdout.strip(), f"cfn-lint produced no output (rc={proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def _describe(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['Rule']['Id']} {f['Location']['Path']}: {f['Message']}"
        for f in findings  # cfn-lint's JSON: Rule.Id, Location.Path, Message
    )


def _ingest(cfn: dict[str, Any]) -> dict[str, Any]:
    return cfn["Resources"]["IngestFunction"]


# --- lint ---------------------------------------------------------------------------------------------


def test_cfn_lint_raw_template_is_clean() -> None:
    findings = _cfn_lint(TEMPLATE_PATH)
    assert findings == [], _describe(findings)


# Findings on one path of the translated template, each with its reason.
CFN_LINT_RESOLVED_BY_SAM = {
    # SAM resolves DeploymentPreference.Type from this parameter while it transforms the template (here with
    # the default; in CloudFormation with the value deployed), so the translated template no longer names it.
    ("W2001", ("Parameters", "DeploymentType")),
}


def test_cfn_lint_translated_template_is_clean(translated_path: Path) -> None:
    findings = [
        f
        for f in _cfn_lint(translated_path, *CFN_LINT_IGNORED)
        if (f["Rule"]["Id"], tuple(f["Location"]["Path"])) not in CFN_LINT_RESOLVED_BY_SAM
    ]
    assert findings == [], _describe(findings)


# --- checkov ------------------------------------------------------------------------------------------


Results = dict[str, list[dict[str, Any]]]


def _checkov(target: Path) -> Results:
    checkov = os.environ.get("CHECKOV")
    if not checkov:
        pytest.skip("CHECKOV is not set: `make test` sets it to .venv-checkov/bin/checkov (own venv)")
    # Without --quiet: checkov's JSON then also lists skipped checks, whose comments are tested below.
    proc = subprocess.run(
        [
            *(checkov, "-f", str(target), "--framework", "cloudformation"),
            *("--compact", "--skip-download", "-o", "json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode in (0, 1), f"checkov crashed (rc={proc.returncode}): {proc.stderr}"
    report = json.loads(proc.stdout)
    reports = [r for r in as_list(report) if r.get("check_type") == "cloudformation"]
    assert len(reports) == 1, f"expected one cloudformation report from checkov, got: {proc.stdout[:2000]}"
    results: Results = reports[0]["results"]
    assert results["parsing_errors"] == [], results["parsing_errors"]
    return results


@pytest.fixture(scope="module")
def checkov_results() -> Results:
    """checkov on template.yaml, as `make scan` runs it."""
    return _checkov(Path("template.yaml"))


@pytest.fixture(scope="module")
def checkov_translated_results(translated_path: Path) -> Results:
    """checkov on the translated template: only there does it see the generated role's policies."""
    return _checkov(translated_path)


def _failed(results: Results) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]


def test_checkov_has_no_failed_checks(checkov_results: Results) -> None:
    assert _failed(checkov_results) == []


def test_checkov_translated_template_has_no_failed_checks(checkov_translated_results: Results) -> None:
    assert _failed(checkov_translated_results) == []
    assert len(checkov_translated_results["passed_checks"]) > len(checkov_translated_results["skipped_checks"])


def test_checkov_skips_are_all_justified(checkov_results: Results, checkov_translated_results: Results) -> None:
    skipped = checkov_results["skipped_checks"] + checkov_translated_results["skipped_checks"]
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for c in skipped
        # checkov fills in "No comment provided" when a skip has no comment.
        if not str(c["check_result"].get("suppress_comment", "")).strip()
        or c["check_result"]["suppress_comment"] == "No comment provided"
    ]
    assert unjustified == []


def test_every_checkov_skip_in_the_template_is_used(sam_template: dict[str, Any], checkov_results: Results) -> None:
    """A skip for a check that does not run on that resource is dead text: remove it."""
    declared = {
        (name, skip["id"])
        for name, res in sam_template["Resources"].items()
        for skip in (res.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    }
    used = {(c["resource"].split(".")[-1], c["check_id"]) for c in checkov_results["skipped_checks"]}
    assert declared - used == set()


# --- functions and layer ------------------------------------------------------------------------------


def test_every_function_runs_python313_on_arm64(cfn: dict[str, Any]) -> None:
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert functions, "no Lambda functions in the translated template"
    for name, fn in functions.items():
        assert fn["Properties"]["Runtime"] == "python3.13", name
        assert fn["Properties"]["Architectures"] == ["arm64"], name


def test_every_function_traces_as_the_tracing_mode_parameter_says(cfn: dict[str, Any]) -> None:
    for name, fn in resources_of_type(cfn, "AWS::Lambda::Function").items():
        assert fn["Properties"].get("TracingConfig") == {"Mode": {"Ref": "TracingMode"}}, name


def test_ingest_answers_before_dodo_gives_up(cfn: dict[str, Any]) -> None:
    ingest = _ingest(cfn)["Properties"]
    assert ingest["Timeout"] < 15  # Dodo waits 15 s for the response
    assert ingest["Handler"] == "app.lambda_handler"


def test_bridge_layer_is_built_for_the_function_platform(cfn: dict[str, Any], sam_template: dict[str, Any]) -> None:
    layer_id, layer = only_resource_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer.get("DeletionPolicy") == "Delete"  # SAM's RetentionPolicy: Delete
    assert [ref_name(x) for x in _ingest(cfn)["Properties"]["Layers"]] == [layer_id]
    # Build metadata lives only in the SAM template (the translator drops it); sam build reads it there.
    sam_layer = sam_template["Resources"]["BridgeLayer"]
    assert sam_layer["Properties"]["ContentUri"] == "layers/dodo_cio"
    assert sam_layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert (REPO_ROOT / "layers/dodo_cio/requirements.txt").is_file()
    assert (REPO_ROOT / "layers/dodo_cio/dodo_cio").is_dir()
    # The makefile builds for the Lambda platform (arm64 wheels, CPython 3.13) and ships bytecode
    # that is used without checking file times (a zip does not keep them exactly).
    makefile = (REPO_ROOT / "layers/dodo_cio/Makefile").read_text()
    assert "build-BridgeLayer:" in makefile
    assert "--platform manylinux2014_aarch64" in makefile and "--python-version 3.13" in makefile
    assert "--invalidation-mode unchecked-hash" in makefile
    for name, folder in (("IngestFunction", "ingest"), ("RetryFunction", "retry")):
        assert sam_template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile"
        function_makefile = (REPO_ROOT / "functions" / folder / "Makefile").read_text()
        assert f"build-{name}:" in function_makefile and "unchecked-hash" in function_makefile


def test_ingest_environment(cfn: dict[str, Any]) -> None:
    env = _ingest(cfn)["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "dodo-customerio-bridge"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DodoCustomerioBridge"
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert env["SSM_PARAMETER_PATH"] == {"Ref": "SsmParameterPath"}
    assert env["CUSTOMERIO_REGION"] == {"Ref": "CustomerioRegion"}
    assert env["CUSTOMERIO_TRACK_URL"] == {"Ref": "CustomerioTrackUrl"}
    assert env["CUSTOMERIO_API"] == {"Ref": "CustomerioApi"}
    assert env["CUSTOMERIO_PIPELINES_URL"] == {"Ref": "CustomerioPipelinesUrl"}
    assert env["CUSTOMERIO_IDENTIFIER"] == {"Ref": "CustomerioIdentifier"}
    assert env["RETRY_QUEUE_URL"] == {"Ref": "RetryQueue"}  # Ref of a queue is its URL
    assert env["QUARANTINE_QUEUE_URL"] == {"Ref": "QuarantineQueue"}


def test_only_the_ingest_function_knows_the_quarantine_queue(cfn: dict[str, Any]) -> None:
    """The retry function must never see quarantined webhooks (test_permissions checks its role)."""
    for name, fn in resources_of_type(cfn, "AWS::Lambda::Function").items():
        env = fn["Properties"]["Environment"]["Variables"]
        has_it = any(ref_name(v) == "QuarantineQueue" or getatt(v) == ("QuarantineQueue", "Arn") for v in env.values())
        assert has_it is (name == "IngestFunction"), name


def test_ingest_logs_to_its_own_log_group(cfn: dict[str, Any]) -> None:
    logging = _ingest(cfn)["Properties"]["LoggingConfig"]
    group = cfn["Resources"][ref_name(logging["LogGroup"]) or ""]
    assert group["Type"] == "AWS::Logs::LogGroup"


def test_every_log_group_has_retention(cfn: dict[str, Any]) -> None:
    groups = resources_of_type(cfn, "AWS::Logs::LogGroup")
    assert len(groups) >= 3  # the API's access log, the ingest function's and the retry function's
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionInDays"}, name


# --- HTTP API -----------------------------------------------------------------------------------------


def test_http_api_routes_post_webhooks_dodo_to_ingest(cfn: dict[str, Any]) -> None:
    api_id, api = only_resource_of_type(cfn, "AWS::ApiGatewayV2::Api")
    assert api_id == "WebhookApi"
    paths = api["Properties"]["Body"]["paths"]
    assert list(paths) == [WEBHOOK_PATH]
    assert list(paths[WEBHOOK_PATH]) == ["post"]
    uri = sub_template(paths[WEBHOOK_PATH]["post"]["x-amazon-apigateway-integration"]["uri"]) or ""
    assert "${IngestFunctionAliaslive}" in uri  # the alias a gradual deploy shifts (README "Deploys that roll back")


def test_both_functions_deploy_gradually_through_an_alias_that_alarms_roll_back(cfn: dict[str, Any]) -> None:
    alarms = {"IngestErrorsAlarm", "RetryErrorsAlarm", "ConfigErrorAlarm", "TransformErrorAlarm"}
    alarms.add("DeadLetterQueueArrivalAlarm")  # permanent Customer.io rejections
    for function in ("IngestFunction", "RetryFunction"):
        alias = cfn["Resources"][f"{function}Aliaslive"]
        assert alias["Type"] == "AWS::Lambda::Alias" and "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]
        group = cfn["Resources"][f"{function}DeploymentGroup"]["Properties"]
        assert {ref_name(a["Name"]) for a in group["AlarmConfiguration"]["Alarms"]} == alarms
        assert group["AlarmConfiguration"]["Enabled"] is True
        assert getatt(group["ServiceRoleArn"]) == ("DeployRole", "Arn")  # written out, no managed policy
    assert cfn["Parameters"]["DeploymentType"]["Default"].startswith("Canary")


def test_http_api_stage_throttling_and_json_access_log(cfn: dict[str, Any]) -> None:
    _, stage = only_resource_of_type(cfn, "AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    log = props["AccessLogSettings"]
    target = getatt(log["DestinationArn"])
    assert target is not None
    assert cfn["Resources"][target[0]]["Type"] == "AWS::Logs::LogGroup"
    assert target[0] != ref_name(_ingest(cfn)["Properties"]["LoggingConfig"]["LogGroup"])
    fields = json.loads(log["Format"])
    assert {"requestId", "status", "routeKey"} <= fields.keys()


# --- queues -------------------------------------------------------------------------------------------


def _queue(cfn: dict[str, Any], name: str) -> dict[str, Any]:
    queue = cfn["Resources"][name]
    assert queue["Type"] == "AWS::SQS::Queue"
    return queue["Properties"]


@pytest.mark.parametrize("name", ["RetryQueue", "RetryDeadLetterQueue", "QuarantineQueue"])
def test_queues_are_encrypted(cfn: dict[str, Any], name: str) -> None:
    props = _queue(cfn, name)
    assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId")


def test_retry_queue_redrives_to_the_dlq(cfn: dict[str, Any]) -> None:
    redrive = _queue(cfn, "RetryQueue")["RedrivePolicy"]
    assert getatt(redrive["deadLetterTargetArn"]) == ("RetryDeadLetterQueue", "Arn")
    assert int(redrive["maxReceiveCount"]) >= 5


def test_retry_queue_visibility_covers_six_retry_timeouts(cfn: dict[str, Any]) -> None:
    # Lambda's SQS guidance; Lambda also refuses an event source whose function timeout exceeds it.
    timeout = int(cfn["Resources"]["RetryFunction"]["Properties"]["Timeout"])
    assert int(_queue(cfn, "RetryQueue")["VisibilityTimeout"]) >= 6 * timeout


def test_dlq_keeps_messages_longer_than_the_retry_queue(cfn: dict[str, Any]) -> None:
    # A message moved to a DLQ keeps its original enqueue time, so equal retention would expire it at once.
    retry = int(_queue(cfn, "RetryQueue")["MessageRetentionPeriod"])
    dlq = int(_queue(cfn, "RetryDeadLetterQueue")["MessageRetentionPeriod"])
    assert dlq > retry


def test_quarantine_queue_keeps_whole_webhooks_for_the_longest_time(cfn: dict[str, Any]) -> None:
    from dodo_cio.ingest.service import MAX_BODY_BYTES

    props = _queue(cfn, "QuarantineQueue")
    assert int(props["MessageRetentionPeriod"]) == 14 * 24 * 3600  # the SQS maximum
    # The largest body the endpoint accepts must fit once escaped into the JSON message with its headers
    # and error. Inside valid JSON only '"' and '\\' need escaping again, so a body at most doubles;
    # SQS allows 1 MiB (1,048,576 bytes) since 2025, the old 256 KiB limit would not hold it.
    assert int(props["MaximumMessageSize"]) == 1048576
    assert int(props["MaximumMessageSize"]) >= 2 * MAX_BODY_BYTES + 16 * 1024


def test_quarantine_queue_is_no_redrive_source_or_target(cfn: dict[str, Any]) -> None:
    """Its messages are not parked deliveries: they must never reach the retry function or the DLQ."""
    props = _queue(cfn, "QuarantineQueue")
    assert "RedrivePolicy" not in props
    assert props["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}
    for name, queue in resources_of_type(cfn, "AWS::SQS::Queue").items():
        target = (queue["Properties"].get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        assert target is None or getatt(target) != ("QuarantineQueue", "Arn"), name


def test_dlq_accepts_only_the_retry_queue(cfn: dict[str, Any]) -> None:
    allow = _queue(cfn, "RetryDeadLetterQueue")["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    retry_name = sub_template(_queue(cfn, "RetryQueue")["QueueName"])
    arns = [sub_template(a) for a in allow["sourceQueueArns"]]
    assert arns == [f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{retry_name}"]


# --- parameters and outputs ---------------------------------------------------------------------------


def _pattern(cfn: dict[str, Any], name: str) -> re.Pattern[str]:
    return re.compile(cfn["Parameters"][name]["AllowedPattern"])


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("SsmParameterPath", ["/dodo-customerio", "/a/b.c_d-e"], ["dodo", "/", "/a/", "//a", "/a b"]),
        (
            "CustomerioIdentifier",
            ["customer_id", "email", "metadata:crm.id"],
            ["", "phone", "metadata:", "Email"],
        ),
        ("CustomerioTrackUrl", ["", "https://track-eu.customer.io"], ["http://track.customer.io", "track"]),
        (
            "CustomerioPipelinesUrl",
            ["", "https://cdp-eu.customer.io/v1", "https://proxy.example.com/cio/v1"],
            ["http://cdp.customer.io/v1", "https://cdp.customer.io", "https://cdp.customer.io/v1/", "cdp"],
        ),
    ],
)
def test_parameter_patterns(cfn: dict[str, Any], name: str, good: list[str], bad: list[str]) -> None:
    pattern = _pattern(cfn, name)
    assert pattern.fullmatch(cfn["Parameters"][name]["Default"])
    assert [v for v in good if not pattern.fullmatch(v)] == []
    assert [v for v in bad if pattern.fullmatch(v)] == []


def test_parameter_defaults(cfn: dict[str, Any]) -> None:
    params = cfn["Parameters"]
    assert params["SsmParameterPath"]["Default"] == "/dodo-customerio"
    assert params["CustomerioRegion"]["AllowedValues"] == ["us", "eu"]
    assert params["CustomerioRegion"]["Default"] == "us"
    assert params["CustomerioTrackUrl"]["Default"] == ""
    assert params["CustomerioApi"]["AllowedValues"] == list(APIS) == ["track", "pipelines"]  # what config accepts
    assert params["CustomerioApi"]["Default"] == TRACK
    assert params["CustomerioPipelinesUrl"]["Default"] == ""
    assert params["CustomerioIdentifier"]["Default"] == "customer_id"
    # auto: chosen per identifier strategy (MappingConfig.contact_owner); the values config.py accepts
    assert params["CustomerioContactFields"]["Default"] == "auto"
    assert tuple(params["CustomerioContactFields"]["AllowedValues"]) == CONTACT_FIELDS_MODES
    assert int(params["ApiThrottlingRateLimit"]["Default"]) == 50
    assert int(params["ApiThrottlingBurstLimit"]["Default"]) == 100
    assert int(params["LogRetentionInDays"]["Default"]) == 30
    assert params["LogLevel"]["Default"] == "INFO"


def test_outputs(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    url = sub_template(outputs["WebhookUrl"]["Value"]) or ""
    assert url.startswith("https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}")
    assert url.endswith(WEBHOOK_PATH)
    assert outputs["RetryQueueUrl"]["Value"] == {"Ref": "RetryQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "RetryDeadLetterQueue"}
    assert outputs["QuarantineQueueUrl"]["Value"] == {"Ref": "QuarantineQueue"}
    assert outputs["QuarantineQueueArn"]["Value"] == {"Fn::GetAtt": ["QuarantineQueue", "Arn"]}
    assert outputs["IngestFunctionName"]["Value"] == {"Ref": "IngestFunction"}
    layer_id, _ = only_resource_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert outputs["BridgeLayerArn"]["Value"] == {"Ref": layer_id}


def test_state_table_keeps_idempotency_records_longer_than_dodo_retries(cfn) -> None:
    from dodo_cio.state.idempotency import EXPIRES_AFTER_SECONDS

    table = cfn["Resources"]["StateTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert EXPIRES_AFTER_SECONDS >= 48 * 3600  # Dodo retries for ~27.5 h; the issue asks for >= 48 h
    for name in ("IngestFunction", "RetryFunction"):
        env = cfn["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["STATE_TABLE_NAME"] == {"Ref": "StateTable"}


def test_state_table_outlives_a_stack_delete_a_replacement_and_a_delete_call(cfn) -> None:
    """The identity directory and the freshness records exist nowhere else (README "Uninstalling")."""
    table = cfn["Resources"]["StateTable"]
    assert table.get("DeletionPolicy") == "Retain"  # `sam delete` leaves it
    assert table.get("UpdateReplacePolicy") == "Retain"  # an update that replaces it leaves the old one
    props = table["Properties"]
    assert props.get("DeletionProtectionEnabled") is True  # DeleteTable is refused until it is turned off
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # No fixed name: a new stack of the same name creates its own table beside the retained one (the
    # README says so), instead of failing on a name that is taken.
    assert "TableName" not in props


def test_only_the_state_table_is_reachable_in_dynamodb(cfn) -> None:
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in policy_statements(resource):
            if any(a.startswith("dynamodb:") for a in as_list(statement["Action"])):
                assert statement["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
