"""Seeding the commercial summary (dodo_cio_cli.backfill_summary) against a table that misbehaves on purpose."""

from __future__ import annotations

from typing import Any

import pytest

from dodo_cio.mapping.mapper import MappingConfig
from dodo_cio.state.summary import Ledger
from dodo_cio.state.table import LedgerConflict, LedgerWrite, StateUnavailable
from dodo_cio_cli.backfill_source import SUMMARY_LISTINGS, BackfillError, Built
from dodo_cio_cli.backfill_summary import SummarySeeder

REFUNDS, PAYMENTS = SUMMARY_LISTINGS
WHO = {"customer_id": "cus_1", "email": "maya@example.com", "name": "Maya", "metadata": {}}


class Table:
    """A ledger store whose writes can be made to fail: `moves` conflicts first, then `down` for good."""

    def __init__(self, *, moves: int = 0, down: bool = False) -> None:
        self.ledgers: dict[str, str] = {}
        self.markers: set[str] = set()
        self.moves, self.down, self.writes = moves, down, 0

    def read_ledger(self, customer_id: str) -> str | None:
        return self.ledgers.get(customer_id)

    def write_ledger(self, write: LedgerWrite, *, piece: str, stamp: int) -> None:
        if self.down:
            raise StateUnavailable("EndpointConnectionError")
        if self.moves:
            self.moves -= 1
            raise LedgerConflict(counted=False)
        if write.marker in self.markers:
            raise LedgerConflict(counted=True)
        assert self.ledgers.get(write.customer_id) == write.old and piece == "summary"
        self.ledgers[write.customer_id] = write.new
        self.writes += 1
        if write.marker:
            self.markers.add(write.marker)


class Source:
    def __init__(self, payments: dict[str, dict[str, Any]]) -> None:
        self.payments = payments

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        return self.payments.get(payment_id)


def paid(payment_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"payment_id": payment_id, "total_amount": amount, "currency": "USD", "customer": WHO,
            "created_at": "2026-10-01T09:00:00Z", "payment_method": "card", **extra}  # fmt: skip


def seeder(table: Table, payments: dict[str, dict[str, Any]] | None = None, **kw: Any) -> SummarySeeder:
    return SummarySeeder(table, MappingConfig(), Source(payments or {}), **kw)  # type: ignore[arg-type]


def run(s: SummarySeeder, listing: Any, items: list[dict[str, Any]]) -> list[Built]:
    built = [Built(str(i.get(listing.id_field))) for i in items]
    s.page(listing, items, built, now=1_800_000_000)
    return built


def test_one_summary_per_customer_per_page_on_their_last_object() -> None:
    table = Table()
    built = run(seeder(table), PAYMENTS, [paid("pay_1", 4900), paid("pay_2", 100)])
    assert built[0].ops == [] and [op["action"] for op in built[1].ops] == ["identify"]
    assert built[1].ops[0]["attributes"]["total_spent"] == 50 and built[1].ops[0]["identifiers"] == {"id": "cus_1"}
    stamps = [Ledger.loads(table.ledgers["cus_1"]).stamp, built[1].ops[0]["timestamp"]]
    assert stamps[0] == stamps[1] > 1_790_845_200  # after the first count's: the newer summary wins


def test_a_ledger_moved_by_a_webhook_is_read_again_and_a_table_down_stops_resumably() -> None:
    table = Table(moves=2)
    s = seeder(table)
    run(s, PAYMENTS, [paid("pay_1", 4900)])
    assert table.writes == 1 and s.counts.counted == 1
    with pytest.raises(BackfillError) as stopped:
        run(seeder(Table(down=True)), PAYMENTS, [paid("pay_1", 4900)])
    assert stopped.value.code == 1  # rerun to resume
    with pytest.raises(BackfillError):
        run(seeder(Table(moves=99)), PAYMENTS, [paid("pay_1", 4900)])


def test_counted_before_is_left_alone_and_sends_nothing() -> None:
    table = Table()
    run(seeder(table), PAYMENTS, [paid("pay_1", 4900)])
    again = seeder(table)
    built = run(again, PAYMENTS, [paid("pay_1", 4900)])
    assert (again.counts.counted, again.counts.already, built[0].ops) == (0, 1, [])
    assert Ledger.loads(table.ledgers["cus_1"]).attributes()["payments_count"] == 1


def test_a_refund_finds_its_customer_through_its_payment_or_is_reported() -> None:
    table = Table()
    s = seeder(table, {"pay_1": paid("pay_1", 4900)})
    refund = {"refund_id": "ref_1", "payment_id": "pay_1", "amount": 900, "currency": "USD"}
    lost = {**refund, "refund_id": "ref_2", "payment_id": "pay_gone"}
    nulled = {**refund, "refund_id": "ref_3", "amount": None}
    built = run(s, REFUNDS, [refund, lost, nulled])
    assert built[0].ops[0]["attributes"]["total_refunded"] == 9
    assert built[1].problem and "pay_gone" in built[1].problem and built[2].problem
    assert (s.counts.counted, s.counts.skipped) == (1, 2)


def test_a_dry_run_writes_nothing_yet_adds_up_across_pages() -> None:
    table = Table()
    s = seeder(table, dry_run=True)
    run(s, PAYMENTS, [paid("pay_1", 4900)])
    built = run(s, PAYMENTS, [paid("pay_2", 100)])
    assert table.ledgers == {} and built[0].ops[0]["attributes"]["total_spent"] == 50
