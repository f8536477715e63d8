"""Backfill, part one: what is read from Dodo (listings, the SDK source) and the ops built from it.

Split from dodo_cio_cli.backfill, which runs them; masking for what is printed lives here too,
beside the ops it masks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from dodo_cio.mapping.mapper import (
    CUSTOMER_ID,
    CUSTOMER_STATE,
    STATE,
    TIMESTAMP,
    MappingConfig,
    map_event,
)
from dodo_cio.mapping.profile import customer_profile
from dodo_cio.platform.times import to_unix_ms
from dodo_cio.receiving import events as event_catalogue
from dodo_cio.receiving.models import Customer, DodoEvent, Envelope, PayloadError, parse_subscription

DEFAULT_STATE_FILE: Final = ".backfill-state.json"
DEFAULT_API_KEY_ENV: Final = "DODO_PAYMENTS_API_KEY"
DODO_API_KEY_PARAMETER: Final = "dodo-api-key"
# Active last: a customer with several subscriptions ends with the attributes of the one sent last.
DEFAULT_STATUSES: Final = ("paused", "on_hold", "past_due", "active")
SUBSCRIPTION_STATUSES: Final = ("pending", "active", "on_hold", "paused", "cancelled", "failed", "expired", "past_due")
MAX_PAGE_SIZE: Final = 100  # Dodo's documented maximum
STATE_VERSION: Final = 1
MAX_RECORDED_FAILURES: Final = 200
EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_USAGE: Final = 2

Op = dict[str, Any]
_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


def sdk_client(
    api_key: str,
    *,
    environment: str = "live_mode",
    base_url: str | None = None,
    max_retries: int = 2,
    timeout: float = 30.0,
) -> Any:
    """A `dodopayments.DodoPayments` for `base_url` (a proxy, the local stand-in) or else the named environment.

    With no `base_url` it passes `base_url=None` so a `DODO_PAYMENTS_BASE_URL` in the shell cannot send
    a live key somewhere the operator did not name.
    """
    import dodopayments  # noqa: PLC0415 - only the commands that call Dodo need the SDK (httpx, pydantic)

    if base_url:
        return dodopayments.DodoPayments(
            bearer_token=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )
    return dodopayments.DodoPayments(
        bearer_token=api_key,
        environment=cast(Any, environment),
        base_url=None,
        max_retries=max_retries,
        timeout=timeout,
    )


class BackfillError(Exception):
    """Stops the run with `code` (1: rerun to resume; 2: fix something first) and a message to print."""

    def __init__(self, message: str, *, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- listings and the Dodo source -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One paginated Dodo listing: all customers, the subscriptions in one status, or the succeeded
    refunds or payments (the commercial summary: dodo_cio_cli.backfill_summary)."""

    key: str  # state key: "customers", "subscriptions:<status>", "refunds:succeeded", "payments:succeeded"
    path: str  # "customers" | "subscriptions" | "refunds" | "payments"
    status: str | None = None

    @property
    def label(self) -> str:
        return self.path if self.status is None else f"{self.status} {self.path}"

    @property
    def noun(self) -> str:
        return self.path.removesuffix("s")

    @property
    def id_field(self) -> str:
        return f"{self.noun}_id"


# The summary's listings: refunds first, so each payment page's summaries already net them out.
SUMMARY_LISTINGS: Final = (
    Listing("refunds:succeeded", "refunds", "succeeded"),
    Listing("payments:succeeded", "payments", "succeeded"),
)


def listings(statuses: Sequence[str], *, customers: bool = True, summary: bool = False) -> list[Listing]:
    out = [Listing("customers", "customers")] if customers else []
    if summary:
        out.extend(SUMMARY_LISTINGS)
    out.extend(Listing(f"subscriptions:{s}", "subscriptions", s) for s in statuses)
    return out


def parse_statuses(text: str) -> tuple[str, ...]:
    """`active,on_hold` -> ("active", "on_hold"); unknown or repeated statuses are usage errors."""
    items = [s.strip().lower() for s in text.replace(" ", ",").split(",") if s.strip()]
    unknown = [s for s in items if s not in SUBSCRIPTION_STATUSES]
    if unknown:
        raise BackfillError(f"--statuses: unknown {', '.join(unknown)}; choose from {', '.join(SUBSCRIPTION_STATUSES)}")
    return tuple(dict.fromkeys(items))


class Source(Protocol):
    """Where objects come from: one page of one listing, as plain JSON objects."""

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]: ...


class SdkSource:
    """Dodo Payments through its official SDK, one numbered page at a time."""

    def __init__(
        self, api_key: str, *, environment: str = "live_mode", base_url: str | None = None, **sdk: Any
    ) -> None:
        """`sdk`: `max_retries` and `timeout`, as `sdk_client` takes them."""
        import dodopayments  # noqa: PLC0415 - only the backfill needs the SDK (httpx, pydantic)

        self._sdk = dodopayments
        self.environment = environment
        self.where = base_url or dodopayments.ENVIRONMENTS.get(environment, environment)
        self._client = sdk_client(api_key, environment=environment, base_url=base_url, **sdk)

    def page(self, listing: Listing, page_number: int, page_size: int) -> list[dict[str, Any]]:
        sdk = self._sdk
        where = f"{listing.label} page {page_number}"
        try:
            if listing.path == "customers":
                result: Any = self._client.customers.list(page_number=page_number, page_size=page_size)
            elif listing.path == "payments":
                result = self._client.payments.list(page_number=page_number, page_size=page_size, status="succeeded")
            elif listing.path == "refunds":
                result = self._client.refunds.list(page_number=page_number, page_size=page_size, status="succeeded")
            else:
                result = self._client.subscriptions.list(
                    page_number=page_number, page_size=page_size, status=cast(Any, listing.status)
                )
        except (sdk.AuthenticationError, sdk.PermissionDeniedError) as exc:
            other = "test_mode" if self.environment == "live_mode" else "live_mode"
            raise BackfillError(
                f"Dodo Payments rejected the API key (HTTP {exc.status_code}) reading {where} from {self.where}; "
                f"check the key, and that it belongs to this mode (a {other} key needs --environment {other})"
            ) from None
        except (sdk.NotFoundError, sdk.BadRequestError, sdk.UnprocessableEntityError) as exc:
            raise BackfillError(
                f"Dodo Payments answered HTTP {exc.status_code} reading {where} from {self.where}: "
                "check --base-url / --environment and --page-size"
            ) from None
        except sdk.APIStatusError as exc:  # 429 and 5xx after the SDK's own retries: try again later
            raise BackfillError(
                f"Dodo Payments answered HTTP {exc.status_code} reading {where}", code=EXIT_INCOMPLETE
            ) from None
        except sdk.APIConnectionError as exc:
            raise BackfillError(
                f"cannot reach Dodo Payments at {self.where} reading {where}: {type(exc).__name__}",
                code=EXIT_INCOMPLETE,
            ) from None
        except sdk.APIError as exc:  # an answer the SDK could not read as a page
            raise BackfillError(f"unexpected answer from Dodo Payments reading {where}: {exc}") from None
        return [item.to_dict(mode="json", warnings=False) for item in result.items]

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        """One payment (a refund's customer), or None when Dodo does not know it."""
        sdk = self._sdk
        try:
            found = self._client.payments.retrieve(payment_id)
        except sdk.NotFoundError:
            return None
        except (sdk.APIStatusError, sdk.APIConnectionError) as exc:
            raise BackfillError(
                f"cannot read payment {payment_id[:40]} from Dodo Payments ({type(exc).__name__})", code=EXIT_INCOMPLETE
            ) from None
        data: dict[str, Any] = found.to_dict(mode="json", warnings=False)
        return data

    def close(self) -> None:
        self._client.close()


# -- from Dodo objects to Customer.io ops -----------------------------------------------------------


@dataclass(slots=True)
class Built:
    """One Dodo object's ops, or why it has none that can be sent."""

    object_id: str
    ops: list[Op] = field(default_factory=list)
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)


class OpBuilder:
    """The same mapping as the webhooks, with the backfill's rules on top (see the module doc)."""

    def __init__(self, mapping: MappingConfig, *, events: bool = False) -> None:
        self.mapping = mapping
        self.events = events

    def build(self, listing: Listing, raw: Mapping[str, Any], now: int) -> Built:
        if listing.path in ("payments", "refunds"):  # they only feed the summary (backfill_summary)
            return Built(str(raw.get(listing.id_field) or "?"))
        built = self.customer(raw, now) if listing.path == "customers" else self.subscription(raw, now)
        return self._fit(built)

    def customer(self, raw: Mapping[str, Any], now: int) -> Built:
        object_id = str(raw.get("customer_id") or "?")
        try:
            customer = Customer.parse(raw, "customer")
        except PayloadError as exc:
            return Built(object_id, problem=f"unusable customer: {exc}")
        if not self.mapping.send_identify:
            return Built(object_id)
        removed = self.mapping.removed_attributes.get("*", frozenset())
        profile = customer_profile(
            customer, metadata=self.mapping.profile_metadata, contact=self.mapping.contact_fields_sent()
        )
        attributes = {k: v for k, v in profile.items() if k not in removed}
        identifiers = self.mapping.identifier.resolve(customer.customer_id, customer.email, [customer.metadata])
        if identifiers is None:  # a fallback id would make a second person; the webhooks would not find it
            return Built(object_id, problem=f"no {self.mapping.identifier.text} for this customer: not sent")
        op: Op = {
            "type": "person",
            "identifiers": identifiers,
            "action": "identify",
            "timestamp": now,
            "attributes": attributes,
            CUSTOMER_ID: customer.customer_id,
            STATE: CUSTOMER_STATE,
        }
        return Built(object_id, [op])

    def subscription(self, raw: Mapping[str, Any], now: int) -> Built:
        object_id = str(raw.get("subscription_id") or "?")
        status = str(raw.get("status") or "")
        own_type = f"subscription.{status}"
        event_type = own_type if event_catalogue.is_known(own_type) else "subscription.updated"
        data = {**raw, "payload_type": "Subscription"}
        created_ms = to_unix_ms(raw.get("created_at"))
        if created_ms is None:
            created_ms = now * 1000
        try:
            payload = parse_subscription(data)
        except PayloadError as exc:
            return Built(object_id, problem=f"unusable subscription: {exc}")
        envelope = Envelope(
            type=event_type,
            timestamp=created_ms // 1000,
            timestamp_ms=created_ms,
            data=data,
            business_id=raw.get("business_id") if isinstance(raw.get("business_id"), str) else None,
        )
        event = DodoEvent(webhook_id=f"backfill:{payload.subscription_id}", envelope=envelope, payload=payload)
        try:
            mapped = map_event(event, self.mapping)
        except Exception as exc:  # noqa: BLE001 - the merchant's transform; report it, carry on
            return Built(object_id, problem=f"the mapping failed: {type(exc).__name__}: {redact(str(exc))[:200]}")
        if any(not op.get("identifiers") and op.get("type") != "object" for op in mapped):
            return Built(object_id, problem=f"no {self.mapping.identifier.text} for its customer: not sent")
        ops: list[Op] = []
        for op in mapped:
            if op.get(STATE) == CUSTOMER_STATE:
                continue  # the customer's own fields come from the customers listing, read at its own time
            if op.get("action") == "identify":
                ops.append({**op, TIMESTAMP: now} if op.get("type") == "object" else {**op, "timestamp": now})
            elif self.events and event_type == own_type:
                marked = op.get("action") == "event"
                ops.append({**op, "attributes": {**op.get("attributes", {}), "backfill": True}} if marked else op)
        return Built(object_id, ops)

    @staticmethod
    def _fit(built: Built) -> Built:
        from dodo_cio.mapping.limits import fit_op  # noqa: PLC0415

        fitted: list[Op] = []
        for op in built.ops:
            result = fit_op(op)
            if result.unfixable:
                return Built(built.object_id, problem=f"cannot be sent: {result.unfixable}", warnings=built.warnings)
            built.warnings.extend(result.warnings)
            fitted.append(result.op)
        built.ops = fitted
        return built


# -- masking for what is printed --------------------------------------------------------------------


def redact(text: str) -> str:
    return _EMAIL.sub("<email>", text) if "@" in text else text


def _mask_email(value: str) -> str:
    local, sep, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if sep else value


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if "@" in value:
            return _EMAIL.sub(lambda m: _mask_email(m.group(0)), value)
        if key in {"phone", "phone_number"}:
            return "*" * max(len(value) - 2, 0) + value[-2:]
        if key in {"name", "first_name", "last_name"}:
            return " ".join(part[:1] + "***" for part in value.split())
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    return value


def mask_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `op` safe to print: emails, phone numbers and names masked wherever they appear."""
    return {k: _mask_value(str(k), v) for k, v in op.items()}
