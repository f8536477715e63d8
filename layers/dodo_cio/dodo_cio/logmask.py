"""Email masking for every log line, whatever code wrote it (a transform, an exception message).

The bridge never logs bodies, but a merchant's transform or a library error might echo an
address; masking at the formatter catches those too. `maya@example.com` -> `m***@example.com`.

The formatter also writes the common line (a plain text message, no exception) itself: the same
JSON Powertools' formatter writes, built without its per-line detours (copying the whole log
record, trying to parse every message as JSON, looking for an exception that is not there). The
one "delivered" line per webhook is the largest of the bridge's own steps in a warm webhook
(bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter

_EMAIL: Final = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")
# Powertools keeps these in a tuple, which every line searches a few dozen times.
_RESERVED: Final = frozenset(RESERVED_LOG_ATTRS)
# A message Powertools would decode as JSON starts (after blanks) with one of these.
_JSON_START: Final = frozenset('{["-0123456789tfn')
# Keys Powertools sets from the exception, which a plain line has not: None, so left out.
_EXCEPTION_KEYS: Final = ("exception", "exception_name", "exception_notes")


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text) if "@" in text else text


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with email addresses masked in the final line."""

    def serialize(self, log: Any) -> str:
        return mask_emails(super().serialize(log))

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg
        if (
            record.exc_info
            or record.args
            or record.stack_info
            or not isinstance(message, str)
            or message.lstrip()[:1] in _JSON_START
        ):
            return super().format(record)
        values = record.__dict__
        values["asctime"] = self.formatTime(record)
        keys = (self.log_format, self.thread_safe_get_current_keys())
        try:  # `%(levelname)s` -> `INFO`, in the keys Powertools formats from the record
            line = {k: v % values if v and k in _RESERVED else v for source in keys for k, v in source.items()}
        except (TypeError, ValueError, KeyError):
            return super().format(record)  # a bad key: Powertools' own error
        line.update({k: v for k, v in values.items() if k not in _RESERVED})  # what the caller passed as `extra`
        line["message"] = message
        for key in _EXCEPTION_KEYS:
            line.setdefault(key, None)
        if self.serialize_stacktrace:
            line["stack_trace"] = None
        line["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize({key: value for key, value in line.items() if value is not None})
