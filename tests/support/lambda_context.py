"""A small stand-in for the Lambda context object, as Powertools examples do in their tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeLambdaContext:
    function_name: str = "dodo-customerio-ingest"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dodo-customerio-ingest"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 12_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
