"""Alarms, their SNS topic and the dashboard in template.yaml, on the translated CloudFormation.

Custom metrics are checked against the code: every name must be one the bridge emits, in the namespace
and with the `service` dimension Powertools derives from the functions' environment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from infra.cfn import REPO_ROOT, ref_name, resources_of_type, sub_template

CODE_DIRS = (REPO_ROOT / "layers/dodo_cio/dodo_cio", REPO_ROOT / "functions")


class Metric(NamedTuple):
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]


def _powertools(cfn: dict[str, Any]) -> tuple[str, str]:
    """(namespace, service) as Powertools will emit them (test_template pins both functions' environment)."""
    env = cfn["Resources"]["RetryFunction"]["Properties"]["Environment"]["Variables"]
    return env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]


def _custom(cfn: dict[str, Any], name: str) -> Metric:
    namespace, service = _powertools(cfn)
    return Metric(namespace, name, frozenset({("service", service)}))


def _dims(**dims: str) -> frozenset[tuple[str, str]]:
    return frozenset(dims.items())


INGEST_METRICS = (
    "WebhookReceived",
    "TransformError",
    "DeliveryDeferred",  # the container's Customer.io budget was spent (dodo_cio.delivery.budget)
    "CustomerioThrottled",
    "EmailChanged",
    "WebhookDelivered",
    "WebhookParked",
    "IgnoredEvent",
    "UnknownEventType",
    "InvalidSignature",
    "InvalidPayload",
    "WebhookQuarantined",
    "QuarantineFailed",
    "QuarantineReprocessed",
    "QuarantineStillInvalid",
)
RETRY_METRICS = ("RetryDelivered", "RetryScheduled", "RetryReparked", "DeadLettered", "RetryRequests")
# The queues whose messages nobody consumes automatically: SQS deletes them at the end of their retention.
KEPT_MESSAGE_QUEUES = ("RetryDeadLetterQueue", "QuarantineQueue")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


# --- SNS ----------------------------------------------------------------------------------------------


def test_alarm_topic_and_conditional_email_subscription(cfn: dict[str, Any]) -> None:
    assert cfn["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscriptions = resources_of_type(cfn, "AWS::SNS::Subscription")
    assert list(subscriptions) == ["AlarmEmailSubscription"]
    subscription = subscriptions["AlarmEmailSubscription"]
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    condition = subscription.get("Condition")
    assert condition, "the email subscription must only exist when AlarmEmail is set"
    assert cfn["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert cfn["Parameters"]["AlarmEmail"]["Default"] == ""


def test_alarm_topic_is_not_encrypted_with_the_aws_managed_sns_key(
    cfn: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    """CloudWatch cannot publish to a topic under alias/aws/sns: alarms would be dropped silently.

    Either a customer-managed key (whose policy lets cloudwatch.amazonaws.com use it) or no SSE-KMS with
    the checkov finding skipped and justified.
    """
    key = cfn["Resources"]["AlarmTopic"]["Properties"].get("KmsMasterKeyId")
    assert key != "alias/aws/sns"
    if key is None:
        skips = sam_template["Resources"]["AlarmTopic"]["Metadata"]["checkov"]["skip"]
        assert any(s["id"] == "CKV_AWS_26" and "CloudWatch" in s["comment"] for s in skips)


# --- alarms -------------------------------------------------------------------------------------------


def _alarms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Single-metric alarms; metric-math ones (the retry backlog) have their own test."""
    return {
        name: res["Properties"]
        for name, res in resources_of_type(cfn, "AWS::CloudWatch::Alarm").items()
        if "MetricName" in res["Properties"]
    }


def _alarm_metric(props: dict[str, Any]) -> Metric:
    # Values that reference a resource (Ref, GetAtt) are compared by its logical id.
    dims = frozenset((d["Name"], ref_name(d["Value"]) or d["Value"]) for d in props.get("Dimensions", []))
    return Metric(props["Namespace"], props["MetricName"], dims)


def _find_alarm(cfn: dict[str, Any], metric: Metric) -> dict[str, Any]:
    found = [props for props in _alarms(cfn).values() if _alarm_metric(props) == metric]
    assert len(found) == 1, f"expected one alarm on {metric}, found {len(found)}"
    return found[0]


def _sqs(metric: str, queue: str) -> Metric:
    return Metric("AWS/SQS", metric, _dims(QueueName=queue))


def _expected_alarms(cfn: dict[str, Any]) -> list[tuple[Metric, str, Any]]:
    """(metric, statistic, threshold) of every alarm the bridge must have; dimensions name logical ids."""
    return [
        # Anything on the DLQ or the quarantine queue (signed webhooks) is something nobody has looked at yet.
        *((_sqs("ApproximateNumberOfMessagesVisible", queue), "Maximum", 0) for queue in KEPT_MESSAGE_QUEUES),
        # The not-empty alarms notify once, when their queue stops being empty; these fire on every 5 minutes
        # in which something arrived, so a second message is not met by silence.
        *((_sqs("NumberOfMessagesSent", queue), "Sum", 0) for queue in KEPT_MESSAGE_QUEUES),
        (_sqs("ApproximateAgeOfOldestMessage", "RetryQueue"), "Maximum", {"Ref": "OldestMessageAgeAlarmSeconds"}),
        *(
            (Metric("AWS/Lambda", metric, _dims(FunctionName=fn)), "Sum", 0)
            for fn in ("IngestFunction", "RetryFunction")
            for metric in ("Errors", "Throttles")
        ),
        # HTTP APIs publish 4xx/5xx (REST APIs: 4XXError/5XXError), dimensions ApiId or ApiId+Stage.
        (Metric("AWS/ApiGateway", "5xx", _dims(ApiId="WebhookApi")), "Sum", 0),
        (_custom(cfn, "InvalidSignature"), "Sum", {"Ref": "InvalidSignatureAlarmThreshold"}),
        (_custom(cfn, "ConfigError"), "Sum", 0),
        # Verified webhooks of a type the mapping does not handle: kept on the quarantine queue, not delivered.
        (_custom(cfn, "UnknownEventType"), "Sum", 0),
        # Customer.io refused an email change on a person addressed by id: dead-lettered until the setting is on.
        (_custom(cfn, "EmailChangeRefused"), "Sum", 0),
        # The mapping (a customize.py transform) raised: answered 500; also rolls a deploy back.
        (_custom(cfn, "TransformError"), "Sum", 0),
    ]


def test_every_expected_alarm_exists_with_its_metric_statistic_threshold_and_dimensions(cfn: dict[str, Any]) -> None:
    """SQS alarms need the queue *name* (GetAtt QueueName; Ref is the URL); Lambda and API need Ref."""
    for metric, statistic, threshold in _expected_alarms(cfn):
        props = _find_alarm(cfn, metric)
        assert props["Statistic"] == statistic, metric
        assert props["ComparisonOperator"] == "GreaterThanThreshold", metric
        assert props["Threshold"] == threshold, metric
        assert int(props["Period"]) == 300, metric
        assert int(props["EvaluationPeriods"]) == 1, metric
        for dim in props["Dimensions"]:
            value = dim["Value"]
            if dim["Name"] == "QueueName":
                assert value == {"Fn::GetAtt": [ref_name(value), "QueueName"]}, value
            elif dim["Name"] in ("FunctionName", "ApiId"):
                assert set(value) == {"Ref"}, value
    assert len(_alarms(cfn)) == len(_expected_alarms(cfn))


def test_every_alarm_notifies_the_topic_and_explains_itself(cfn: dict[str, Any]) -> None:
    alarms = {name: res["Properties"] for name, res in resources_of_type(cfn, "AWS::CloudWatch::Alarm").items()}
    assert len(alarms) > len(_alarms(cfn)), "metric-math alarms are checked here too"
    headings = set(re.findall(r"^#+ (.+)$", README, re.M))
    for name, props in alarms.items():
        assert props["AlarmActions"] == props["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", name
        description = props.get("AlarmDescription", "")
        assert 80 <= len(description) <= 1024, name  # what it means and what to do; CloudWatch's limit
        for title in re.findall(r'README "([^"]+)"', description):
            assert title in headings, (name, title)


def test_alarm_parameters(cfn: dict[str, Any]) -> None:
    from dodo_cio.delivery.backoff import CAP_SECONDS

    params = cfn["Parameters"]
    assert int(params["OldestMessageAgeAlarmSeconds"]["Default"]) == 3600
    # Below the backoff cap, the age alarm would fire on ordinary retries.
    assert int(params["OldestMessageAgeAlarmSeconds"]["MinValue"]) >= CAP_SECONDS
    assert int(params["InvalidSignatureAlarmThreshold"]["Default"]) == 20
    kept = params["KeptMessageAgeAlarmDays"]
    assert kept["Type"] == "Number" and int(kept["Default"]) == 7
    retention = min(int(cfn["Resources"][q]["Properties"]["MessageRetentionPeriod"]) for q in KEPT_MESSAGE_QUEUES)
    assert retention == 14 * 86400  # the SQS maximum; the README's "day 14"
    assert 1 <= int(kept["MinValue"]) <= int(kept["Default"]) <= int(kept["MaxValue"])
    assert int(kept["MaxValue"]) < 14  # at least a day left before SQS deletes, whatever is deployed
    assert int(kept["Default"]) <= 14 / 2  # "well before": half the retention left by default


def test_a_backlog_waiting_an_hour_raises_an_alarm(cfn: dict[str, Any]) -> None:
    """Retried messages drop out of ApproximateAgeOfOldestMessage, so a long outage needs its own alarm."""
    alarm = cfn["Resources"]["RetryBacklogAlarm"]["Properties"]
    stats = [q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q]
    names = {s["Metric"]["MetricName"] for s in stats}
    assert names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"}
    for stat in stats:
        assert stat["Metric"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["RetryQueue", "QueueName"]}
    assert alarm["EvaluationPeriods"] * stats[0]["Period"] == 3600
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]


# --- nothing expires unseen: the dead-letter and quarantine queues ------------------------------------


def _math_alarm_on(cfn: dict[str, Any], metric_name: str, queue: str) -> dict[str, Any]:
    """The one metric-math alarm whose (only) metric is `metric_name` of `queue`."""
    found = []
    for resource in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values():
        props = resource["Properties"]
        stats = [q["MetricStat"] for q in props.get("Metrics", []) if "MetricStat" in q]
        if any(
            s["Metric"]["MetricName"] == metric_name
            and s["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
            for s in stats
        ):
            assert len(stats) == 1, props
            found.append(props)
    assert len(found) == 1, f"expected one alarm on {metric_name} of {queue}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("queue", KEPT_MESSAGE_QUEUES)
def test_kept_message_queues_alarm_on_their_oldest_message_in_days(cfn: dict[str, Any], queue: str) -> None:
    alarm = _math_alarm_on(cfn, "ApproximateAgeOfOldestMessage", queue)
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    (stat_id,) = [i for i, q in queries.items() if "MetricStat" in q]
    (expression,) = [q for q in queries.values() if "Expression" in q]
    assert queries[stat_id]["ReturnData"] is False and expression.get("ReturnData", True) is True
    assert queries[stat_id]["MetricStat"]["Stat"] == "Maximum"
    # The metric is in seconds, the threshold in days.
    assert expression["Expression"].replace(" ", "") == f"{stat_id}/86400"
    assert alarm["Threshold"] == {"Ref": "KeptMessageAgeAlarmDays"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert int(alarm["EvaluationPeriods"]) == 1 and int(queries[stat_id]["MetricStat"]["Period"]) == 300


def _alarm_on(cfn: dict[str, Any], metric: str, queue: str | None) -> dict[str, Any]:
    if queue is None:
        return _find_alarm(cfn, _custom(cfn, metric))
    if metric == "ApproximateAgeOfOldestMessage":
        return _math_alarm_on(cfn, metric, queue)
    return _find_alarm(cfn, _sqs(metric, queue))


DAY_14 = ['README "What happens on day 14"', "14 days", "KeptMessageAgeAlarmDays", "`dodo-cio dlq"]


@pytest.mark.parametrize(
    ("metric", "queue", "name", "says"),
    [
        # Not-empty stays raised while anything is there; arrival notifies again for each new burst.
        ("ApproximateNumberOfMessagesVisible", "RetryDeadLetterQueue", "dlq-not-empty", []),
        # SQS leaves messages its redrive policy moves out of the DLQ's NumberOfMessagesSent.
        ("NumberOfMessagesSent", "RetryDeadLetterQueue", "dlq-arrival", ["{max_receives} receives", "retry-errors"]),
        ("ApproximateNumberOfMessagesVisible", "QuarantineQueue", "quarantine-not-empty", []),
        ("NumberOfMessagesSent", "QuarantineQueue", "quarantine-arrival", []),
        ("ApproximateAgeOfOldestMessage", "RetryDeadLetterQueue", "dlq-expiring", [*DAY_14, "`dodo-cio redrive"]),
        ("ApproximateAgeOfOldestMessage", "QuarantineQueue", "quarantine-expiring", [*DAY_14, "`dodo-cio reprocess"]),
        (
            "UnknownEventType",
            None,
            "unknown-event-type",
            ['README "Mapping a new Dodo event type"', "`dodo-cio reprocess"],
        ),
        (
            "EmailChangeRefused",
            None,
            "email-change-refused",
            ['"{email_setting}"', "`dodo-cio redrive", 'README "One person per Dodo customer"'],
        ),
    ],
)
def test_alarm_names_and_their_runbook_steps(
    cfn: dict[str, Any], metric: str, queue: str | None, name: str, says: list[str]
) -> None:
    from dodo_cio.delivery.track import EMAIL_BY_ID_SETTING

    alarm = _alarm_on(cfn, metric, queue)
    assert sub_template(alarm["AlarmName"]) == f"${{AWS::StackName}}-{name}"
    max_receives = cfn["Resources"]["RetryQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    for text in says:
        assert text.format(max_receives=max_receives, email_setting=EMAIL_BY_ID_SETTING) in alarm["AlarmDescription"]
    assert EMAIL_BY_ID_SETTING in README  # the setting that alarm names is explained


# --- dashboard ----------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}!][^}]*)\}")


def _dashboard_body(cfn: dict[str, Any]) -> str:
    _, dashboard = next(iter(resources_of_type(cfn, "AWS::CloudWatch::Dashboard").items()))
    body = sub_template(dashboard["Properties"]["DashboardBody"])
    assert body is not None, "DashboardBody must be a string or an Fn::Sub of one"
    return body


def _substitute(cfn: dict[str, Any], body: str) -> str:
    """Replace each ${...} by a sample value: a parameter's default, or the placeholder's own name."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        base = name.split(".", 1)[0]
        if base in cfn["Parameters"]:
            return str(cfn["Parameters"][base]["Default"])
        assert name.startswith("AWS::") or base in cfn["Resources"], f"unknown placeholder ${{{name}}}"
        return name.replace(":", "_")

    return _PLACEHOLDER.sub(value, body)


@pytest.fixture
def dashboard(cfn: dict[str, Any]) -> dict[str, Any]:
    assert len(resources_of_type(cfn, "AWS::CloudWatch::Dashboard")) == 1
    return json.loads(_substitute(cfn, _dashboard_body(cfn)))


def _dashboard_metrics(dashboard: dict[str, Any]) -> set[Metric]:
    found: set[Metric] = set()
    for widget in dashboard["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            fields = [f for f in row if not isinstance(f, dict)]  # a trailing dict holds render options
            assert "..." not in fields and len(fields) % 2 == 0, f"write metric rows out in full: {row}"
            namespace, name, *dims = fields
            found.add(Metric(namespace, name, frozenset(zip(dims[::2], dims[1::2], strict=True))))
    return found


def test_dashboard_widgets_are_complete_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    assert dashboard["widgets"]
    cells: dict[tuple[int, int], str] = {}
    for widget in dashboard["widgets"]:
        assert {"type", "x", "y", "width", "height", "properties"} <= widget.keys()
        if widget["type"] != "alarm":  # an alarm status widget names its alarms by ARN, which holds the region
            assert widget["properties"]["region"] == "AWS__Region"
        title = widget["properties"].get("title", widget["type"])
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24, title
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, (title, cells.get((x, y)))
                cells[(x, y)] = title


def test_dashboard_shows_every_custom_metric_queue_function_and_the_api(
    cfn: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    expected = [_custom(cfn, m) for m in (*INGEST_METRICS, *RETRY_METRICS)]
    expected += [
        _sqs(metric, f"{queue}.QueueName")
        for queue in ("RetryQueue", "RetryDeadLetterQueue", "QuarantineQueue")
        for metric in (
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateAgeOfOldestMessage",
        )
    ]
    expected += [
        Metric("AWS/Lambda", metric, _dims(FunctionName=fn))
        for fn in ("IngestFunction", "RetryFunction")
        for metric in ("Errors", "Throttles", "Duration", "ConcurrentExecutions")
    ]
    expected += [
        Metric("AWS/ApiGateway", metric, _dims(ApiId="WebhookApi")) for metric in ("Count", "4xx", "5xx", "Latency")
    ]
    shown = _dashboard_metrics(dashboard)
    assert [m for m in expected if m not in shown] == []


def test_one_widget_shows_the_quarantine_depth_beside_the_quarantined_count(
    cfn: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    depth = _sqs("ApproximateNumberOfMessagesVisible", "QuarantineQueue.QueueName")
    count = _custom(cfn, "WebhookQuarantined")
    widgets = [w for w in dashboard["widgets"] if {depth, count} <= _dashboard_metrics({"widgets": [w]})]
    assert len(widgets) == 1
    # A count per period is a Sum; the widget's default stat (Maximum, for the depth) would hide bursts.
    (row,) = [r for r in widgets[0]["properties"]["metrics"] if r[1] == "WebhookQuarantined"]
    assert isinstance(row[-1], dict) and row[-1]["stat"] == "Sum"


def test_dashboard_marks_the_concurrency_limits_and_reads_both_function_log_groups(cfn: dict[str, Any]) -> None:
    body = _dashboard_body(cfn)
    assert '"value": ${IngestReservedConcurrency}' in body
    assert '"value": ${RetryMaxConcurrency}' in body
    for function in ("IngestFunction", "RetryFunction"):
        group = ref_name(cfn["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"])
        assert f"SOURCE '${{{group}}}'" in body, function  # the error log widget


def test_custom_metrics_on_dashboard_and_alarms_are_emitted_by_the_code(
    cfn: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    namespace, _ = _powertools(cfn)
    names = {m.name for m in _dashboard_metrics(dashboard) if m.namespace == namespace}
    names |= {p["MetricName"] for p in _alarms(cfn).values() if p["Namespace"] == namespace}
    code = "\n".join(p.read_text(encoding="utf-8") for d in CODE_DIRS for p in Path(d).rglob("*.py"))
    # Every name appears in the code as a string literal (add_metric / _count / the verdict table).
    assert sorted(n for n in names if f'"{n}"' not in code) == []
    # And every custom metric on the dashboard carries exactly the service dimension.
    for metric in _dashboard_metrics(dashboard):
        if metric.namespace == namespace:
            assert metric == _custom(cfn, metric.name), metric


def test_the_dashboard_shows_every_alarms_state(cfn: dict[str, Any], dashboard: dict[str, Any]) -> None:
    """A raised alarm notifies only when its state changes: the dashboard shows which are raised now."""
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert widget["y"] == 0 and widget["width"] == 24  # at the top, across the page
    shown = widget["properties"]["alarms"]
    alarms = sorted(resources_of_type(cfn, "AWS::CloudWatch::Alarm"))
    assert sorted(shown) == sorted(f"{name}.Arn" for name in alarms)  # `_substitute` keeps the placeholder's name
    assert widget["properties"]["sortBy"] == "stateUpdatedTimestamp"  # ALARM first
