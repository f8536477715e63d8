"""What the bridge's two queue formats share: the send call they need, and reading a body as JSON.

The parked-delivery format (`dodo_cio.delivery.parking`) and the quarantined-webhook format
(`dodo_cio.receiving.quarantine`) both write through any object with SQS's `send_message` and read
a message body back as a JSON object; neither stage needs the other for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol


def json_object(text: str | bytes, error: type[ValueError]) -> dict[str, Any]:
    """A queue message body as a JSON object, or `error` saying why it is not one."""
    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise error(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise error("not a JSON object")
    return doc


class SqsSender(Protocol):
    def send_message(self, **kwargs: Any) -> Mapping[str, Any]: ...
