"""Least privilege in template.yaml: what each function may read, decrypt, log to and send to, and the
ingest function's reserved concurrency. On the translated CloudFormation (see conftest.py).

The parameter lists are checked against what dodo_cio.configuration.settings actually fetches, so a secret the code
starts reading (or stops reading) fails here until the template follows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

import pytest

from dodo_cio.configuration.settings import SecretStore, Settings
from dodo_cio.platform.env import ConfigError
from infra.cfn import (
    as_list,
    parameter_names,
    policy_statements,
    ref_name,
    resources_of_type,
    role_of_function,
    sqs_grants,
    statement_resources,
    statements_with_action,
    sub_template,
)

FUNCTIONS = [("IngestFunction", "IngestFunctionRole"), ("RetryFunction", "RetryFunctionRole")]
PARAMETER_ARN_KEY = "kms:EncryptionContext:PARAMETER_ARN"


def _role(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    return role_of_function(cfn, cfn["Resources"][function])[1]


def _roles(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    roles = resources_of_type(cfn, "AWS::IAM::Role")
    assert {"IngestFunctionRole", "RetryFunctionRole"} <= roles.keys()
    return roles


def _reads_parameters(stmt: dict[str, Any]) -> bool:
    return any(str(a).lower().startswith(("ssm:", "kms:")) for a in as_list(stmt["Action"]))


# --- SSM parameters and their KMS decrypts ------------------------------------------------------------


def _names_fetched(calls: list[str], api: str) -> set[str]:
    """The SSM names SecretStore asks for when its methods in `calls` run (path "/p", CUSTOMERIO_API=api)."""
    fetched: list[str] = []

    def fetch(names: list[str], max_age: int, force: bool) -> Mapping[str, str]:
        fetched.extend(names)
        return {}

    store = SecretStore(Settings.from_env({"SSM_PARAMETER_PATH": "/p", "CUSTOMERIO_API": api}), fetch)
    for call in calls:
        # With nothing stored, these raise after their fetch; only the names asked for matter here.
        with contextlib.suppress(ConfigError):
            getattr(store, call)()
    return {name.removeprefix("/p/") for name in fetched}


@pytest.mark.parametrize(
    ("function", "calls"),
    [
        # The ingest handler verifies (load: the webhook secret and the chosen API's credentials) and
        # looks customers up (dodo_api_key).
        ("IngestFunction", ["load", "dodo_api_key"]),
        # The retry handler only delivers (delivery_credentials) and looks customers up (dodo_api_key).
        ("RetryFunction", ["delivery_credentials", "dodo_api_key"]),
    ],
)
def test_each_function_reads_and_decrypts_exactly_the_parameters_its_code_reads(
    cfn: dict[str, Any], function: str, calls: list[str]
) -> None:
    """The grant is what either API's deployment reads: the template does not depend on CustomerioApi.

    Powertools uses GetParameters for several names and GetParameter for one: both, on the same list, named one
    by one. No other ssm: or kms: statement (no GetParametersByPath, no wildcard action, name or pattern).
    """
    track, pipelines = _names_fetched(calls, "track"), _names_fetched(calls, "pipelines")
    assert "customerio-pipelines-api-key" in pipelines - track  # each API reads only its own credentials
    expected = sorted(track | pipelines)  # a name granted twice fails too
    assert ("webhook-secret" in expected) is (function == "IngestFunction")  # retry verifies no signatures
    read, decrypt = [stmt for stmt in policy_statements(_role(cfn, function)) if _reads_parameters(stmt)]
    assert sorted(as_list(read["Action"])) == ["ssm:GetParameter", "ssm:GetParameters"]
    assert sorted(parameter_names(as_list(read["Resource"]))) == expected
    assert as_list(decrypt["Action"]) == ["kms:Decrypt"]
    # The aws/ssm key's id differs per account, so the key is "*" and the conditions do the narrowing:
    # one exact-match block, no StringLike patterns.
    assert decrypt["Resource"] == "*"
    assert list(decrypt["Condition"]) == ["StringEquals"]
    condition = decrypt["Condition"]["StringEquals"]
    assert set(condition) == {"kms:ViaService", PARAMETER_ARN_KEY}
    assert sub_template(condition["kms:ViaService"]) == "ssm.${AWS::Region}.amazonaws.com"
    assert sorted(parameter_names(as_list(condition[PARAMETER_ARN_KEY]))) == expected


# --- roles, logs and X-Ray ----------------------------------------------------------------------------


@pytest.mark.parametrize(("function", "role_id"), FUNCTIONS)
def test_role_is_written_out_and_wildcards_only_the_unavoidable(
    cfn: dict[str, Any], function: str, role_id: str
) -> None:
    """SAM's generated role would add AWSLambdaBasicExecutionRole (logs:* on every log group)."""
    found_id, role = role_of_function(cfn, cfn["Resources"][function])
    assert found_id == role_id
    trust = as_list(role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    for stmt in policy_statements(role):
        assert stmt["Effect"] == "Allow", stmt
        actions = {str(a).lower() for a in as_list(stmt["Action"])}
        assert not any(a == "*" or a.endswith(":*") for a in actions), stmt
        if "*" in as_list(stmt["Resource"]):
            # X-Ray has no resource-level permissions; kms:Decrypt is bound by its conditions to SSM.
            xray = {"xray:puttracesegments", "xray:puttelemetryrecords"}
            assert actions <= xray or (actions == {"kms:decrypt"} and stmt.get("Condition")), stmt


def test_only_the_function_roles_reach_parameters_or_queues_and_none_has_a_managed_policy(cfn: dict[str, Any]) -> None:
    """Their statements are exactly as tested here. A managed policy, a role SAM would generate for a function
    added later without its own Role, a stand-alone or a queue policy would grant beside them."""
    roles = _roles(cfn)
    assert [name for name, role in roles.items() if role["Properties"].get("ManagedPolicyArns")] == []
    reaching = {
        name
        for name, role in roles.items()
        for stmt in policy_statements(role)
        if any(str(a).lower().startswith(("ssm:", "kms:", "sqs:")) for a in as_list(stmt["Action"]))
    }
    assert reaching == {"IngestFunctionRole", "RetryFunctionRole"}
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy"):
        assert resources_of_type(cfn, kind) == {}, kind


def test_each_function_writes_logs_only_to_its_own_log_group(cfn: dict[str, Any]) -> None:
    groups = set()
    for function, _ in FUNCTIONS:
        log_group = ref_name(cfn["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"])
        assert log_group and cfn["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"
        logs = [
            stmt
            for stmt in policy_statements(_role(cfn, function))
            if any(str(a).lower().startswith("logs:") for a in as_list(stmt["Action"]))
        ]
        # The log group exists (the stack creates it), so CreateLogGroup is not needed.
        assert [sorted(as_list(s["Action"])) for s in logs] == [["logs:CreateLogStream", "logs:PutLogEvents"]]
        assert statement_resources(logs[0]) == [(log_group, "Arn")]
        groups.add(log_group)
    assert len(groups) == 2


# --- X-Ray: the roles' grant follows the TracingMode parameter ---------------------------------------


@pytest.mark.parametrize(("mode", "granted"), [("Active", True), ("PassThrough", False)])
@pytest.mark.parametrize("role_id", ["IngestFunctionRole", "RetryFunctionRole"])
def test_the_xray_grant_follows_the_tracing_mode(cfn: dict[str, Any], role_id: str, mode: str, granted: bool) -> None:
    xray = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    statements = []
    for policy in cfn["Resources"][role_id]["Properties"]["Policies"]:
        for stmt in as_list(policy["PolicyDocument"]["Statement"]):
            chosen = _evaluate(stmt, {"TracingMode": mode}, cfn["Conditions"]) if "Fn::If" in stmt else stmt
            if chosen is not _NO_VALUE:
                statements.append(chosen)
    actions = {a for stmt in statements for a in as_list(stmt["Action"])}
    assert (xray <= actions) is granted
    assert not (xray & actions) or granted, "no X-Ray action without tracing"


# --- SQS: the quarantine queue is the ingest function's to write, and nobody's to read (see above) ----------


RETRY, DLQ, QUARANTINE = ("RetryQueue", "Arn"), ("RetryDeadLetterQueue", "Arn"), ("QuarantineQueue", "Arn")


@pytest.mark.parametrize(
    ("function", "grants"),
    [
        # Retry queue (transient failures), DLQ (permanent ones), quarantine (bodies it cannot parse).
        ("IngestFunction", {"sqs:SendMessage": {RETRY, DLQ, QUARANTINE}}),
        (
            "RetryFunction",
            {
                "sqs:ReceiveMessage": {RETRY},
                "sqs:DeleteMessage": {RETRY},
                "sqs:ChangeMessageVisibility": {RETRY},
                "sqs:GetQueueAttributes": {RETRY},
                "sqs:SendMessage": {RETRY, DLQ},  # re-parking; dead-lettering with the reason
            },
        ),
    ],
)
def test_each_function_reaches_exactly_its_queues(cfn: dict[str, Any], function: str, grants: dict[str, Any]) -> None:
    assert sqs_grants(_role(cfn, function)) == grants


# --- the ingest function's reserved concurrency --------------------------------------------------------

_NO_VALUE = object()


def _evaluate(expr: Any, params: dict[str, str], conditions: dict[str, Any]) -> Any:
    """The few intrinsics a condition and an Fn::If use, with CloudFormation's semantics.

    A Ref to a parameter yields its value as a string (also for Number parameters), and Fn::Equals
    compares strings.
    """
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return _NO_VALUE if arg == "AWS::NoValue" else params[arg]
        if fn == "Condition":
            return _evaluate(conditions[arg], params, conditions)
        if fn == "Fn::Equals":
            left, right = (_evaluate(x, params, conditions) for x in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _evaluate(arg[0], params, conditions)
        if fn == "Fn::If":
            name, if_true, if_false = arg
            chosen = if_true if _evaluate(conditions[name], params, conditions) else if_false
            return _evaluate(chosen, params, conditions)
        raise AssertionError(f"unexpected intrinsic {fn} in {expr}")
    return expr


def test_reserved_concurrency_parameter(cfn: dict[str, Any], sam_template: dict[str, Any]) -> None:
    param = cfn["Parameters"]["IngestReservedConcurrency"]
    assert param["Type"] == "Number"
    assert int(param["MinValue"]) == 0  # 0 turns the reservation off
    default = int(param["Default"])
    # The README's reasoning: the API stage's whole steady rate at 1 s per webhook (ours take far less)...
    assert default >= int(cfn["Parameters"]["ApiThrottlingRateLimit"]["Default"])
    # ...while an account at the default 1,000 quota keeps Lambda's minimum of 100 unreserved executions.
    assert default + 100 <= 1000
    # CKV_AWS_115 now passes on the ingest function; a leftover skip would hide a regression.
    skips = sam_template["Resources"]["IngestFunction"]["Metadata"]["checkov"]["skip"]
    assert "CKV_AWS_115" not in {s["id"] for s in skips}


@pytest.mark.parametrize(("value", "reserved"), [("0", None), ("1", "1"), ("50", "50"), ("400", "400")])
def test_reserved_concurrency_is_wired_and_off_at_zero(cfn: dict[str, Any], value: str, reserved: str | None) -> None:
    prop = cfn["Resources"]["IngestFunction"]["Properties"]["ReservedConcurrentExecutions"]
    got = _evaluate(prop, {"IngestReservedConcurrency": value}, cfn["Conditions"])
    assert (None if got is _NO_VALUE else got) == reserved


# --- DynamoDB: the ingest function deletes only its own idempotency records -----------------------------
#
# IAM's StringLike, as the tests apply it: `*` is any run of characters (also none), `?` exactly one, every
# other character itself, case-sensitive, over the whole value. A `ForAllValues:` operator holds when each
# value of the key matches at least one pattern; for DeleteItem the key holds one value, the item's
# partition key.

LEADING_KEYS = "dynamodb:LeadingKeys"
# Actions that can remove items, or the table, besides DeleteItem: none may be granted at all.
REMOVING_ACTIONS = {"dynamodb:batchwriteitem", "dynamodb:deletetable", "dynamodb:updatetable"}


def _iam_like(pattern: str, value: str) -> bool:
    assert "${" not in pattern, "policy variables are not modelled here"
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _delete_statement(cfn: dict[str, Any]) -> dict[str, Any]:
    (stmt,) = statements_with_action(_role(cfn, "IngestFunction"), "dynamodb:DeleteItem")
    return stmt


def _may_delete(cfn: dict[str, Any], key: str) -> bool:
    patterns = as_list(_delete_statement(cfn)["Condition"]["ForAllValues:StringLike"][LEADING_KEYS])
    return any(_iam_like(str(pattern), key) for pattern in patterns)


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("a*c", ["ac", "abbbc"], []),
        ("a?c", ["abc"], ["ac", "abbc"]),
        ("a.c", [], ["abc"]),  # "." is itself, not a regex wildcard
        ("A*", [], ["a"]),  # case-sensitive
        ("*#??", ["x#ab"], ["x#abc"]),  # whole value, not a prefix
    ],
    ids=["star", "question-mark", "dot", "case", "whole-value"],
)
def test_iam_like_follows_string_like(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    results = {value: _iam_like(pattern, value) for value in matching + not_matching}
    assert results == {**dict.fromkeys(matching, True), **dict.fromkeys(not_matching, False)}


def test_ingest_may_delete_only_under_the_leading_key_condition(cfn: dict[str, Any]) -> None:
    """DeleteItem alone in its statement, on the state table, only for keys matching the idempotency pattern.

    The key is "<function name>.<RECORD_OWNER>#<md5 hex>": any function name, 32 characters of digest.
    """
    from dodo_cio.state.idempotency import RECORD_OWNER

    stmt = _delete_statement(cfn)
    assert as_list(stmt["Action"]) == ["dynamodb:DeleteItem"]
    assert stmt["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}
    # StringLike on the key, and the key must be present: a ForAllValues condition on a missing key holds.
    assert stmt["Condition"] == {
        "ForAllValues:StringLike": {LEADING_KEYS: [f"*.{RECORD_OWNER}#{'?' * 32}"]},
        "Null": {LEADING_KEYS: "false"},
    }
    # Every other DynamoDB statement of the role leaves deleting out.
    for other in policy_statements(_role(cfn, "IngestFunction")):
        actions = {str(a).lower() for a in as_list(other["Action"])}
        if other is not stmt and any(a.startswith("dynamodb:") for a in actions):
            assert "dynamodb:deleteitem" not in actions and not other.get("Condition"), other


@pytest.mark.parametrize(
    "function_name",
    [
        "dodo-customerio-bridge-IngestFunction-AbC123xYz",
        # A long stack name: CloudFormation truncates it in the generated name, which "*" does not mind.
        "dodo-customerio-bridge-produc-IngestFunction-1A2B3C4D5E6F",
        "x",
    ],
)
@pytest.mark.parametrize("webhook_id", ["msg_x", "msg_2xKq9ZaYbXcWdVeUf", "", 'ünïcödé "quoted"'])
def test_the_delete_pattern_matches_the_keys_the_ingest_function_writes(
    cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, function_name: str, webhook_id: str
) -> None:
    from dodo_cio.state.idempotency import WebhookDeduplicator

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function_name)
    key = WebhookDeduplicator("state", boto3_client=object()).key(webhook_id)
    assert key.startswith(function_name + ".")
    assert _may_delete(cfn, key), key


def test_the_delete_pattern_matches_no_customer_payment_or_legacy_record(cfn: dict[str, Any]) -> None:
    from dodo_cio.state.idempotency import RECORD_OWNER
    from dodo_cio.state.table import PAYMENT_PREFIX, customer_key, legacy_key

    others = [
        customer_key("cus_2xKq9ZaYbXcWdVeUf"),
        customer_key(""),
        PAYMENT_PREFIX + "pay_2xKq9ZaYbXcWdVeUf",
        legacy_key({"id": "cus_1"}),
        legacy_key({"email": "a@example.com"}),
        # Near misses of the idempotency key itself: no function name, a digest one character short or long.
        f"{RECORD_OWNER}#{'0' * 32}",
        f"fn.{RECORD_OWNER}#{'0' * 31}",
        f"fn.{RECORD_OWNER}#{'0' * 33}",
    ]
    assert [key for key in others if _may_delete(cfn, key)] == []


def test_no_role_reaches_another_table_or_may_remove_items_or_the_table_another_way(cfn: dict[str, Any]) -> None:
    """BatchWriteItem can delete items, DeleteTable/UpdateTable the table (or its deletion protection). The retry
    function's code only reads, puts and updates state records (dodo_cio.retry, functions/retry)."""
    granted: dict[str, set[str]] = {}
    for name, role in _roles(cfn).items():
        for stmt in policy_statements(role):
            actions = {str(a).lower() for a in as_list(stmt["Action"])}
            assert not actions & REMOVING_ACTIONS, (name, stmt)
            assert not any(a.startswith("dynamodb:") and "*" in a for a in actions), (name, stmt)
            if any(a.startswith("dynamodb:") for a in actions):
                assert stmt["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}, (name, stmt)
                granted.setdefault(name, set()).update(a for a in actions if a.startswith("dynamodb:"))
    assert granted["RetryFunctionRole"] == {"dynamodb:batchgetitem", "dynamodb:putitem", "dynamodb:updateitem"}


def test_only_idempotency_code_deletes_items() -> None:
    """If other code starts deleting records, the IAM condition above must be revisited, not silently widened."""
    from infra.cfn import REPO_ROOT

    deleting = sorted(
        str(path.relative_to(REPO_ROOT))
        for folder in ("layers/dodo_cio/dodo_cio", "functions")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if re.search(r"\bdelete_item\(|[\"']Delete[\"']\s*:", path.read_text(encoding="utf-8"))
    )
    assert deleting == ["layers/dodo_cio/dodo_cio/state/idempotency.py"]
