"""A local fake of the Dodo Payments endpoints the bridge reads: two listings and two lookups.

`GET /customers`, `GET /subscriptions`, `GET /payments` and `GET /refunds` (what `dodo-cio
backfill` reads) answer like Dodo's API as its own SDK sees it: Bearer auth, `page_number` counted
from 0 (Dodo's default), `page_size` default 10 and at most 100, `status` filtering, and a body of
`{"items": [...]}`; a page past the end is `{"items": []}`, which is how the SDK and the backfill
know the listing is over. A test points `dodopayments.DodoPayments(base_url=...)` at
:attr:`FakeDodo.base_url`.

`GET /customers/{customer_id}` and `GET /payments/{payment_id}` (the request path's identity
lookups, `dodo_cio.dodo_api`) answer one object, or 404 `{"code": "NOT_FOUND", "message": ...}`
for an id nobody registered. The id is one percent-decoded path segment: an id holding `/` must
arrive escaped, and an unescaped one is a 404 "no route" rather than a lookup. Customers are
those of the listing (:meth:`FakeDodo.add_customer` adds one); payments are registered with
:meth:`FakeDodo.add_payment` (:func:`make_payment` builds one shaped like the SDK's `Payment`).

Fault injection: :meth:`FakeDodo.fail` answers a given page of a given listing with an error
status a number of times (a 500 "after page 2", a 401 for a revoked key); without a page number
it applies to a lookup path (`"/payments/pay_00001"`, or `"/payments/*"` for any payment).
:meth:`FakeDodo.stall` delays answers the same way, to trip a client's read timeout. Every
request is recorded so a test can assert which pages and objects were read.

Run it by hand (`python tests/support/fake_dodo.py --customers 250`) to try the backfill against
the local run: it prints its URL and an API key.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_KEY = "fake-dodo-key"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
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


class FakeDodo:
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
    ) -> FakeDodo:
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
        return f"http://{host}:{port}"

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

    def __enter__(self) -> FakeDodo:
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

    def answer(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any]:
        if authorization != f"Bearer {self.api_key}":
            return 401, {"code": "UNAUTHORIZED", "message": "Invalid API key"}
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


# Each listing: its items and the statuses `?status=` accepts (Dodo's enums as the SDK has them).
LISTINGS: dict[str, Callable[[FakeDodo], tuple[list[dict[str, Any]], tuple[str, ...]]]] = {
    "/customers": lambda f: (f.customers, ()),
    "/subscriptions": lambda f: (f.subscriptions, SUBSCRIPTION_STATUSES),
    "/payments": lambda f: (f.payments, ("succeeded", "failed", "cancelled", "processing")),
    "/refunds": lambda f: (f.refunds, ("succeeded", "failed", "pending", "review")),
    "/disputes": lambda f: (f.disputes, ()),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        fake: FakeDodo = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, payload = fake.answer(parts.path.rstrip("/") or "/", query, self.headers.get("Authorization", ""))
        fake._record(Recorded(parts.path, query, status))
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
    parser = argparse.ArgumentParser(description="Serve a fake Dodo Payments API for trying `dodo-cio backfill`.")
    parser.add_argument("--port", type=int, default=4020)
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--active", type=int, default=10, help="active subscriptions")
    parser.add_argument("--on-hold", type=int, default=2, help="on_hold subscriptions")
    parser.add_argument("--payments", type=int, default=10, help="payments pay_00000... (for GET /payments/{id})")
    args = parser.parse_args()
    fake = FakeDodo.populated(
        args.customers, {"active": args.active, "on_hold": args.on_hold}, n_payments=args.payments, port=args.port
    )
    fake.start()
    print(f"fake Dodo API on {fake.base_url} (API key {fake.api_key!r}); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
