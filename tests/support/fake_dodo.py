"""A local fake of the two Dodo Payments list endpoints `dodo-cio backfill` reads.

`GET /customers` and `GET /subscriptions` answer like Dodo's API as its own SDK sees it: Bearer
auth, `page_number` counted from 0 (Dodo's default), `page_size` default 10 and at most 100,
`status` filtering subscriptions, and a body of `{"items": [...]}`; a page past the end is
`{"items": []}`, which is how the SDK and the backfill know the listing is over. A test points
`dodopayments.DodoPayments(base_url=...)` at :attr:`FakeDodo.base_url`.

Fault injection: :meth:`FakeDodo.fail` answers a given page of a given listing with an error
status a number of times (a 500 "after page 2", a 401 for a revoked key). Every request is
recorded so a test can assert which pages were read.

Run it by hand (`python tests/support/fake_dodo.py --customers 250`) to try the backfill against
the local run: it prints its URL and an API key.
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "fake-dodo-key"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
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
        api_key: str = API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.customers = list(customers or [])
        self.subscriptions = list(subscriptions or [])
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._failures: dict[tuple[str, int, str | None], list[int]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @classmethod
    def populated(cls, n_customers: int, statuses: dict[str, int] | None = None, **kwargs: Any) -> FakeDodo:
        """`n_customers` customers and, per status, that many subscriptions spread over them."""
        customers = [make_customer(n) for n in range(n_customers)]
        subscriptions: list[dict[str, Any]] = []
        n = 0
        for status, count in (statuses or {}).items():
            for _ in range(count):
                subscriptions.append(make_subscription(n, status, customers[n % len(customers)]))
                n += 1
        return cls(customers, subscriptions, **kwargs)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
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
        self, path: str, page_number: int, status: int = 500, *, times: int = 1, status_filter: str | None = None
    ) -> None:
        """Answer `path` page `page_number` (of the `status_filter` listing) with `status`, `times` times."""
        with self._lock:
            self._failures.setdefault((path, page_number, status_filter), []).extend([status] * times)

    def pages_read(self, path: str, status_filter: str | None = None) -> list[int]:
        """Page numbers of the successful reads of one listing, in order."""
        return [
            int(r.query.get("page_number", "0"))
            for r in self.requests
            if r.path == path and r.status == 200 and r.query.get("status") == status_filter
        ]

    # -- used by the handler
    def _take_failure(self, path: str, page: int, status_filter: str | None) -> int | None:
        with self._lock:
            queued = self._failures.get((path, page, status_filter))
            return queued.pop(0) if queued else None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def answer(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any]:
        if authorization != f"Bearer {self.api_key}":
            return 401, {"code": "UNAUTHORIZED", "message": "Invalid API key"}
        if path not in ("/customers", "/subscriptions"):
            return 404, {"code": "NOT_FOUND", "message": f"no route {path}"}
        try:
            page = int(query.get("page_number", "0"))
            size = int(query.get("page_size", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return 422, {"code": "INVALID_REQUEST", "message": "page_number and page_size must be integers"}
        if page < 0 or not 0 <= size <= MAX_PAGE_SIZE:
            return 422, {"code": "INVALID_REQUEST", "message": f"page_size must be 0..{MAX_PAGE_SIZE}"}
        status_filter = query.get("status")
        injected = self._take_failure(path, page, status_filter)
        if injected is not None:
            return injected, {"code": "INTERNAL_SERVER_ERROR", "message": "injected failure"}
        items = self.customers if path == "/customers" else self.subscriptions
        if status_filter is not None:
            if status_filter not in SUBSCRIPTION_STATUSES:
                return 422, {"code": "INVALID_REQUEST", "message": f"unknown status {status_filter}"}
            items = [s for s in items if s.get("status") == status_filter]
        return 200, {"items": items[page * size : (page + 1) * size]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        fake: FakeDodo = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, payload = fake.answer(parts.path.rstrip("/") or "/", query, self.headers.get("Authorization", ""))
        fake._record(Recorded(parts.path, query, status))
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Dodo Payments API for trying `dodo-cio backfill`.")
    parser.add_argument("--port", type=int, default=4020)
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--active", type=int, default=10, help="active subscriptions")
    parser.add_argument("--on-hold", type=int, default=2, help="on_hold subscriptions")
    args = parser.parse_args()
    fake = FakeDodo.populated(args.customers, {"active": args.active, "on_hold": args.on_hold}, port=args.port)
    fake.start()
    print(f"fake Dodo API on {fake.base_url} (API key {fake.api_key!r}); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
