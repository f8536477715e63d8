"""The quarantine format: a signed Dodo webhook the bridge verified but cannot process as it is.

Three kinds (`QuarantineKind`), each a webhook genuinely from Dodo (its signature checked out):
  unreadable     the body does not fit our model (a gap in it, or a change on Dodo's side);
  unknown_type   a type this version has no mapping for (Dodo adds types every few months);
  rejected       DynamoDB refuses its records as they are (an id over the 2,048-byte key limit).
Answering 4xx would make Dodo give up on it, and 5xx would have Dodo send it again for days to
the same end; instead it is kept on the quarantine queue, whole and with the headers its
signature covers, and answered 202 `quarantined`.
Once the bridge is upgraded, `dodo-cio reprocess` hands each message to the deployed ingest
function (a direct Lambda invoke, see `reprocess_event`), which verifies the kept signature
against the current webhook secret(s) again, without the timestamp window, and runs it through the
current mapping as if Dodo had just sent it. Authenticity therefore never rests on the queue alone:
a message nobody can verify is refused, and only principals allowed to invoke the function (IAM)
can ask for a re-run. The re-run's timestamp window is the queue's retention (plus Dodo's five
minutes), not unlimited: a signed webhook older than anything the queue could have kept is refused.

The format is versioned and documented in the README ("Quarantined webhooks").
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from dodo_cio.platform.sqs import SqsSender, json_object
from dodo_cio.receiving.signature import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

FORMAT: Final = "dodo-cio.quarantined-webhook"
FORMAT_VERSION: Final = 1
# The key of a direct Lambda invoke that asks the ingest function to re-run one quarantined webhook.
REPROCESS_KEY: Final = "dodo_cio_reprocess"
# The quarantine queue's MessageRetentionPeriod (template.yaml, the SQS maximum): nothing older exists.
RETENTION_SECONDS: Final = 14 * 24 * 3600
# How old a re-run's signed timestamp may be: the retention, plus the window it was received in.
RERUN_TOLERANCE_SECONDS: Final = RETENTION_SECONDS + 300
QuarantineKind = Literal["unreadable", "unknown_type", "rejected"]
KINDS: Final = frozenset(get_args(QuarantineKind))


class QuarantineFormatError(ValueError):
    """A message that is not a quarantined webhook this version understands."""


@dataclass(frozen=True, slots=True)
class QuarantinedWebhook:
    webhook_id: str
    webhook_timestamp: str  # the header exactly as received: it is part of what was signed
    webhook_signature: str  # the header exactly as received, so the signature can be checked again
    received_at: int  # Unix seconds, when the bridge received and verified it
    event_type: str | None  # when the body was readable enough to say
    error_field: str
    error_detail: str
    body: bytes  # the raw body, byte for byte as signed
    kind: QuarantineKind = "unreadable"  # absent from messages written before issue 16: all were

    @property
    def reason(self) -> str:
        return f"{self.error_field}: {self.error_detail}"

    def headers(self) -> dict[str, str]:
        """The signature headers to verify `body` against, as Dodo sent them."""
        return {
            ID_HEADER: self.webhook_id,
            TIMESTAMP_HEADER: self.webhook_timestamp,
            SIGNATURE_HEADER: self.webhook_signature,
        }

    def to_dict(self) -> dict[str, Any]:
        encoded = base64.b64encode(self.body).decode("ascii")
        body, encoding = encoded, "base64"
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            # Readable text, unless JSON escaping would make it larger than base64 (control
            # characters cost 6 bytes each): a 256 KB body must still fit one SQS message.
            if len(json.dumps(text, ensure_ascii=False).encode()) <= len(encoded) + 2:
                body, encoding = text, "utf-8"
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "webhook_id": self.webhook_id,
            "webhook_timestamp": self.webhook_timestamp,
            "webhook_signature": self.webhook_signature,
            "received_at": self.received_at,
            "event_type": self.event_type,
            "kind": self.kind,
            "error": {"field": self.error_field, "detail": self.error_detail},
            "body_encoding": encoding,
            "body": body,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> QuarantinedWebhook:
        return cls.from_dict(json_object(text, QuarantineFormatError))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> QuarantinedWebhook:
        if doc.get("format") != FORMAT:
            raise QuarantineFormatError(f"format is not {FORMAT}")
        if doc.get("version") != FORMAT_VERSION:
            raise QuarantineFormatError(f"unsupported version {doc.get('version')!r}")
        for key in ("webhook_id", "webhook_timestamp", "webhook_signature", "body"):
            if not isinstance(doc.get(key), str):
                raise QuarantineFormatError(f"{key} is missing or not a string")
        error = doc.get("error")
        if not isinstance(error, dict):
            raise QuarantineFormatError("error is missing or not an object")
        encoding = doc.get("body_encoding", "utf-8")
        if encoding == "utf-8":
            body = str(doc["body"]).encode("utf-8", "surrogatepass")
        elif encoding == "base64":
            try:
                body = base64.b64decode(str(doc["body"]), validate=True)
            except (binascii.Error, ValueError):
                raise QuarantineFormatError("body is not valid base64") from None
        else:
            raise QuarantineFormatError(f"unknown body_encoding {encoding!r}")
        received_at, event_type, kind = doc.get("received_at"), doc.get("event_type"), doc.get("kind", "unreadable")
        if kind not in KINDS:
            raise QuarantineFormatError(f"unknown kind {kind!r}")
        headers = (doc["webhook_id"], doc["webhook_timestamp"], doc["webhook_signature"])
        return cls(
            *headers,
            received_at=received_at if isinstance(received_at, int) else 0,
            event_type=event_type if isinstance(event_type, str) else None,
            error_field=str(error.get("field", "")),
            error_detail=str(error.get("detail", "")),
            body=body,
            kind=kind,
        )


def reprocess_event(item: QuarantinedWebhook) -> dict[str, Any]:
    """The direct-invoke event that asks the ingest function to re-run `item` (see module doc)."""
    return {REPROCESS_KEY: item.to_dict()}


def reprocess_request(event: Any) -> QuarantinedWebhook | None:
    """The quarantined webhook a direct invoke carries; None for an API Gateway event (or no object).

    API Gateway builds its events itself, so a request from the public endpoint can never take
    this shape: its body is always a string under "body".
    """
    if not isinstance(event, Mapping):
        return None  # not a re-run; the API Gateway reading says what is wrong with it
    doc = event.get(REPROCESS_KEY)
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise QuarantineFormatError(f"{REPROCESS_KEY} must be an object")
    return QuarantinedWebhook.from_dict(doc)


def quarantine(sqs: SqsSender, queue_url: str, item: QuarantinedWebhook) -> str:
    """Keep the webhook durably; raises whatever SQS raises so the caller can answer 5xx."""
    attributes = {
        "error_field": {"DataType": "String", "StringValue": item.error_field or "-"},
        "kind": {"DataType": "String", "StringValue": item.kind},
    }
    if item.event_type:
        attributes["event_type"] = {"DataType": "String", "StringValue": item.event_type}
    response = sqs.send_message(QueueUrl=queue_url, MessageBody=item.to_json(), MessageAttributes=attributes)
    return str(response.get("MessageId", ""))
