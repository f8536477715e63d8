"""The warm-ingest floor: the same work as the ingest handler, standard library only, nothing spared.

Per webhook: Standard Webhooks verification (HMAC-SHA256 over `id.timestamp.body`, every `v1,`
entry compared in constant time, ±5 min), the idempotency record taken (DynamoDB PutItem with the
same condition, on the same fake), JSON parse, the Track v2 request built (identify with the
customer's profile fields + event with the payload's scalar fields, amounts in major units, dates
as Unix seconds, a ULID event id from the webhook id), the freshness UpdateItem for the identify,
one POST on a kept-alive `http.client` connection, the idempotency record completed (UpdateItem),
one JSON log line. Secrets come from the fake SSM once and are cached for 5 minutes, as the bridge
caches them. What the floor leaves out, on purpose: typed validation of each payload type, the
limits fitting, PII scrubbing rules, metrics, error paths.

    .venv/bin/python bench/floor_ingest.py [--n 2000] [--events FILE] [--track-url URL] [--json out.json]
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from common import SECRET_VALUES, SSM_PATH, STATE_TABLE, drive
from fakeaws import FakeAws
from ingest_cli import ingest_main

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_AMOUNTS = ("total_amount", "amount", "tax", "settlement_amount", "recurring_pre_tax_amount")
_NEVER = frozenset(
    {"business_id", "brand_id", "payment_method_id", "card_holder_name", "key", "customer", "billing", "payload_type"}
)
_IDENTIFY_SUBSCRIPTION = tuple(
    "subscription_id status product_id quantity payment_frequency_interval payment_frequency_count "  # noqa: SIM905
    "next_billing_date previous_billing_date cancel_at_next_billing_date cancelled_at expires_at "
    "trial_period_days created_at".split()
)


def _ulid(seed: str, time_ms: int) -> str:
    number = (time_ms << 80) | int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


def _seconds(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        return int(dt.datetime.fromisoformat(value).timestamp())
    return value


class Floor:
    def __init__(self, track_url: str, aws: FakeAws) -> None:
        url = urlsplit(track_url)
        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=5)
        self._aws = aws
        self._secrets: tuple[float, bytes, dict[str, str]] | None = None

    def _load_secrets(self) -> tuple[bytes, dict[str, str]]:
        now = time.monotonic()
        if self._secrets is None or now - self._secrets[0] > 300:
            names = [f"{SSM_PATH}/{n}" for n in ("webhook-secret", "customerio-site-id", "customerio-api-key")]
            values = {p["Name"]: p["Value"] for p in self._aws.ssm.get_parameters(Names=names)["Parameters"]}
            key = base64.b64decode(values[names[0]].removeprefix("whsec_"))
            token = base64.b64encode(f"{values[names[1]]}:{values[names[2]]}".encode()).decode()
            headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
            self._secrets = (now, key, headers)
        return self._secrets[1], self._secrets[2]

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        key, cio_headers = self._load_secrets()
        headers = {k.lower(): v for k, v in event["headers"].items()}
        body = event["body"].encode()
        webhook_id = headers.get("webhook-id", "")
        timestamp = int(headers.get("webhook-timestamp", "0"))
        if abs(time.time() - timestamp) > 300:
            return _answer(401, {"error": "invalid signature"})
        expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        matched = False
        for entry in headers.get("webhook-signature", "").split():
            version, _, signature = entry.partition(",")
            if version == "v1":
                matched |= hmac.compare_digest(expected, base64.b64decode(signature))
        if not matched:
            return _answer(401, {"error": "invalid signature"})

        now = int(time.time())
        dynamodb = self._aws.dynamodb
        dynamodb.put_item(
            TableName=STATE_TABLE,
            Item={
                "id": {"S": webhook_id},
                "expiration": {"N": str(now + 72 * 3600)},
                "status": {"S": "INPROGRESS"},
                "in_progress_expiration": {"N": str((now + 12) * 1000)},
            },
            ConditionExpression="attribute_not_exists(#id) OR #expiry < :now",
            ExpressionAttributeNames={"#id": "id", "#expiry": "expiration"},
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
        doc = json.loads(body)
        ops = build_ops(webhook_id, doc)
        for op in ops:
            if op["action"] == "identify":
                dynamodb.update_item(
                    TableName=STATE_TABLE,
                    Key={"id": {"S": "fresh#" + json.dumps(op["identifiers"], sort_keys=True, separators=(",", ":"))}},
                    UpdateExpression="SET last_event_time = :t, expiration = :e",
                    ConditionExpression="attribute_not_exists(last_event_time) OR last_event_time <= :t",
                    ExpressionAttributeValues={
                        ":t": {"N": str(op["timestamp"])},
                        ":e": {"N": str(now + 30 * 86400)},
                    },
                )
        if len(ops) == 1:
            path, payload = "/api/v2/entity", ops[0]
        else:
            path, payload = "/api/v2/batch", {"batch": ops}
        status = self._post(path, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), cio_headers)
        answer = {"status": "delivered"} if 200 <= status < 300 else {"status": "failed"}
        dynamodb.update_item(
            TableName=STATE_TABLE,
            Key={"id": {"S": webhook_id}},
            UpdateExpression="SET #data = :data, #expiry = :expiry, #status = :status",
            ExpressionAttributeNames={"#data": "data", "#expiry": "expiration", "#status": "status"},
            ExpressionAttributeValues={
                ":data": {"S": json.dumps({"status": 200, "body": answer})},
                ":expiry": {"N": str(now + 72 * 3600)},
                ":status": {"S": "COMPLETED"},
            },
        )
        line = {"level": "INFO", "message": "delivered", "webhook_id": webhook_id, "event_type": doc.get("type")}
        print(json.dumps(line), flush=True)  # one write per line, as a logging handler does
        return _answer(200, answer)

    def _post(self, path: str, data: bytes, headers: dict[str, str]) -> int:
        for attempt in range(2):
            try:
                self._conn.request("POST", path, body=data, headers=headers)
                response = self._conn.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self._conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def build_ops(webhook_id: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    data = doc["data"]
    event_time = int(dt.datetime.fromisoformat(doc["timestamp"]).timestamp())
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else None
    customer_id = customer["customer_id"] if customer else data.get("customer_id")
    identifiers = {"id": customer_id}
    attributes: dict[str, Any] = {}
    currency = data.get("currency") or data.get("settlement_currency")
    for name, value in data.items():
        if name in _NEVER or value is None or isinstance(value, dict | list):
            continue
        if name in _AMOUNTS and isinstance(value, int | str):
            minor = int(value)
            short = "amount" if name == "total_amount" else name
            attributes[short] = minor / 100
            attributes[f"{short}_minor"] = minor
            attributes[f"{short}_currency"] = currency
        else:
            attributes[name] = _seconds(value)
    if isinstance(data.get("product_cart"), list):
        attributes["product_ids"] = [p.get("product_id") for p in data["product_cart"]]
    if isinstance(data.get("metadata"), dict):
        attributes["metadata"] = data["metadata"]
    ops: list[dict[str, Any]] = []
    if customer:
        profile: dict[str, Any] = {"email": customer.get("email"), "name": customer.get("name")}
        if customer.get("phone_number"):
            profile["phone"] = customer["phone_number"]
        profile["dodo_customer_id"] = customer_id
        if data.get("payload_type") == "Subscription":
            for name in _IDENTIFY_SUBSCRIPTION:
                if data.get(name) is not None:
                    profile[f"subscription_{name.removeprefix('subscription_')}"] = _seconds(data[name])
        ops.append(
            {
                "type": "person",
                "identifiers": identifiers,
                "action": "identify",
                "timestamp": event_time,
                "attributes": profile,
            }
        )
    ops.append(
        {
            "type": "person",
            "identifiers": identifiers,
            "action": "event",
            "name": doc["type"],
            "id": _ulid(webhook_id, event_time * 1000),
            "timestamp": event_time,
            "attributes": attributes,
        }
    )
    return ops


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def run(track_url: str, events: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    aws = FakeAws(SECRET_VALUES)
    result = drive(Floor(track_url, aws), events, warmup)
    calls = {k: round(v / len(events), 3) for k, v in sorted(aws.calls.items())}
    return {**result, "aws_calls_per_webhook": calls, "impl": "floor"}


if __name__ == "__main__":
    ingest_main(run, __doc__.splitlines()[0])
