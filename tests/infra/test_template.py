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

from dodo_cio.delivery.backoff import CAP_SECONDS, CONFIG_HORIZON_SECONDS, TRANSIENT_HORIZON_SECONDS
from dodo_cio.delivery.destination import APIS, TRACK
from dodo_cio.mapping.mapper import CONTACT_FIELDS_MODES
from infra.cfn import (
    REPO_ROOT,
    TEMPLATE_PATH,
    as_list,
    getatt,
    only_resource_of_type,
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


def _ingest(cfn: dict[str, Any]) -> dict[str, Any]:
    return cfn["Resources"]["IngestFunction"]


# --- lint ---------------------------------------------------------------------------------------------


# Findings on one path of the translated template, each with its reason.
CFN_LINT_RESOLVED_BY_SAM = {
    # SAM resolves DeploymentPreference.Type from this parameter while it transforms the template (here with
    # the default; in CloudFormation with the value deployed), so the translated template no longer names it.
    ("W2001", ("Parameters", "DeploymentType")),
}


def test_cfn_lint_is_clean_on_the_template_and_its_translation(translated_path: Path) -> None:
    findings = _cfn_lint(TEMPLATE_PATH) + [
        f
        for f in _cfn_lint(translated_path, *CFN_LINT_IGNORED)
        if (f["Rule"]["Id"], tuple(f["Location"]["Path"])) not in CFN_LINT_RESOLVED_BY_SAM
    ]
    # cfn-lint's JSON: Rule.Id, Location.Path, Message
    assert findings == [], "\n".join(f"{f['Rule']['Id']} {f['Location']['Path']}: {f['Message']}" for f in findings)


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


def test_checkov_passes_with_every_skip_justified_and_used(sam_template: dict[str, Any], translated_path: Path) -> None:
    """On template.yaml, as `make scan` runs it, and on the translation: only there does checkov see the generated
    role's policies."""
    results = _checkov(Path("template.yaml"))
    translated = _checkov(translated_path)
    both = (results, translated)
    assert [f"{c['check_id']} {c['resource']}: {c['check_name']}" for r in both for c in r["failed_checks"]] == []
    assert len(translated["passed_checks"]) > len(translated["skipped_checks"])
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for r in both
        for c in r["skipped_checks"]
        # checkov fills in "No comment provided" when a skip has no comment.
        if not str(c["check_result"].get("suppress_comment", "")).strip()
        or c["check_result"]["suppress_comment"] == "No comment provided"
    ]
    assert unjustified == []
    # A skip for a check that does not run on that resource is dead text: remove it.
    declared = {
        (name, skip["id"])
        for name, res in sam_template["Resources"].items()
        for skip in (res.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    }
    assert declared - {(c["resource"].split(".")[-1], c["check_id"]) for c in results["skipped_checks"]} == set()


# --- functions and layer ------------------------------------------------------------------------------

POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME": "dodo-customerio-bridge",
    "POWERTOOLS_METRICS_NAMESPACE": "DodoCustomerioBridge",
    "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
}
# Both functions deliver and resolve parked ops under the same mapping, identity and budget settings.
SHARED_ENV = {
    **POWERTOOLS_ENV,
    **{
        name: {"Ref": parameter}
        for name, parameter in (
            ("SSM_PARAMETER_PATH", "SsmParameterPath"),
            ("CUSTOMERIO_REGION", "CustomerioRegion"),
            ("CUSTOMERIO_TRACK_URL", "CustomerioTrackUrl"),
            ("CUSTOMERIO_API", "CustomerioApi"),
            ("CUSTOMERIO_PIPELINES_URL", "CustomerioPipelinesUrl"),
            ("CUSTOMERIO_IDENTIFIER", "CustomerioIdentifier"),
            ("CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID", "CustomerioSubscriptionObjectTypeId"),
            ("CUSTOMERIO_PROFILE_METADATA", "CustomerioProfileMetadata"),
            ("CUSTOMERIO_CONTACT_FIELDS", "CustomerioContactFields"),
            ("DODO_API_MODE", "DodoApiMode"),
            ("RETRY_QUEUE_URL", "RetryQueue"),  # Ref of a queue is its URL
            ("DEAD_LETTER_QUEUE_URL", "RetryDeadLetterQueue"),
            ("STATE_TABLE_NAME", "StateTable"),
            # The budget's split (dodo_cio.delivery.budget): RPS x share / containers.
            ("CUSTOMERIO_RATE_LIMIT_RPS", "CustomerioRequestsPerSecond"),
            ("CUSTOMERIO_INGEST_SHARE", "CustomerioIngestShare"),
        )
    },
}


@pytest.mark.parametrize(
    ("function", "own_env"),
    [
        pytest.param(
            "IngestFunction",
            {
                # Only ingest knows the quarantine queue: the retry function must never see quarantined webhooks.
                "QUARANTINE_QUEUE_URL": {"Ref": "QuarantineQueue"},
                "INGEST_MAX_CONCURRENCY": {"Ref": "IngestReservedConcurrency"},
                "API_BURST_LIMIT": {"Ref": "ApiThrottlingBurstLimit"},
                "RECEIPT_DAYS": {"Ref": "ReceiptRetentionDays"},
            },
            id="ingest",
        ),
        # Each container paces itself to RPS / RETRY_MAX_CONCURRENCY: the event source's MaximumConcurrency.
        pytest.param("RetryFunction", {"RETRY_MAX_CONCURRENCY": {"Ref": "RetryMaxConcurrency"}}, id="retry"),
    ],
)
def test_function_environment(cfn: dict[str, Any], function: str, own_env: dict[str, Any]) -> None:
    assert cfn["Resources"][function]["Properties"]["Environment"]["Variables"] == {**SHARED_ENV, **own_env}


def test_functions_and_layer_are_built_for_the_lambda_platform_and_trace_as_the_parameter_says(
    cfn: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    layer_id, layer = only_resource_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer.get("DeletionPolicy") == "Delete"  # SAM's RetentionPolicy: Delete
    # Build metadata lives only in the SAM template (the translator drops it); sam build reads it there.
    sam_layer = sam_template["Resources"]["BridgeLayer"]
    assert sam_layer["Properties"]["ContentUri"] == "layers/dodo_cio"
    assert sam_layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    # The makefile builds for the Lambda platform (arm64 wheels, CPython 3.13) and ships bytecode
    # that is used without checking file times (a zip does not keep them exactly).
    makefile = (REPO_ROOT / "layers/dodo_cio/Makefile").read_text()
    assert "build-BridgeLayer:" in makefile
    assert "--platform manylinux2014_aarch64" in makefile and "--python-version 3.13" in makefile
    assert "--invalidation-mode unchecked-hash" in makefile
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert sorted(functions) == ["IngestFunction", "RetryFunction"]
    for name, folder in (("IngestFunction", "ingest"), ("RetryFunction", "retry")):
        props = functions[name]["Properties"]
        assert (props["Runtime"], props["Architectures"]) == ("python3.13", ["arm64"]), name
        assert props.get("TracingConfig") == {"Mode": {"Ref": "TracingMode"}}, name
        assert props["Handler"] == "app.lambda_handler", name
        assert [ref_name(x) for x in props["Layers"]] == [layer_id], name
        assert sam_template["Resources"][name]["Properties"]["CodeUri"] == f"functions/{folder}/"
        assert sam_template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile"
        function_makefile = (REPO_ROOT / "functions" / folder / "Makefile").read_text()
        assert f"build-{name}:" in function_makefile and "unchecked-hash" in function_makefile


def test_function_timeouts_and_concurrency(cfn: dict[str, Any]) -> None:
    assert _ingest(cfn)["Properties"]["Timeout"] < 15  # Dodo waits 15 s for the response
    retry = cfn["Resources"]["RetryFunction"]["Properties"]
    assert int(retry["Timeout"]) == 30
    # Lambda's SQS guidance; Lambda also refuses an event source whose function timeout exceeds it.
    assert int(_queue(cfn, "RetryQueue")["VisibilityTimeout"]) >= 6 * int(retry["Timeout"])
    # Reserved concurrency makes the SQS pollers over-pull; throttled receives would count towards
    # maxReceiveCount. The event source's MaximumConcurrency bounds the function instead.
    assert "ReservedConcurrentExecutions" not in retry


def test_every_log_group_has_retention(cfn: dict[str, Any]) -> None:
    groups = resources_of_type(cfn, "AWS::Logs::LogGroup")
    assert len(groups) >= 3  # the API's access log, the ingest function's and the retry function's
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionInDays"}, name


# --- HTTP API -----------------------------------------------------------------------------------------


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


def test_http_api_routes_post_webhooks_dodo_to_ingest_with_throttling_and_a_json_access_log(
    cfn: dict[str, Any],
) -> None:
    api_id, api = only_resource_of_type(cfn, "AWS::ApiGatewayV2::Api")
    assert api_id == "WebhookApi"
    paths = api["Properties"]["Body"]["paths"]
    assert list(paths) == [WEBHOOK_PATH]
    assert list(paths[WEBHOOK_PATH]) == ["post"]
    uri = sub_template(paths[WEBHOOK_PATH]["post"]["x-amazon-apigateway-integration"]["uri"]) or ""
    assert "${IngestFunctionAliaslive}" in uri  # the alias a gradual deploy shifts (README "Deploys that roll back")
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


# --- the retry queue feeding the retry function, against the backoff schedule ---------------------------


def _queue(cfn: dict[str, Any], name: str) -> dict[str, Any]:
    queue = cfn["Resources"][name]
    assert queue["Type"] == "AWS::SQS::Queue"
    return queue["Properties"]


def test_the_retry_queue_feeds_the_retry_function_in_batches(cfn: dict[str, Any]) -> None:
    _, mapping = only_resource_of_type(cfn, "AWS::Lambda::EventSourceMapping")  # none reads the quarantine
    esm = mapping["Properties"]
    assert getatt(esm["EventSourceArn"]) == ("RetryQueue", "Arn")
    assert ref_name(esm["FunctionName"]) == "RetryFunctionAliaslive"  # the alias a gradual deploy shifts
    assert esm.get("Enabled", True) is True
    # Without it, one message that must wait would send the whole batch back.
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BatchSize"] == {"Ref": "RetryBatchSize"}
    assert int(esm["MaximumBatchingWindowInSeconds"]) == 5  # Lambda requires a window for batches above 10
    assert esm["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "RetryMaxConcurrency"}


def test_retry_queue_keeps_messages_past_the_longest_horizon(cfn: dict[str, Any]) -> None:
    """Nothing may expire silently: the function must see the message after its horizon to dead-letter it.

    The last check before the horizon can schedule one more full-cap wait, then a receive that may
    take up to the visibility timeout. Retention counts from the enqueue time, which is never earlier
    than first_seen (the horizons' origin).
    """
    queue = _queue(cfn, "RetryQueue")
    retention = int(queue["MessageRetentionPeriod"])
    longest = max(CONFIG_HORIZON_SECONDS, TRANSIENT_HORIZON_SECONDS)
    assert retention >= longest + CAP_SECONDS + int(queue["VisibilityTimeout"])
    # A message moved to a DLQ keeps its original enqueue time, so equal retention would expire it at once.
    assert int(_queue(cfn, "RetryDeadLetterQueue")["MessageRetentionPeriod"]) > retention


def test_horizons_are_reached_by_time_before_receives_run_out(cfn: dict[str, Any]) -> None:
    """maxReceiveCount is a backstop for poison messages, never the thing that ends a retry.

    Configuration errors wait the full cap every time, so reaching the 7-day horizon takes
    CONFIG_HORIZON_SECONDS / CAP_SECONDS receives (672). Transient waits are full jitter, uniform in
    [0, ceiling <= cap], so they average at most cap / 2: about 288 receives in 36 h.
    """
    redrive = _queue(cfn, "RetryQueue")["RedrivePolicy"]
    assert getatt(redrive["deadLetterTargetArn"]) == ("RetryDeadLetterQueue", "Arn")
    max_receive = int(redrive["maxReceiveCount"])
    assert max_receive <= 1000  # SQS's limit
    config_receives = CONFIG_HORIZON_SECONDS / CAP_SECONDS
    assert config_receives == 672
    assert max_receive > TRANSIENT_HORIZON_SECONDS / (CAP_SECONDS / 2)
    # Margin: ~1.5x the configuration-error count, so processing-time drift cannot eat it.
    assert max_receive >= 1.4 * config_receives


# --- queues -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RetryQueue", "RetryDeadLetterQueue", "QuarantineQueue"])
def test_queues_are_encrypted(cfn: dict[str, Any], name: str) -> None:
    props = _queue(cfn, name)
    assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId")


def test_quarantine_queue_keeps_whole_webhooks_for_the_longest_time(cfn: dict[str, Any]) -> None:
    from dodo_cio.ingest.service import MAX_BODY_BYTES

    props = _queue(cfn, "QuarantineQueue")
    assert int(props["MessageRetentionPeriod"]) == 14 * 24 * 3600  # the SQS maximum
    # The largest body the endpoint accepts must fit once escaped into the JSON message with its headers
    # and error. Inside valid JSON only '"' and '\\' need escaping again, so a body at most doubles;
    # SQS allows 1 MiB (1,048,576 bytes) since 2025, the old 256 KiB limit would not hold it.
    assert int(props["MaximumMessageSize"]) == 1048576
    assert int(props["MaximumMessageSize"]) >= 2 * MAX_BODY_BYTES + 16 * 1024


def test_only_the_retry_queue_redrives_and_only_to_the_dlq(cfn: dict[str, Any]) -> None:
    """The quarantine queue's messages are not parked deliveries: never the retry function's or the DLQ's."""
    props = _queue(cfn, "QuarantineQueue")
    assert "RedrivePolicy" not in props
    assert props["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}
    for name, queue in resources_of_type(cfn, "AWS::SQS::Queue").items():
        target = (queue["Properties"].get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        assert target is None or getatt(target) != ("QuarantineQueue", "Arn"), name
    allow = _queue(cfn, "RetryDeadLetterQueue")["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    retry_name = sub_template(_queue(cfn, "RetryQueue")["QueueName"])
    arns = [sub_template(a) for a in allow["sourceQueueArns"]]
    assert arns == [f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{retry_name}"]


# --- parameters and outputs ---------------------------------------------------------------------------


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
        ("AlarmEmail", ["", "ops@example.com", "a.b+alerts@sub.example.co"], ["ops", "ops@example", "a b@example.com"]),
        (
            "CustomerioPipelinesUrl",
            ["", "https://cdp-eu.customer.io/v1", "https://proxy.example.com/cio/v1"],
            ["http://cdp.customer.io/v1", "https://cdp.customer.io", "https://cdp.customer.io/v1/", "cdp"],
        ),
    ],
)
def test_parameter_patterns(cfn: dict[str, Any], name: str, good: list[str], bad: list[str]) -> None:
    pattern = re.compile(cfn["Parameters"][name]["AllowedPattern"])
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
    batch = params["RetryBatchSize"]
    concurrency = params["RetryMaxConcurrency"]
    assert int(batch["Default"]) == 50 and int(batch["MinValue"]) >= 1
    assert 10 < int(batch["MaxValue"]) <= 10000  # Lambda's limit for standard queues; the window is always set
    assert concurrency["Type"] == "Number" and int(concurrency["Default"]) == 2
    assert int(concurrency["MinValue"]) == 2 and int(concurrency.get("MaxValue", 1000)) <= 1000  # SQS: 2..1000
    rate = params["CustomerioRequestsPerSecond"]
    assert rate["Type"] == "Number" and int(rate["MinValue"]) >= 1
    assert int(rate["Default"]) == 100  # Customer.io's stated fair-use rate for the Track API
    tracing = params["TracingMode"]
    assert (tracing["Type"], tracing["AllowedValues"]) == ("String", ["Active", "PassThrough"])
    assert tracing["Default"] == "PassThrough", "X-Ray was the largest line of the cost: operators opt in"


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
    assert outputs["RetryFunctionName"]["Value"] == {"Ref": "RetryFunction"}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}  # Ref of a topic is its ARN
    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    layer_id, _ = only_resource_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert outputs["BridgeLayerArn"]["Value"] == {"Ref": layer_id}


def test_state_table_keeps_idempotency_records_and_outlives_a_stack_delete_a_replacement_and_a_delete_call(
    cfn: dict[str, Any],
) -> None:
    """The identity directory and the freshness records exist nowhere else (README "Uninstalling")."""
    from dodo_cio.state.idempotency import EXPIRES_AFTER_SECONDS

    assert EXPIRES_AFTER_SECONDS >= 48 * 3600  # Dodo retries for ~27.5 h; the issue asks for >= 48 h
    table = cfn["Resources"]["StateTable"]
    assert table.get("DeletionPolicy") == "Retain"  # `sam delete` leaves it
    assert table.get("UpdateReplacePolicy") == "Retain"  # an update that replaces it leaves the old one
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props.get("DeletionProtectionEnabled") is True  # DeleteTable is refused until it is turned off
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # No fixed name: a new stack of the same name creates its own table beside the retained one (the
    # README says so), instead of failing on a name that is taken.
    assert "TableName" not in props
