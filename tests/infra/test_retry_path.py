"""The retry path in template.yaml: the retry function, its SQS event source, its role, and queue settings
that follow the backoff schedule in dodo_cio.delivery.backoff (the constants are imported, so the template is
checked against the code, not against numbers copied here).

Like test_template.py, this runs on the translated CloudFormation (see conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from dodo_cio.delivery.backoff import CAP_SECONDS, CONFIG_HORIZON_SECONDS, TRANSIENT_HORIZON_SECONDS
from infra.cfn import (
    getatt,
    only_resource_of_type,
    ref_name,
    role_of_function,
    sqs_grants,
)

# SQS limits: RedrivePolicy.maxReceiveCount is 1..1000; ScalingConfig.MaximumConcurrency is 2..1000.
SQS_MAX_RECEIVE_COUNT = 1000
MIN_MAXIMUM_CONCURRENCY = 2


def _retry(cfn: dict[str, Any]) -> dict[str, Any]:
    function = cfn["Resources"]["RetryFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    return function


def _queue(cfn: dict[str, Any], name: str) -> dict[str, Any]:
    queue = cfn["Resources"][name]
    assert queue["Type"] == "AWS::SQS::Queue"
    return queue["Properties"]


def _default(cfn: dict[str, Any], parameter: str) -> int:
    return int(cfn["Parameters"][parameter]["Default"])


@pytest.fixture
def esm(cfn: dict[str, Any]) -> dict[str, Any]:
    _, mapping = only_resource_of_type(cfn, "AWS::Lambda::EventSourceMapping")
    return mapping["Properties"]


@pytest.fixture
def retry_role(cfn: dict[str, Any]) -> dict[str, Any]:
    return role_of_function(cfn, _retry(cfn))[1]


# --- the function -------------------------------------------------------------------------------------


def test_retry_function_code_handler_timeout_and_layer(cfn: dict[str, Any], sam_template: dict[str, Any]) -> None:
    props = _retry(cfn)["Properties"]
    assert props["Handler"] == "app.lambda_handler"
    assert int(props["Timeout"]) == 30
    layer_id, _ = only_resource_of_type(cfn, "AWS::Lambda::LayerVersion")
    assert [ref_name(x) for x in props["Layers"]] == [layer_id]
    # The translator replaces CodeUri; sam build reads it from the SAM template.
    assert sam_template["Resources"]["RetryFunction"]["Properties"]["CodeUri"] == "functions/retry/"


def test_retry_function_has_no_reserved_concurrency(cfn: dict[str, Any]) -> None:
    # Reserved concurrency makes the SQS pollers over-pull; throttled receives would count towards
    # maxReceiveCount. The event source's MaximumConcurrency bounds the function instead.
    assert "ReservedConcurrentExecutions" not in _retry(cfn)["Properties"]


def test_retry_function_environment(cfn: dict[str, Any]) -> None:
    env = _retry(cfn)["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "dodo-customerio-bridge"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DodoCustomerioBridge"
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    own = {k: v for k, v in env.items() if not k.startswith("POWERTOOLS_")}
    assert own == {
        "SSM_PARAMETER_PATH": {"Ref": "SsmParameterPath"},
        "CUSTOMERIO_REGION": {"Ref": "CustomerioRegion"},
        "CUSTOMERIO_TRACK_URL": {"Ref": "CustomerioTrackUrl"},
        "CUSTOMERIO_API": {"Ref": "CustomerioApi"},
        "CUSTOMERIO_PIPELINES_URL": {"Ref": "CustomerioPipelinesUrl"},
        # The same mapping and identity settings as ingest: parked ops are resolved here too.
        "CUSTOMERIO_IDENTIFIER": {"Ref": "CustomerioIdentifier"},
        "CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID": {"Ref": "CustomerioSubscriptionObjectTypeId"},
        "CUSTOMERIO_PROFILE_METADATA": {"Ref": "CustomerioProfileMetadata"},
        "CUSTOMERIO_CONTACT_FIELDS": {"Ref": "CustomerioContactFields"},
        "DODO_API_MODE": {"Ref": "DodoApiMode"},
        "RETRY_QUEUE_URL": {"Ref": "RetryQueue"},  # Ref of a queue is its URL
        "DEAD_LETTER_QUEUE_URL": {"Ref": "RetryDeadLetterQueue"},
        "CUSTOMERIO_RATE_LIMIT_RPS": {"Ref": "CustomerioRequestsPerSecond"},
        "CUSTOMERIO_INGEST_SHARE": {"Ref": "CustomerioIngestShare"},  # the budget's split (dodo_cio.delivery.budget)
        "RETRY_MAX_CONCURRENCY": {"Ref": "RetryMaxConcurrency"},
        "STATE_TABLE_NAME": {"Ref": "StateTable"},
    }


def test_retry_function_logs_to_its_own_log_group(cfn: dict[str, Any]) -> None:
    retry_group = ref_name(_retry(cfn)["Properties"]["LoggingConfig"]["LogGroup"])
    ingest_group = ref_name(cfn["Resources"]["IngestFunction"]["Properties"]["LoggingConfig"]["LogGroup"])
    assert retry_group and retry_group != ingest_group
    group = cfn["Resources"][retry_group]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


# --- the event source ---------------------------------------------------------------------------------


def test_event_source_mapping_reads_the_retry_queue_into_the_retry_function(esm: dict[str, Any]) -> None:
    assert getatt(esm["EventSourceArn"]) == ("RetryQueue", "Arn")
    assert ref_name(esm["FunctionName"]) == "RetryFunctionAliaslive"  # the alias a gradual deploy shifts
    assert esm.get("Enabled", True) is True


def test_event_source_reports_batch_item_failures(esm: dict[str, Any]) -> None:
    # Without it, one message that must wait would send the whole batch back.
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_event_source_batching(cfn: dict[str, Any], esm: dict[str, Any]) -> None:
    assert esm["BatchSize"] == {"Ref": "RetryBatchSize"}
    param = cfn["Parameters"]["RetryBatchSize"]
    assert int(param["Default"]) == 50
    assert int(param["MinValue"]) >= 1
    assert int(param["MaxValue"]) <= 10000  # Lambda's limit for standard queues
    # Lambda requires a batching window for batches above 10; it must be set whatever the size chosen.
    assert int(param["MaxValue"]) > 10
    assert 1 <= int(esm["MaximumBatchingWindowInSeconds"]) <= 300
    assert int(esm["MaximumBatchingWindowInSeconds"]) == 5


def test_event_source_caps_concurrency_and_the_function_knows_the_cap(cfn: dict[str, Any], esm: dict[str, Any]) -> None:
    assert esm["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "RetryMaxConcurrency"}
    # Each container paces itself to CUSTOMERIO_RATE_LIMIT_RPS / RETRY_MAX_CONCURRENCY: same value.
    env = _retry(cfn)["Properties"]["Environment"]["Variables"]
    assert env["RETRY_MAX_CONCURRENCY"] == esm["ScalingConfig"]["MaximumConcurrency"]
    param = cfn["Parameters"]["RetryMaxConcurrency"]
    assert param["Type"] == "Number"
    assert int(param["Default"]) == 2
    assert int(param["MinValue"]) == MIN_MAXIMUM_CONCURRENCY
    assert int(param.get("MaxValue", 1000)) <= 1000


def test_rate_limit_parameter(cfn: dict[str, Any]) -> None:
    param = cfn["Parameters"]["CustomerioRequestsPerSecond"]
    assert param["Type"] == "Number"
    assert int(param["Default"]) == 100  # Customer.io's stated fair-use rate for the Track API
    assert int(param["MinValue"]) >= 1


# --- queue settings against the backoff schedule ------------------------------------------------------


def test_retry_function_timeout_fits_six_times_in_the_visibility_timeout(cfn: dict[str, Any]) -> None:
    timeout = int(_retry(cfn)["Properties"]["Timeout"])
    assert 6 * timeout <= int(_queue(cfn, "RetryQueue")["VisibilityTimeout"])


def test_retry_queue_keeps_messages_past_the_longest_horizon(cfn: dict[str, Any]) -> None:
    """Nothing may expire silently: the function must see the message after its horizon to dead-letter it.

    The last check before the horizon can schedule one more full-cap wait, then a receive that may
    take up to the visibility timeout. Retention counts from the enqueue time, which is never earlier
    than first_seen (the horizons' origin).
    """
    queue = _queue(cfn, "RetryQueue")
    retention = int(queue["MessageRetentionPeriod"])
    longest = max(CONFIG_HORIZON_SECONDS, TRANSIENT_HORIZON_SECONDS)
    assert retention > CONFIG_HORIZON_SECONDS
    assert retention >= longest + CAP_SECONDS + int(queue["VisibilityTimeout"])


def test_dlq_retention_exceeds_the_retry_queue_retention(cfn: dict[str, Any]) -> None:
    assert int(_queue(cfn, "RetryDeadLetterQueue")["MessageRetentionPeriod"]) > int(
        _queue(cfn, "RetryQueue")["MessageRetentionPeriod"]
    )


def test_horizons_are_reached_by_time_before_receives_run_out(cfn: dict[str, Any]) -> None:
    """maxReceiveCount is a backstop for poison messages, never the thing that ends a retry.

    Configuration errors wait the full cap every time, so reaching the 7-day horizon takes
    CONFIG_HORIZON_SECONDS / CAP_SECONDS receives (672). Transient waits are full jitter, uniform in
    [0, ceiling <= cap], so they average at most cap / 2: about 288 receives in 36 h.
    """
    max_receive = int(_queue(cfn, "RetryQueue")["RedrivePolicy"]["maxReceiveCount"])
    assert max_receive <= SQS_MAX_RECEIVE_COUNT
    config_receives = CONFIG_HORIZON_SECONDS / CAP_SECONDS
    transient_receives = TRANSIENT_HORIZON_SECONDS / (CAP_SECONDS / 2)
    assert config_receives == 672
    assert max_receive > config_receives
    assert max_receive > transient_receives
    # Margin: ~1.5x the configuration-error count, so processing-time drift cannot eat it.
    assert max_receive >= 1.4 * config_receives


# --- IAM (SSM, KMS, logs and managed policies of both roles: test_permissions.py) ----------------------


def test_retry_role_sqs_grants_are_exactly_its_two_queues(retry_role: dict[str, Any]) -> None:
    retry_queue = ("RetryQueue", "Arn")
    dlq = ("RetryDeadLetterQueue", "Arn")
    assert sqs_grants(retry_role) == {
        "sqs:ReceiveMessage": {retry_queue},
        "sqs:DeleteMessage": {retry_queue},
        "sqs:ChangeMessageVisibility": {retry_queue},
        "sqs:GetQueueAttributes": {retry_queue},
        "sqs:SendMessage": {retry_queue, dlq},  # re-parking; dead-lettering with the reason
    }
