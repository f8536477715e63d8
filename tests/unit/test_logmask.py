"""Emails are masked in every log line, including ones the bridge did not write itself."""

from __future__ import annotations

import io
import json

from aws_lambda_powertools import Logger

from dodo_cio.logmask import MaskingFormatter, mask_emails


def test_mask_emails_keeps_first_letter_and_domain() -> None:
    assert mask_emails("to maya.fernandes@example.com and x@y.co.uk") == "to m***@example.com and x***@y.co.uk"
    assert mask_emails("no address here") == "no address here"


def test_logger_lines_are_masked() -> None:
    stream = io.StringIO()
    logger = Logger(service="t", logger_formatter=MaskingFormatter(), logger_handler=None, stream=stream)
    logger.info("failed for priya.raman@example.co.uk", extra={"who": "a.b@c.io"})
    line = stream.getvalue()
    assert "priya.raman@" not in line and "a.b@c.io" not in line
    doc = json.loads(line)
    assert doc["message"] == "failed for p***@example.co.uk"
    assert doc["who"] == "a***@c.io"
