"""Emails are masked in every log line, including ones the bridge did not write itself."""

from __future__ import annotations

import copy
import io
import json
import logging
import sys

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from dodo_cio.platform.logmask import MaskingFormatter


def test_logger_lines_are_masked() -> None:
    stream = io.StringIO()
    logger = Logger(service="t", logger_formatter=MaskingFormatter(), logger_handler=None, stream=stream)
    logger.info("failed for priya.raman@example.co.uk", extra={"who": "a.b@c.io"})
    line = stream.getvalue()
    assert "priya.raman@" not in line and "a.b@c.io" not in line
    doc = json.loads(line)
    assert doc["message"] == "failed for p***@example.co.uk"
    assert doc["who"] == "a***@c.io"


def _record(msg: object, args: tuple[object, ...] = (), exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("dodo", logging.WARNING, "/x/ingest.py", 42, msg, args, exc_info, func="_deliver")
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    "record",
    [
        _record("delivered"),
        _record("delivered", ops=2, status=None, reason="HTTP 503: ünïcode"),
        _record("parked for retry", kind="transient", exception="named by the caller"),
        _record("cannot verify webhooks: %s", ("ConfigError",)),
        _record("123"),
        _record(' {"already": "json"}'),
        _record({"a": "dict message"}),
        _record("mapping failed", exc=True),
    ],
    ids=lambda r: str(r.msg)[:20],
)
def test_each_line_is_the_one_powertools_writes(record: logging.LogRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")
    ours, theirs = MaskingFormatter(), LambdaPowertoolsFormatter()
    for formatter in (ours, theirs):
        formatter.append_keys(service="bridge", cold_start=False, webhook_id="msg_1", event_type=None)
    assert ours.format(copy.copy(record)) == theirs.format(copy.copy(record))


def test_a_key_that_cannot_be_formatted_fails_as_it_does_in_powertools() -> None:
    for formatter in (MaskingFormatter(), LambdaPowertoolsFormatter()):
        formatter.append_keys(name=5)  # `name` is a LogRecord attribute: Powertools formats it from the record
        with pytest.raises(ValueError, match="need to be type 'str'"):
            formatter.format(_record("delivered"))


def test_no_logged_value_is_longer_than_the_cap_whoever_wrote_it() -> None:
    """A 100 KB event type, an id of 2,100 characters, a long exception message: each line stays small."""
    from dodo_cio.platform.logmask import MAX_LOGGED_CHARS, MAX_TRACEBACK_CHARS

    formatter = MaskingFormatter()
    formatter.append_keys(event_type="x" * 100_000)
    failed = _record("lookup failed for %s", args=("y" * 50_000,), reason=["z" * 50_000])
    try:
        raise KeyError("k" * 50_000)
    except KeyError:
        failed.exc_info = sys.exc_info()
    for record in (_record("delivered", field="f" * 50_000), failed):
        line = json.loads(formatter.format(record))
        assert len(line["event_type"]) < MAX_LOGGED_CHARS + 50 and line["event_type"].endswith("more characters]")
        assert len(json.dumps(line)) < 3 * MAX_TRACEBACK_CHARS, {k: len(json.dumps(v)) for k, v in line.items()}
    assert len(line["message"]) < MAX_LOGGED_CHARS + 50 and len(line["reason"][0]) < MAX_LOGGED_CHARS + 50
    assert 0 < len(line["exception"]) < MAX_TRACEBACK_CHARS + 50
