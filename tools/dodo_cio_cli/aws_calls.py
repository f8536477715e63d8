"""Calling AWS from the CLI: one line a person can act on instead of a traceback, and the error type.

At the bottom of the CLI: the operator commands (`operator.py`), the queue peeking they share
(`sqs_peek.py`), `check` and `setup` all call AWS through `call_aws` and raise `OperatorError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

_SQS_PREFIX: Final = "AWS.SimpleQueueService."  # SQS's query-compatible error codes carry it

PEEK_VISIBILITY_SECONDS: Final = 30  # long enough to page through the queue without seeing repeats


_T = TypeVar("_T")


class OperatorError(Exception):
    """A failed operator action, worded for the person at the terminal (never holds a secret)."""


def error_parts(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore ClientError; SQS's query-compatible codes lose their prefix."""
    error = getattr(exc, "response", {}).get("Error", {})
    code = str(error.get("Code", "")).removeprefix(_SQS_PREFIX)
    return code, str(error.get("Message", "")).strip()


def call_aws(action: str, call: Callable[[], _T], translate: Callable[[str, str], str | None] | None = None) -> _T:
    """Run one AWS call; ClientError -> `translate(code, message)` or a generic line; no traceback."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - keep import cheap

    try:
        return call()
    except ClientError as exc:
        code, message = error_parts(exc)
        text = (translate(code, message) if translate else None) or _generic(action, code, message)
        raise OperatorError(text) from None
    except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable, ...
        raise OperatorError(f"{action} failed: {exc}") from None


def _generic(action: str, code: str, message: str) -> str:
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
        return f"{action}: access denied ({message or code}); check the credentials and IAM policy in use"
    if code in {"RequestThrottled", "ThrottlingException", "Throttling"}:
        return f"{action}: throttled by AWS; try again in a moment"
    if code in {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }:
        return f"{action}: AWS rejected the credentials ({code}); refresh them (e.g. `aws sso login`)"
    return f"{action} failed: {code or 'error'}: {message}".rstrip(": ")
