"""Email masking for every log line, whatever code wrote it (a transform, an exception message).

The bridge never logs bodies, but a merchant's transform or a library error might echo an
address; masking at the formatter catches those too. `maya@example.com` -> `m***@example.com`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

_EMAIL: Final = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text) if "@" in text else text


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with email addresses masked in the final line."""

    def serialize(self, log: Any) -> str:
        return mask_emails(super().serialize(log))
