"""`make run`'s stand-in for the parts of Dodo's API the bridge and `dodo-cio` call, shaped as the SDK sees them.

Why a stand-in: `dodo-cio setup`, `reconcile` and `backfill` and the ingest function's customer
lookups all talk to Dodo's API; a local run that could not answer them could not rehearse them.
Every answer is the JSON the `dodopayments` SDK (1.123) parses into its models, behind Bearer auth.

* Listings: `GET /customers`, `/subscriptions`, `/payments`, `/refunds`, `/disputes`, with
  `page_number` counted from 0, `page_size` (default 10, at most 100) and `status` filtering; a page
  past the end is `{"items": []}`, which is how the SDK knows a listing is over.
* Lookups: `GET /{collection}/{id}` for customers, payments, refunds and subscriptions, or 404
  `{"code": "NOT_FOUND", ...}`. The id is one percent-decoded path segment: an id holding `/` must
  arrive escaped; unescaped it is a 404 "no route", not a lookup.
* Webhook endpoints: `POST /webhooks` (create), `GET /webhooks` (cursor pages: `limit`, `iterator`;
  `{"data", "iterator", "done"}`), `GET`/`PATCH`/`DELETE /webhooks/{id}` and
  `GET /webhooks/{id}/secret` (`{"secret": "whsec_..."}`, a fresh one per endpoint), with
  `filter_types` checked against the 48 known event types and `rate_limit` a positive integer.
* Its own controls (no auth, loopback only), for rehearsing: `POST /__dodo/events` with a webhook
  body (`{"type", "data", ...}`) keeps `data` as the object Dodo holds and delivers the body,
  Standard-Webhooks-signed with each endpoint's secret, to every enabled endpoint whose filter lets
  the type through; `?withhold=1` keeps the object and delivers nothing: the webhook Dodo gave up on,
  which `dodo-cio reconcile` must find. The answer lists each delivery's HTTP status.

Tests drive it in-process: :meth:`DodoStandIn.fail` answers a given page of a given listing (or a
lookup path) with an error status a number of times, :meth:`DodoStandIn.stall` delays answers to
trip a client's read timeout, and every request is recorded (:meth:`lookups`, :meth:`pages_read`).
`python -m dodo_cio_local.dodo_standin --customers 250` serves sample data alone, for trying backfill.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import Request, urlopen

API_KEY: Final = "local-dodo-key"  # the stand-in's placeholder, not a secret
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
CONTROL_PREFIX: Final = "/__dodo/"
DELIVERY_TIMEOUT: Final = 15.0  # Dodo gives up on an endpoint after 15 s
WEBHOOK_FIELDS: Final = ("url", "description", "metadata", "disabled", "filter_types", "rate_limit")
PAYLOAD_COLLECTIONS: Final = {
    "Payment": "payments",
    "Refund": "refunds",
    "Subscription": "subscriptions",
    "Dispute": "disputes",
}
COLLECTION_KEYS: Final = {
    "payments": "payment_id",
    "refunds": "refund_id",
    "subscriptions": "subscription_id",
    "disputes": "dispute_id",
}
LOOKUPS = ("/customers", "/payments", "/refunds", "/subscriptions")  # collections with a `GET /{collection}/{id}`
SUBSCRIPTION_STATUSES = ("pending", "active", "on_hold", "paused", "cancelled", "failed", "expired", "past_due")
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_customer(n: int) -> dict[str, Any]:
    """Customer `n` as `GET /customers` lists it (the SDK's `Customer` model)."""
    return {
        "business_id": "bus_fake",
        "created_at": _iso(_EPOCH + timedelta(hours=n)),
        "customer_id": f"cus_{n:05d}",
        "email": f"customer{n}@example.com",
        "name": f"Customer {n}",
        "phone_number": f"+1555{n:07d}" if n % 3 == 0 else None,
        "metadata": {"app_user_id": f"user-{n}"} if n % 2 == 0 else {},
    }


def make_subscription(n: int, status: str, customer: dict[str, Any]) -> dict[str, Any]:
    """Subscription `n` as `GET /subscriptions` lists it (the SDK's `SubscriptionListResponse`)."""
    created = _EPOCH + timedelta(days=n % 300, minutes=n)
    return {
        "subscription_id": f"sub_{n:05d}",
        "status": status,
        "product_id": f"pdt_{n % 4}",
        "product_name": "Pro plan",
        "quantity": 1 + n % 3,
        "recurring_pre_tax_amount": 1900 + 100 * (n % 5),
        "currency": "JPY" if n % 7 == 0 else "USD",
        "tax_inclusive": False,
        "payment_frequency_count": 1,
        "payment_frequency_interval": "Month",
        "subscription_period_count": 12,
        "subscription_period_interval": "Month",
        "trial_period_days": 0,
        "on_demand": False,
        "has_payment_method": True,
        "cancel_at_next_billing_date": False,
        "created_at": _iso(created),
        "previous_billing_date": _iso(created + timedelta(days=30)),
        "next_billing_date": _iso(created + timedelta(days=60)),
        "cancelled_at": None,
        "paused_at": None,
        "billing": {"country": "US", "state": "CA", "city": "SF", "street": "1 Main St", "zipcode": "94105"},
        "customer": {k: customer[k] for k in ("customer_id", "email", "name", "phone_number", "metadata")},
        "discounts": [],
        "metadata": {"plan": "pro"},
    }


def make_refund(n: int, payment: dict[str, Any], amount: int, *, status: str = "succeeded") -> dict[str, Any]:
    """Refund `n` of `payment` as `GET /refunds` lists it (the SDK's `RefundListItem`: no customer)."""
    return {
        "refund_id": f"ref_{n:05d}",
        "payment_id": payment["payment_id"],
        "business_id": "bus_fake",
        "status": status,
        "created_at": _iso(_EPOCH + timedelta(days=n % 300 + 1)),
        "amount": amount,
        "currency": payment["currency"],
        "is_partial": amount < payment["total_amount"],
        "reason": None,
    }


def make_payment(n: int, customer: dict[str, Any], *, status: str = "succeeded") -> dict[str, Any]:
    """Payment `n` by `customer` as `GET /payments/{payment_id}` returns it (the SDK's `Payment`)."""
    created = _EPOCH + timedelta(days=n % 300, minutes=7 * n)
    amount = 1900 + 100 * (n % 5)
    return {
        "payment_id": f"pay_{n:05d}",
        "status": status,
        "business_id": "bus_fake",
        "brand_id": "bus_fake",
        "created_at": _iso(created),
        "updated_at": _iso(created + timedelta(seconds=5)),
        "currency": "USD",
        "total_amount": amount,
        "tax": 0,
        "settlement_amount": amount,
        "settlement_currency": "USD",
        "settlement_tax": 0,
        "billing": {"country": "US", "state": "CA", "city": "SF", "street": "1 Main St", "zipcode": "94105"},
        "customer": {k: customer.get(k) for k in ("customer_id", "email", "name", "phone_number", "metadata")},
        "digital_products_delivered": False,
        "disputes": [],
        "refunds": [],
        "includes_usage": False,
        "is_multi_subscription": False,
        "is_update_payment_method": False,
        "metadata": {},
        "payment_provider": "dodo",
        "payment_method": "card",
        "card_network": "visa",
        "card_last_four": "4242",
        "retry_attempt": 0,
        "service_periods": [],
        "subscription_ids": [],
        "subscription_id": None,
        "charge_type": None,
        "product_cart": [{"product_id": f"pdt_{n % 4}", "quantity": 1}],
    }


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    status: int
    method: str = "GET"


class DodoStandIn:
    """The fake API on loopback, served from a daemon thread; use as a context manager."""

    def __init__(
        self,
        customers: list[dict[str, Any]] | None = None,
        subscriptions: list[dict[str, Any]] | None = None,
        *,
        payments: list[dict[str, Any]] | None = None,
        refunds: list[dict[str, Any]] | None = None,
        api_key: str = API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.customers = list(customers or [])
        self.subscriptions = list(subscriptions or [])
        self.payments = list(payments or [])
        self.refunds = list(refunds or [])
        self.disputes: list[dict[str, Any]] = []
        self.webhooks: dict[str, dict[str, Any]] = {}  # id -> WebhookDetails, plus its "secret"
        self.deliveries: list[tuple[str, str, int]] = []  # (endpoint id, webhook-id, HTTP status)
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._failures: dict[tuple[str, int | None, str | None], list[int]] = {}
        self._stalls: dict[tuple[str, int | None, str | None], list[float]] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @classmethod
    def populated(
        cls, n_customers: int, statuses: dict[str, int] | None = None, *, n_payments: int = 0, **kwargs: Any
    ) -> DodoStandIn:
        """`n_customers` customers and, per status, that many subscriptions spread over them.

        `n_payments` succeeded payments `pay_00000`... are spread over the customers the same way.
        """
        customers = [make_customer(n) for n in range(n_customers)]
        subscriptions: list[dict[str, Any]] = []
        n = 0
        for status, count in (statuses or {}).items():
            for _ in range(count):
                subscriptions.append(make_subscription(n, status, customers[n % len(customers)]))
                n += 1
        payments = [make_payment(i, customers[i % len(customers)]) for i in range(n_payments)]
        return cls(customers, subscriptions, payments=payments, **kwargs)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled answers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DodoStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        path: str,
        page_number: int | None = None,
        status: int = 500,
        *,
        times: int = 1,
        status_filter: str | None = None,
    ) -> None:
        """Answer `path` page `page_number` (of the `status_filter` listing) with `status`, `times` times.

        With no `page_number`, `path` is a lookup as it arrives (`"/customers/cus_00001"`, an id
        as it is escaped on the wire) or a whole collection's lookups (`"/customers/*"`).
        """
        with self._lock:
            self._failures.setdefault((path, page_number, status_filter), []).extend([status] * times)

    def stall(
        self,
        path: str,
        seconds: float,
        page_number: int | None = None,
        *,
        times: int = 1,
        status_filter: str | None = None,
    ) -> None:
        """Hold the answer to `path` (named as for :meth:`fail`) for `seconds` before sending it, `times` times."""
        with self._lock:
            self._stalls.setdefault((path, page_number, status_filter), []).extend([seconds] * times)

    def add_customer(self, customer: dict[str, Any]) -> dict[str, Any]:
        """Register a customer (listed, and found by `GET /customers/{customer_id}`); returns it."""
        with self._lock:
            self.customers.append(customer)
        return customer

    def add_payment(self, payment: dict[str, Any]) -> dict[str, Any]:
        """Register a payment, found by `GET /payments/{payment_id}`; returns it."""
        with self._lock:
            self.payments.append(payment)
        return payment

    def lookups(self, collection: str) -> list[str]:
        """Ids (decoded) of the successful `GET /{collection}/{id}` reads, in order; e.g. `lookups("payments")`."""
        prefix = f"/{collection.strip('/')}/"
        return [unquote(r.path[len(prefix) :]) for r in self.requests if r.path.startswith(prefix) and r.status == 200]

    def pages_read(self, path: str, status_filter: str | None = None) -> list[int]:
        """Page numbers of the successful reads of one listing, in order."""
        return [
            int(r.query.get("page_number", "0"))
            for r in self.requests
            if r.path == path and r.status == 200 and r.query.get("status") == status_filter
        ]

    # -- used by the handler
    def _take_failure(self, path: str, page: int | None, status_filter: str | None) -> int | None:
        with self._lock:
            queued = self._failures.get((path, page, status_filter))
            return queued.pop(0) if queued else None

    def _take_stall(self, path: str, page: int | None, status_filter: str | None) -> float | None:
        with self._lock:
            queued = self._stalls.get((path, page, status_filter))
            return queued.pop(0) if queued else None

    def _injected(self, keys: list[tuple[str, int | None, str | None]]) -> int | None:
        """Sleep out any stall queued for the first of `keys` that has one, then the injected status, if any."""
        for key in keys:
            seconds = self._take_stall(*key)
            if seconds is not None:
                self._stopping.wait(seconds)
                break
        for key in keys:
            status = self._take_failure(*key)
            if status is not None:
                return status
        return None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def answer(
        self, method: str, path: str, query: dict[str, str], authorization: str, body: bytes = b""
    ) -> tuple[int, Any]:
        """(status, JSON) for one request; the HTTP handler only parses and writes."""
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path, query, body)
        if authorization != f"Bearer {self.api_key}":
            return 401, {"code": "UNAUTHORIZED", "message": "Invalid API key"}
        if path == "/webhooks" or path.startswith("/webhooks/"):
            return self._webhooks(method, path, query, body)
        if method != "GET":
            return 405, {"code": "METHOD_NOT_ALLOWED", "message": f"{method} {path}"}
        collection, _, raw_id = path.rpartition("/")
        if collection in LOOKUPS and raw_id:
            return self._lookup(path, collection, unquote(raw_id))
        if path not in LISTINGS:
            return 404, {"code": "NOT_FOUND", "message": f"no route {path}"}
        try:
            page = int(query.get("page_number", "0"))
            size = int(query.get("page_size", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return 422, {"code": "INVALID_REQUEST", "message": "page_number and page_size must be integers"}
        if page < 0 or not 0 <= size <= MAX_PAGE_SIZE:
            return 422, {"code": "INVALID_REQUEST", "message": f"page_size must be 0..{MAX_PAGE_SIZE}"}
        status_filter = query.get("status")
        injected = self._injected([(path, page, status_filter)])
        if injected is not None:
            return injected, {"code": "INTERNAL_SERVER_ERROR", "message": "injected failure"}
        items, statuses = LISTINGS[path](self)
        if status_filter is not None:
            if status_filter not in statuses:
                return 422, {"code": "INVALID_REQUEST", "message": f"unknown status {status_filter}"}
            items = [s for s in items if s.get("status") == status_filter]
        return 200, {"items": items[page * size : (page + 1) * size]}

    def _lookup(self, path: str, collection: str, object_id: str) -> tuple[int, Any]:
        injected = self._injected([(path, None, None), (f"{collection}/*", None, None)])
        if injected is not None:
            return injected, {"code": "INTERNAL_SERVER_ERROR", "message": "injected failure"}
        items, field, noun = {
            "/customers": (self.customers, "customer_id", "Customer"),
            "/payments": (self.payments, "payment_id", "Payment"),
            "/refunds": (self.refunds, "refund_id", "Refund"),
            "/subscriptions": (self.subscriptions, "subscription_id", "Subscription"),
        }[collection]
        with self._lock:
            found = next((item for item in items if item.get(field) == object_id), None)
        if found is None:
            return 404, {"code": "NOT_FOUND", "message": f"{noun} {object_id} not found"}
        return 200, found

    # -- webhook endpoints (the SDK's `client.webhooks`)
    def _webhooks(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = path.split("/")[2:]  # after "/webhooks"
        try:
            fields = json.loads(body) if body else {}
        except ValueError:
            return 400, {"code": "INVALID_REQUEST", "message": "the body is not JSON"}
        if not isinstance(fields, dict):
            return 422, {"code": "INVALID_REQUEST", "message": "the body must be a JSON object"}
        if not parts:
            if method == "GET":
                return self._list_webhooks(query)
            if method == "POST":
                return self._create_webhook(fields)
            return 405, {"code": "METHOD_NOT_ALLOWED", "message": f"{method} /webhooks"}
        with self._lock:
            found = self.webhooks.get(unquote(parts[0]))
        if found is None:
            return 404, {"code": "NOT_FOUND", "message": f"Webhook {unquote(parts[0])} not found"}
        if parts[1:] == ["secret"] and method == "GET":
            return 200, {"secret": found["secret"]}
        if len(parts) != 1:
            return 404, {"code": "NOT_FOUND", "message": f"no route {path}"}
        if method == "GET":
            return 200, _public(found)
        if method == "DELETE":
            with self._lock:
                self.webhooks.pop(found["id"], None)
            return 200, None
        if method == "PATCH":
            problem = _webhook_problem(fields, creating=False)
            if problem:
                return 422, {"code": "INVALID_REQUEST", "message": problem}
            with self._lock:
                found.update({k: v for k, v in fields.items() if k in WEBHOOK_FIELDS})
                found["updated_at"] = _iso(datetime.now(UTC))
            return 200, _public(found)
        return 405, {"code": "METHOD_NOT_ALLOWED", "message": f"{method} {path}"}

    def _create_webhook(self, fields: dict[str, Any]) -> tuple[int, Any]:
        problem = _webhook_problem(fields, creating=True)
        if problem:
            return 422, {"code": "INVALID_REQUEST", "message": problem}
        now = _iso(datetime.now(UTC))
        with self._lock:
            webhook_id = f"ep_{len(self.webhooks) + 1:05d}{secrets.token_hex(4)}"
            record: dict[str, Any] = {
                "id": webhook_id,
                "url": fields["url"],
                "description": fields.get("description") or "",
                "metadata": fields.get("metadata") or {},
                "disabled": bool(fields.get("disabled") or False),
                "filter_types": list(fields.get("filter_types") or []),
                "rate_limit": fields.get("rate_limit"),
                "created_at": now,
                "updated_at": now,
                "secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            }
            self.webhooks[webhook_id] = record
        return 200, _public(record)

    def _list_webhooks(self, query: dict[str, str]) -> tuple[int, Any]:
        try:
            limit = int(query.get("limit", "10"))
            start = int(query.get("iterator") or "0")
        except ValueError:
            return 422, {"code": "INVALID_REQUEST", "message": "limit and iterator must be integers"}
        with self._lock:
            every = [_public(w) for w in self.webhooks.values()]
        page = every[start : start + max(limit, 1)]
        done = start + len(page) >= len(every)
        return 200, {"data": page, "iterator": None if done else str(start + len(page)), "done": done}

    # -- the stand-in's own controls
    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if (method, path) != ("POST", f"{CONTROL_PREFIX}events"):
            return 404, {"code": "NOT_FOUND", "message": f"no route {method} {path}: POST {CONTROL_PREFIX}events"}
        try:
            webhook = json.loads(body)
        except ValueError:
            return 400, {"code": "INVALID_REQUEST", "message": "the body is not JSON"}
        data = webhook.get("data") if isinstance(webhook, dict) else None
        if not isinstance(data, dict) or not isinstance(webhook.get("type"), str):
            return 422, {"code": "INVALID_REQUEST", "message": 'a webhook body: {"type": ..., "data": {...}}'}
        stored = self.keep(data)
        if query.get("withhold") in ("1", "true"):
            return 200, {"stored": stored, "deliveries": []}
        return 200, {"stored": stored, "deliveries": self.deliver(webhook["type"], body)}

    def keep(self, data: dict[str, Any]) -> str | None:
        """Keep a webhook's object as the one Dodo holds (replacing an older copy); returns its collection."""
        collection = PAYLOAD_COLLECTIONS.get(str(data.get("payload_type", "")))
        if collection is None:
            return None
        items: list[dict[str, Any]] = getattr(self, collection)
        key = COLLECTION_KEYS[collection]
        with self._lock:
            items[:] = [item for item in items if item.get(key) != data.get(key)]
            items.append({k: v for k, v in data.items() if k != "payload_type"})
        return collection

    def deliver(self, event_type: str, body: bytes) -> list[dict[str, Any]]:
        """POST `body` to each enabled endpoint whose filter lets `event_type` through, signed with its secret."""
        from dodo_cio.receiving.signature import parse_secrets, signature_headers  # noqa: PLC0415

        with self._lock:
            targets = [
                dict(w)
                for w in self.webhooks.values()
                if not w["disabled"] and (not w["filter_types"] or event_type in w["filter_types"])
            ]
        outcomes: list[dict[str, Any]] = []
        for endpoint in targets:
            headers = {"content-type": "application/json", "user-agent": "dodo-standin"}
            headers.update(signature_headers(parse_secrets(endpoint["secret"])[0], body))
            request = Request(endpoint["url"], data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
            try:
                with urlopen(request, timeout=DELIVERY_TIMEOUT) as answer:  # noqa: S310 - checked on create
                    status = int(answer.status)
            except HTTPError as exc:
                status = exc.code
            except (URLError, OSError):
                status = 0  # no answer: Dodo would retry later; the stand-in reports it
            webhook_id = headers["webhook-id"]
            with self._lock:
                self.deliveries.append((endpoint["id"], webhook_id, status))
            outcomes.append({"endpoint": endpoint["id"], "webhook_id": webhook_id, "status": status})
        return outcomes


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as `WebhookDetails`: everything but its secret."""
    return {k: v for k, v in record.items() if k != "secret"}


def _webhook_problem(fields: dict[str, Any], *, creating: bool) -> str | None:
    """Why Dodo would refuse these endpoint fields (422), or None."""
    from dodo_cio.receiving.events import ALL_TYPES  # noqa: PLC0415

    url = fields.get("url")
    if (creating or "url" in fields) and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return "url must be an http(s) URL"
    types = fields.get("filter_types")
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            return "filter_types must be a list of event types"
        unknown = sorted(set(types) - ALL_TYPES)
        if unknown:
            return f"unknown event types in filter_types: {', '.join(unknown)}"
    limit = fields.get("rate_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        return "rate_limit must be a positive integer or null"
    return None


# Each listing: its items and the statuses `?status=` accepts (Dodo's enums as the SDK has them).
LISTINGS: dict[str, Callable[[DodoStandIn], tuple[list[dict[str, Any]], tuple[str, ...]]]] = {
    "/customers": lambda f: (f.customers, ()),
    "/subscriptions": lambda f: (f.subscriptions, SUBSCRIPTION_STATUSES),
    "/payments": lambda f: (f.payments, ("succeeded", "failed", "cancelled", "processing")),
    "/refunds": lambda f: (f.refunds, ("succeeded", "failed", "pending", "review")),
    "/disputes": lambda f: (f.disputes, ()),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake: DodoStandIn = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length > 0 else b""
        status, payload = fake.answer(
            self.command, parts.path.rstrip("/") or "/", query, self.headers.get("Authorization", ""), request_body
        )
        fake._record(Recorded(parts.path, query, status, self.command))
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (see `stall`)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the stand-in Dodo Payments API alone, with sample data.")
    parser.add_argument("--port", type=int, default=4030)
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--active", type=int, default=10, help="active subscriptions")
    parser.add_argument("--on-hold", type=int, default=2, help="on_hold subscriptions")
    parser.add_argument("--payments", type=int, default=10, help="payments pay_00000... (for GET /payments/{id})")
    args = parser.parse_args()
    fake = DodoStandIn.populated(
        args.customers, {"active": args.active, "on_hold": args.on_hold}, n_payments=args.payments, port=args.port
    )
    fake.start()
    print(f"stand-in Dodo API on {fake.base_url} (API key {fake.api_key!r}); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
