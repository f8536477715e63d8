"""What the contract tests share: each sample's ops as the bridge would deliver them, and a recorder.

Both APIs' contract tests (`test_pipelines_requests.py`) send the same ops -- the real mapping, identity
resolution and op fitting -- through their API's real client, so the two can only differ in how each client
says them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from dodo_cio.configuration.settings import Settings
from dodo_cio.mapping.limits import fit_op
from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, map_event
from dodo_cio.receiving.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio.state.identity import Known, Resolver
from dodo_cio.state.table import Lookup

WEBHOOK_ID = "msg_contract"


@dataclass(frozen=True)
class Sent:
    url: str
    body: bytes


@dataclass
class Recorder:
    """A stand-in requests.Session that records what a client would put on the wire and answers 200."""

    sent: list[Sent] = field(default_factory=list)

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: Any) -> Any:
        self.sent.append(Sent(url, data))

        class _Response:
            status_code = 200
            content = b"{}"
            headers: ClassVar[dict[str, str]] = {}

        return _Response()

    def close(self) -> None:
        pass


class _Directory:
    """What the state table would know after the customer's first payment: every customer, every payment."""

    def __init__(self, strategy: IdentifierStrategy) -> None:
        self.strategy = strategy

    def lookup(self, customer_ids: Any, payment_ids: Any) -> Lookup:
        payments = {p: "cus_from_payment" for p in payment_ids}
        customers = {}
        for c in set(customer_ids) | set(payments.values()):
            ident = self.strategy.resolve(c, f"{c}@example.com", [{self.strategy.metadata_key or "": f"user-{c}"}])
            assert ident is not None
            customers[c] = ident
        return Lookup(customers, payments)


def deployment(api: str, strategy: str, object_type: str | None) -> Settings:
    """The settings a deployment with these template parameters would read from its environment."""
    env = {"CUSTOMERIO_API": api, "CUSTOMERIO_IDENTIFIER": strategy}
    if object_type is not None:
        env["CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID"] = object_type
    return Settings.from_env(env)


def ready_ops(raw: bytes, config: MappingConfig) -> list[dict[str, Any]]:
    """The sample's ops resolved and fitted: exactly what the ingest path hands its client."""
    envelope = parse_envelope(parse_json(raw))
    payload = parse_payload(envelope)
    assert payload is not None
    identifier = config.identifier
    event = DodoEvent(WEBHOOK_ID, envelope, payload)
    ops, unresolved = Resolver(identifier, _Directory(identifier)).resolve(map_event(event, config), Known())
    assert unresolved == []
    return [fit_op(op).op for op in ops]
