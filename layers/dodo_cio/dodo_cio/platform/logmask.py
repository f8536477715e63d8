"""Email masking and length caps for every log line, whatever code wrote it (a transform, an exception).

The bridge never logs bodies, but a merchant's transform or a library error might echo an
address; masking at the formatter catches those too. `maya@example.com` -> `m***@example.com`.
Every string value of a line is cut at `MAX_LOGGED_CHARS` (a traceback at `MAX_TRACEBACK_CHARS`),
so a hostile webhook (a 100 KB event type, an id of 2,000 characters) cannot make a line that size
or push a whole payload into the logs through an error message.

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


MAX_LOGGED_CHARS: Final = 1000
MAX_TRACEBACK_CHARS: Final = 8000
_TRACEBACK_KEYS: Final = frozenset({"exception", "stack_trace"})


_PLAIN: Final = (int, float, bool, type(None))


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, (*_PLAIN, dict, list, tuple)):
        return value
    text = value if isinstance(value, str) else str(value)  # what the JSON serialiser would write
    if len(text) <= limit:
        return value
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def cap(value: Any, limit: int = MAX_LOGGED_CHARS) -> Any:
    """`value` with every string in it (one level of nesting deep) cut to `limit` characters.

    Anything else the serialiser would write as text (an exception in Powertools' stack trace)
    is measured as that text.
    """
    if isinstance(value, dict):
        return {k: _cut(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut(v, limit) for v in value]
    return _cut(value, limit)


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text) if "@" in text else text


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with email addresses masked in the final line."""

    def serialize(self, log: Any) -> str:
        if isinstance(log, dict):
            log = {k: cap(v, MAX_TRACEBACK_CHARS if k in _TRACEBACK_KEYS else MAX_LOGGED_CHARS) for k, v in log.items()}
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
