"""The one stand-in for Lambda's context object, for the local run, the tests and the benchmarks.

It carries what Powertools reads (names, memory, request id, log group) and a clock: the time left
counts down from the function's Timeout in template.yaml, as a fresh invocation's does, unless a
caller fixes it (`remaining_ms`) to test a deadline. The handlers budget every call from it
(dodo_cio.platform.deadline), so a context that gave the retry function the ingest function's time would
test a function that is not deployed.
"""

from __future__ import annotations

import time
import uuid
from functools import cache

from dodo_cio_local.local_template import REGION, STACK_NAME, read_template


@cache
def template_timeout_seconds(logical_id: str) -> int:
    """The Timeout template.yaml gives `logical_id` (its own, else the Globals one)."""
    settings = read_template()
    return settings.retry_timeout_seconds if logical_id == "RetryFunction" else settings.timeout_seconds


class FakeLambdaContext:
    """What a Lambda context offers the handlers, for one invocation."""

    def __init__(
        self,
        function_name: str = "dodo-customerio-ingest",
        *,
        memory_limit_in_mb: int = 256,
        timeout_seconds: float | None = None,
        remaining_ms: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.logical_id = "RetryFunction" if "retry" in function_name.lower() else "IngestFunction"
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{STACK_NAME}/{self.logical_id}"
        self.log_stream_name = "local"
        self._fixed_ms = remaining_ms
        seconds = template_timeout_seconds(self.logical_id) if timeout_seconds is None else timeout_seconds
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        if self._fixed_ms is not None:
            return self._fixed_ms
        return max(0, int((self._deadline - time.monotonic()) * 1000))
