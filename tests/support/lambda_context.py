"""A small stand-in for the Lambda context object, as Powertools examples do in their tests."""

from __future__ import annotations

from dataclasses import dataclass


def template_timeout_ms(function_name: str) -> int:
    """The Timeout template.yaml gives the function (retry or ingest), in ms: a fresh invocation's time left.

    The handlers budget every call from this (dodo_cio.deadline), so a fake context that gave the
    retry function the ingest function's 12 s would test a function that is not deployed.
    """
    from support.aws import template

    doc = template()
    logical_id = "RetryFunction" if "retry" in function_name else "IngestFunction"
    props = doc["Resources"][logical_id].get("Properties") or {}
    timeout = props.get("Timeout", doc.get("Globals", {}).get("Function", {}).get("Timeout"))
    if not isinstance(timeout, int):
        raise AssertionError(f"template.yaml: {logical_id}'s Timeout is not a number of seconds: {timeout!r}")
    return timeout * 1000


@dataclass
class FakeLambdaContext:
    function_name: str = "dodo-customerio-ingest"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dodo-customerio-ingest"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = -1  # below 0: the function's Timeout from template.yaml

    def __post_init__(self) -> None:
        if self.remaining_ms < 0:
            self.remaining_ms = template_timeout_ms(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
