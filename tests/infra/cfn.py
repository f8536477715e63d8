"""Helpers for the template tests: offline SAM translation and small CloudFormation lookups.

The translation follows what `sam validate` does, minus the network: local CodeUri/ContentUri values
become S3 placeholders (the translator insists on s3:// URIs) and managed-policy names resolve from a
stub loader instead of IAM.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

PLACEHOLDER_S3_URI = "s3://placeholder-bucket/placeholder-key"
_LOCAL_URI_KEYS = ("CodeUri", "ContentUri", "DefinitionUri")

Resource = dict[str, Any]


class OfflinePolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which would call IAM."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a SAM template, understanding the short intrinsic forms (!Ref, !Sub, ...)."""
    return dict(yaml_parse(path.read_text(encoding="utf-8")))


def translate(sam: dict[str, Any]) -> dict[str, Any]:
    """Transform a parsed SAM template into plain CloudFormation, offline.

    The translator reads the region from the environment (AWS_DEFAULT_REGION), so the caller must set it.
    """
    if not os.environ.get("AWS_DEFAULT_REGION"):
        raise RuntimeError("samtranslator needs AWS_DEFAULT_REGION to be set")
    sam = copy.deepcopy(sam)
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for key in _LOCAL_URI_KEYS:
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = PLACEHOLDER_S3_URI
    return dict(transform(sam, {}, OfflinePolicyLoader()))


def resources_of_type(cfn: dict[str, Any], resource_type: str) -> dict[str, Resource]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == resource_type}


def only_resource_of_type(cfn: dict[str, Any], resource_type: str) -> tuple[str, Resource]:
    found = resources_of_type(cfn, resource_type)
    assert len(found) == 1, f"expected exactly one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def getatt(value: Any) -> tuple[str, str] | None:
    """(logical id, attribute) of an Fn::GetAtt, else None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attr = target if isinstance(target, list) else target.split(".", 1)
        return str(name), str(attr)
    return None


def ref_name(value: Any) -> str | None:
    """Logical id behind {"Ref": X} or {"Fn::GetAtt": [X, ...]}, else None."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    target = getatt(value)
    return target[0] if target else None


def sub_template(value: Any) -> str | None:
    """The template string of an Fn::Sub (either form), a plain string as is, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return None


def role_of_function(cfn: dict[str, Any], function: Resource) -> tuple[str, Resource]:
    role_id = ref_name(function["Properties"]["Role"])
    assert role_id is not None, "function role is not a reference to a role in this template"
    return role_id, cfn["Resources"][role_id]


def policy_statements(role: Resource) -> Iterator[dict[str, Any]]:
    """Every statement of the role's inline policies that some parameter value grants.

    A statement behind `Fn::If` (e.g. the X-Ray one, only with TracingMode=Active) counts: least
    privilege must hold for every deployment the template allows.
    """
    for policy in role["Properties"].get("Policies", []):
        for stmt in as_list(policy["PolicyDocument"]["Statement"]):
            branches = stmt["Fn::If"][1:] if isinstance(stmt, dict) and "Fn::If" in stmt else [stmt]
            yield from (b for b in branches if isinstance(b, dict) and "Effect" in b)


def statements_with_action(role: Resource, action: str) -> list[dict[str, Any]]:
    action = action.lower()
    return [
        stmt
        for stmt in policy_statements(role)
        if any(str(a).lower() == action for a in as_list(stmt.get("Action", [])))
    ]


def statement_resources(stmt: dict[str, Any]) -> list[Any]:
    """A statement's resources, each as (logical id, attribute) for a GetAtt, a Sub's template, or as is."""
    return [getatt(r) or sub_template(r) or r for r in as_list(stmt["Resource"])]


def sqs_grants(role: Resource) -> dict[str, set[Any]]:
    """Every sqs: action the role's inline policies allow, with the resources it is allowed on."""
    grants: dict[str, set[Any]] = {}
    for stmt in policy_statements(role):
        assert stmt["Effect"] == "Allow", stmt
        for action in as_list(stmt["Action"]):
            if str(action).lower().startswith("sqs:"):
                grants.setdefault(action, set()).update(statement_resources(stmt))
    return grants


# An SSM parameter's ARN under the stack's SsmParameterPath, as the template writes it in an Fn::Sub.
# SsmParameterPath has no trailing slash (its AllowedPattern), so the name follows a "/".
SSM_PARAMETER_ARN_PREFIX = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmParameterPath}/"


def parameter_names(arns: list[Any]) -> list[str]:
    """The parameter names behind SSM parameter ARNs; fails on an ARN outside SsmParameterPath."""
    names = []
    for arn in arns:
        text = sub_template(arn)
        assert text is not None and text.startswith(SSM_PARAMETER_ARN_PREFIX), arn
        names.append(text.removeprefix(SSM_PARAMETER_ARN_PREFIX))
    return names
