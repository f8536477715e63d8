"""Per-customer records in the state table: who a customer is, and how new each piece of their state is.

One item per Dodo customer, `cust#<customer_id>`, holds
  ident:<strategy>  the customer's Customer.io identifiers under that strategy (JSON), so a
                  webhook that names only the customer id reaches the same person;
  t#<piece>       the Dodo event time of the newest identify applied for each piece of state:
                  `t#customer` (the person's own fields), `t#subscription` (the subscription
                  attributes on the profile) or `t#subscription:<id>` (one subscription object).
                  `t#paid` is not an identify's: the newest `payment.succeeded` of the customer, so
                  an abandoned checkout delivered after it is not sent as one (dodo_cio.state.identity).
  email           under the `customer_id` strategy only, the customer's email as Dodo last stated it
                  (newest wins with `t#customer`), so an abandoned checkout that names only the
                  customer id can still give its person an email address (dodo_cio.state.identity).
  ledger          the customer's commercial summary (dodo_cio.state.summary), as JSON.
One item per payment seen, `pay#<payment_id>` -> `customer_id`, lets a dispute (which names only its
payment) find its customer. One item per payment or refund counted in a ledger, `paid#<payment_id>`
or `refunded#<refund_id>`, makes the counting exactly once: it is written with the ledger, in the
same transaction, only if it does not exist yet (`LedgerWrite`, `LedgerConflict`).

Freshness is per piece, not per person: a payment stamped a second after the subscription renewal
it paid for must not stop the renewal's new billing date, and an older retry of either must never
overwrite what is newer. Each piece's time moves forward with a conditional write
(`attribute_not_exists(t) OR t <= :t`); ties are admitted (two events in one second both apply).

All of a webhook's writes go in one `TransactWriteItems` call, together with the idempotency record
on the ingest path, so the directory and the freshness checks add no DynamoDB round trip there. A
condition that fails cancels the transaction; the cancellation reasons carry the item as it was
(`ReturnValuesOnConditionCheckFailure=ALL_OLD`), which names the stale pieces, and the call is made
again without them (the uncommon case costs one more round trip).

Records are kept for 400 days after the last write: a customer may come back after months, and a
directory entry lost to expiry only costs a lookup in Dodo's API.

Some inputs DynamoDB refuses whatever the moment: a key over 2,048 bytes (a Dodo id nobody expects,
but a signed body can carry one), an attribute name over 64 KB, an item over 400 KB. Retrying
cannot help, so they are not "the table is unavailable": keys and piece names are measured before
any call (`plan_problem`, `claim_problem`), a key that cannot exist is not looked up, and a
`ValidationException` DynamoDB answers all the same raises `StateRejected`, which callers treat as
permanent (the ingest path keeps the webhook on the quarantine queue, the retry path dead-letters
the op), never as a reason to ask for the same call again.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

CUSTOMER_PREFIX: Final = "cust#"
PAYMENT_PREFIX: Final = "pay#"
RECEIPT_PREFIX: Final = "seen#"  # a Dodo object's webhooks as they arrived (`Receipt`)
RECEIPT_EVENT_PREFIX: Final = "ev:"
RECEIPT_DAYS: Final = 35
LEGACY_PREFIX: Final = "who#"  # identifies parked before per-piece state existed: one piece per person
LEGACY_PIECE: Final = "profile"
PIECE_PREFIX: Final = "t#"
PAID_PIECE: Final = "paid"  # t#paid: the Dodo event time of the customer's newest succeeded payment
EMAIL_ATTRIBUTE: Final = "email"
LEDGER_ATTRIBUTE: Final = "ledger"
RECORD_TTL_SECONDS: Final = 400 * 24 * 3600
MAX_TRANSACTION_ITEMS: Final = 100
_MAX_ROUNDS: Final = 4  # each round removes at least one stale piece; more means something is wrong
_BATCH_GET_KEYS: Final = 100
# DynamoDB's own limits (Developer Guide, "Service, account, and table quotas"): a partition key of
# at most 2,048 bytes, an attribute name of at most 65,535 bytes, both counted in UTF-8.
MAX_KEY_BYTES: Final = 2048
MAX_ATTRIBUTE_NAME_BYTES: Final = 65535


class StateUnavailable(Exception):
    """The state table could not be read or written (unreachable, throttled, conflicting writes)."""


class StateRejected(Exception):
    """DynamoDB refuses these records as they are (a key or name over its limit, an item too large).

    Permanent: the same call fails the same way every time. `str()` is the reason, without values.
    """


class LedgerConflict(Exception):
    """The ledger write cannot go as planned; nothing was written.

    `counted`: the payment or refund was already counted (under another webhook id, or by the
    backfill), so the webhook must not count it again. Otherwise the ledger changed since it
    was read (another webhook of the same customer): read it again and recompute.
    """

    def __init__(self, *, counted: bool) -> None:
        super().__init__("already counted" if counted else "the ledger changed since it was read")
        self.counted = counted


class ExtraItemFailed(Exception):
    """A condition on one of the caller's own transaction items failed (e.g. the idempotency record)."""

    def __init__(self, index: int, item: Mapping[str, Any] | None) -> None:
        super().__init__(f"transaction item {index} failed its condition")
        self.index = index
        self.item = item


@dataclass
class RecordWrite:
    """What one webhook (or one retry batch) sets on one customer's record."""

    key: str
    pieces: dict[str, int] = field(default_factory=dict)  # piece -> Dodo event time (Unix seconds)
    identifiers: dict[str, str] | None = None  # set with the "customer" piece: newest wins
    learned: dict[str, str] | None = None  # from a lookup: set only if the record has none
    email: str | None = None  # set with the "customer" piece: newest wins
    learned_email: str | None = None  # from a lookup: set only if the record has none
    # Fail the write when the stored identifiers differ from `identifiers` (an email change under the
    # email strategy): the commit learns the old ones (`StatePlan.renamed`) and writes again without it.
    guard: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """That a webhook about a Dodo object arrived: what `dodo-cio reconcile` compares Dodo's history with.

    Kept as `seen#<object_id>`, one attribute per event type (`ev:<type>`: webhook id, Dodo's event
    time, when it arrived), for `receipt_days` (README "Proving nothing is missing"). It rides in the
    duplicate check's transaction: no round trip of its own.
    """

    object_id: str
    event_type: str
    webhook_id: str
    at: int  # Dodo's event time
    received_at: int
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerWrite:
    """A customer's ledger replaced (`old` -> `new`, compared as stored text) with its counted marker."""

    customer_id: str
    old: str | None  # None: the record has no ledger yet
    new: str
    marker: str | None  # the key of the "counted" record, written only if absent; None: nothing counted


@dataclass
class StatePlan:
    records: dict[str, RecordWrite] = field(default_factory=dict)
    payments: dict[str, str] = field(default_factory=dict)  # payment_id -> customer_id
    stale: set[tuple[str, str]] = field(default_factory=set)  # filled in by whoever commits the plan
    committed: bool = False
    ledger: LedgerWrite | None = None  # only on the ingest path, with the duplicate check's record
    # Filled in by the commit, per customer record: the identifiers a guarded write replaced (the
    # customer changed address), and the newer ones the directory kept when this plan's customer
    # piece was stale (an older webhook still naming the old address).
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)
    current: dict[str, dict[str, str]] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)  # only with the duplicate check's record

    def record(self, key: str) -> RecordWrite:
        return self.records.setdefault(key, RecordWrite(key))

    def claim(self, key: str, piece: str, timestamp: int) -> None:
        pieces = self.record(key).pieces
        pieces[piece] = max(timestamp, pieces.get(piece, timestamp))

    def __bool__(self) -> bool:
        return (
            bool(self.payments)
            or bool(self.receipts)
            or self.ledger is not None
            or any(r.pieces or r.identifiers or r.learned or r.email or r.learned_email for r in self.records.values())
        )


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the directory knows: customer id -> identifiers, payment id -> customer id.

    `emails` and `paid`: customer id -> the stored email (customer_id strategy) and the time of the
    newest succeeded payment, for the customers whose record has them.
    """

    customers: Mapping[str, Mapping[str, str]]
    payments: Mapping[str, str]
    emails: Mapping[str, str] = field(default_factory=dict)
    paid: Mapping[str, int] = field(default_factory=dict)


def customer_key(customer_id: str) -> str:
    return CUSTOMER_PREFIX + customer_id


def legacy_key(identifiers: Mapping[str, Any]) -> str:
    return LEGACY_PREFIX + json.dumps(dict(identifiers), sort_keys=True, separators=(",", ":"))


class StateTable:
    """Reads and transactional writes of the per-customer records; one client per container."""

    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], Any],
        *,
        ident: str = "ident:customer_id",
        clock: Callable[[], float] = time.time,
        ttl_seconds: int = RECORD_TTL_SECONDS,
        receipt_days: int = RECEIPT_DAYS,
    ) -> None:
        self.table_name = table_name
        self._ident = ident
        self._factory = client_factory
        self._client: Any = None
        self._clock = clock
        self._ttl = ttl_seconds
        self._receipt_days = receipt_days

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    # -- reads ----------------------------------------------------------------------------------

    def lookup(self, customer_ids: Iterable[str], payment_ids: Iterable[str]) -> Lookup:
        """One BatchGetItem per 100 keys; a payment's customer is looked up in a second call if needed."""
        payments: dict[str, str] = {}
        for key, item in self._get(PAYMENT_PREFIX + p for p in set(payment_ids)).items():
            customer_id = item_str(item, "customer_id")
            if customer_id:
                payments[key.removeprefix(PAYMENT_PREFIX)] = customer_id
        wanted = set(customer_ids) | set(payments.values())
        customers: dict[str, Mapping[str, str]] = {}
        emails: dict[str, str] = {}
        paid: dict[str, int] = {}
        for key, item in self._get(customer_key(c) for c in wanted).items():
            customer_id = key.removeprefix(CUSTOMER_PREFIX)
            ident = _identifiers(item_str(item, self._ident))
            if ident:
                customers[customer_id] = ident
            email = item_str(item, EMAIL_ATTRIBUTE)
            if email:
                emails[customer_id] = email
            paid_at = item_int(item, PIECE_PREFIX + PAID_PIECE)
            if paid_at is not None:
                paid[customer_id] = paid_at
        return Lookup(customers, payments, emails, paid)

    def read_ledger(self, customer_id: str) -> str | None:
        """The customer's stored ledger text (None: none yet), read consistently: it is compared on write."""
        key = customer_key(customer_id)
        problem = key_problem(key)
        if problem is not None:
            raise StateRejected(problem)
        try:
            item = self.client.get_item(
                TableName=self.table_name,
                Key={"id": {"S": key}},
                ConsistentRead=True,
                ProjectionExpression="#l",
                ExpressionAttributeNames={"#l": LEDGER_ATTRIBUTE},
            ).get("Item")
        except Exception as exc:
            raise _classified(exc) from exc
        return item_str(item, LEDGER_ATTRIBUTE) if item else None

    def _get(self, keys: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        # A key DynamoDB would refuse cannot have been written, so it is not there: asking would
        # only fail the whole batch with a ValidationException.
        pending = sorted(k for k in set(keys) if key_problem(k) is None)
        found: dict[str, Mapping[str, Any]] = {}
        try:
            while pending:
                chunk, pending = pending[:_BATCH_GET_KEYS], pending[_BATCH_GET_KEYS:]
                request: dict[str, Any] = {self.table_name: {"Keys": [{"id": {"S": k}} for k in chunk]}}
                for _ in range(_MAX_ROUNDS):
                    answer = self.client.batch_get_item(RequestItems=request)
                    for item in answer.get("Responses", {}).get(self.table_name, []):
                        found[item["id"]["S"]] = item
                    request = answer.get("UnprocessedKeys") or {}
                    if not request:
                        break
                else:
                    raise StateUnavailable("state table kept keys unprocessed")
        except StateUnavailable:
            raise
        except Exception as exc:
            raise _classified(exc) from exc
        return found

    # -- writes ---------------------------------------------------------------------------------

    def commit(self, plan: StatePlan, extra_items: Sequence[Mapping[str, Any]] = ()) -> set[tuple[str, str]]:
        """Write the plan (and the caller's own items, all-or-nothing); return the stale (record, piece)s.

        Raises `ExtraItemFailed` when one of `extra_items` fails its condition (nothing is written),
        `StateRejected` when DynamoDB would refuse the records as they are (checked before any call
        where it can be measured), `StateUnavailable` for anything else that stops the write.
        """
        problem = plan_problem(plan)
        if problem is not None:
            raise StateRejected(problem)
        stale: set[tuple[str, str]] = set()
        records = {k: replace(r, pieces=dict(r.pieces)) for k, r in plan.records.items()}
        payments = dict(plan.payments)
        extras = [dict(item) for item in extra_items]
        ledger = plan.ledger
        if ledger is not None:
            if not extras:  # its marker and the webhook's own record stand or fall together
                raise ValueError("a ledger write rides only with the duplicate check's record")
            records.setdefault(customer_key(ledger.customer_id), RecordWrite(customer_key(ledger.customer_id)))
        for _ in range(_MAX_ROUNDS):
            items = self._items(records, payments, ledger) + self._receipt_items(plan.receipts)
            if not items and not extras:
                plan.committed, plan.stale = True, stale
                return stale
            chunks = _chunks(items, MAX_TRANSACTION_ITEMS - len(extras))
            if extras and len(chunks) > 1:  # the caller's items must be all-or-nothing with the plan
                raise ValueError(f"a plan with extra items must fit one transaction ({MAX_TRANSACTION_ITEMS} items)")
            newly: set[tuple[str, str]] = set()
            stored: dict[str, dict[str, str]] = {}  # customer key -> the identifiers a failed write found
            for n, chunk in enumerate(chunks or [[]]):
                found = self._transact([*(extras if n == 0 else []), *chunk], len(extras) if n == 0 else 0, stored)
                newly |= found
            renamed = self._note_identities(records, plan, stored, newly)
            if stored and not (newly or renamed):  # cancelled by a record, yet for no reason we know
                raise StateUnavailable("transaction cancelled: ConditionalCheckFailed")
            if not newly and not renamed:
                plan.committed, plan.stale = True, stale
                return stale
            # Only the chunks that failed need another round, but a retry of the whole plan is
            # harmless: the pieces that were written are now equal, and equal times are admitted.
            stale |= newly
            for key, piece in newly:
                record = records.get(key)
                if record is not None:
                    record.pieces.pop(piece, None)
                    if piece == "customer":
                        record.identifiers = record.email = None
        raise StateUnavailable("state records kept failing their conditions")

    def write_ledger(self, write: LedgerWrite, *, piece: str, stamp: int) -> None:
        """A ledger change on its own, outside any webhook (`dodo-cio backfill` seeding the totals).

        The same items the ingest path writes (the ledger compared with what was read, the summary
        `piece` at `stamp`, the counted marker only if absent), in one transaction. Raises
        `LedgerConflict` (counted: the marker exists; else the ledger moved), `StateRejected` or
        `StateUnavailable`; nothing is written then.
        """
        key = customer_key(write.customer_id)
        problem = key_problem(key) or (key_problem(write.marker) if write.marker else None)
        if problem is not None:
            raise StateRejected(problem)
        records = {key: RecordWrite(key, pieces={piece: stamp})}
        stale = self._transact(self._items(records, {}, write), 0)
        if stale:  # the summary piece is newer than the stamp: only a ledger that moved can do that
            raise LedgerConflict(counted=False)

    @staticmethod
    def _note_identities(
        records: Mapping[str, RecordWrite],
        plan: StatePlan,
        stored: Mapping[str, dict[str, str]],
        newly: set[tuple[str, str]],
    ) -> bool:
        """Sort what cancelled writes found in the identifiers: True when a guarded write must go again."""
        again = False
        for key, identifiers in stored.items():
            record = records.get(key)
            if record is None:
                continue
            if (key, "customer") in newly:  # this webhook is older: the directory's address is the current one
                plan.current[key] = identifiers
            elif record.guard and record.identifiers is not None:
                if not _same_person(identifiers, record.identifiers):
                    plan.renamed[key] = identifiers
                record.guard = False  # noted; the write replaces them
                again = True
        return again

    def _transact(
        self, items: list[dict[str, Any]], n_extra: int, stored: dict[str, dict[str, str]] | None = None
    ) -> set[tuple[str, str]]:
        """One TransactWriteItems; the stale pieces if it was cancelled by them, else nothing.

        `stored` receives, per customer record whose write failed its condition, the identifiers
        the record holds, when they differ from the ones written (see `RecordWrite.guard`).
        """
        if not items:
            return set()
        client = self.client
        try:
            client.transact_write_items(TransactItems=items)
        except client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            stale: set[tuple[str, str]] = set()
            ledger_conflicts: list[bool] = []  # counted (True) or moved (False)
            for index, reason in enumerate(reasons):
                if reason.get("Code") != "ConditionalCheckFailed":
                    continue
                if index < n_extra:
                    raise ExtraItemFailed(index, reason.get("Item")) from None
                old = reason.get("Item") or {}
                conflict = _ledger_conflict(items[index], old)
                if conflict is not None:
                    ledger_conflicts.append(conflict)
                stale |= _stale_pieces(items[index], old)
                other = self._other_identifiers(items[index], old)
                if other is not None and stored is not None:
                    stored[items[index]["Update"]["Key"]["id"]["S"]] = other
            if ledger_conflicts:  # a payment counted already says more than a ledger that moved
                raise LedgerConflict(counted=any(ledger_conflicts)) from None
            if stored:  # a guarded write met another address: the caller notes it and writes again
                return stale
            if not stale:  # cancelled for another reason (a concurrent write, throttling, a refused item)
                codes = sorted({str(r.get("Code")) for r in reasons if r.get("Code") not in (None, "None")})
                if "ValidationError" in codes:  # an item DynamoDB refuses as it is (e.g. over 400 KB)
                    raise StateRejected("transaction cancelled: " + ", ".join(codes)) from None
                raise StateUnavailable("transaction cancelled: " + ", ".join(codes)) from None
            return stale
        except Exception as exc:
            raise _classified(exc) from exc
        return set()

    def _receipt_items(self, receipts: Sequence[Receipt]) -> list[dict[str, Any]]:
        """One upsert per object: the event type's attribute, and the record kept `receipt_days` more."""
        expiration = {"N": str(int(self._clock()) + self._receipt_days * 86400)}
        items: list[dict[str, Any]] = []
        for receipt in receipts:
            value = {"webhook_id": receipt.webhook_id, "at": receipt.at, "received_at": receipt.received_at}
            if receipt.customer_id:
                value["customer_id"] = receipt.customer_id
            update = {
                "TableName": self.table_name,
                "Key": {"id": {"S": RECEIPT_PREFIX + receipt.object_id}},
                "UpdateExpression": "SET #ev = :ev, #e = :e",
                "ExpressionAttributeNames": {"#ev": RECEIPT_EVENT_PREFIX + receipt.event_type, "#e": "expiration"},
                "ExpressionAttributeValues": {":ev": {"S": json.dumps(value, sort_keys=True)}, ":e": expiration},
            }
            items.append({"Update": update})
        return items

    def read_receipts(self, object_ids: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """Object id -> event type -> what arrived (webhook id, Dodo's time, when it arrived)."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for key, item in self._get(RECEIPT_PREFIX + o for o in object_ids).items():
            events: dict[str, dict[str, Any]] = {}
            for name, value in item.items():
                text = value.get("S") if isinstance(value, dict) else None
                if name.startswith(RECEIPT_EVENT_PREFIX) and text:
                    with contextlib.suppress(ValueError):
                        events[name.removeprefix(RECEIPT_EVENT_PREFIX)] = json.loads(text)
            found[key.removeprefix(RECEIPT_PREFIX)] = events
        return found

    def _other_identifiers(self, item: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, str] | None:
        """The identifiers a customer record holds when the failed write would set others, else None."""
        update = item.get("Update")
        if not update or update.get("ExpressionAttributeNames", {}).get("#i") != self._ident:
            return None
        mine = update["ExpressionAttributeValues"].get(":i", {}).get("S")
        theirs = item_str(old, self._ident)
        return _identifiers(theirs) if theirs and theirs != mine else None

    def _items(
        self, records: Mapping[str, RecordWrite], payments: Mapping[str, str], ledger: LedgerWrite | None = None
    ) -> list[dict[str, Any]]:
        expiration = {"N": str(int(self._clock()) + self._ttl)}
        items: list[dict[str, Any]] = []
        ledger_key = customer_key(ledger.customer_id) if ledger is not None else None
        for record in records.values():
            names: dict[str, str] = {"#e": "expiration"}
            values: dict[str, Any] = {":e": expiration}
            sets = ["#e = :e"]
            conditions: list[str] = []
            for n, (piece, ts) in enumerate(sorted(record.pieces.items())):
                names[f"#p{n}"] = PIECE_PREFIX + piece
                values[f":t{n}"] = {"N": str(int(ts))}
                sets.append(f"#p{n} = :t{n}")
                conditions.append(f"(attribute_not_exists(#p{n}) OR #p{n} <= :t{n})")
            if record.identifiers:
                names["#i"] = self._ident
                values[":i"] = {"S": _dump(record.identifiers)}
                sets.append("#i = :i")
                if record.guard:
                    conditions.append("(attribute_not_exists(#i) OR #i = :i)")
            elif record.learned:
                names["#i"] = self._ident
                values[":i"] = {"S": _dump(record.learned)}
                sets.append("#i = if_not_exists(#i, :i)")
            if record.email or record.learned_email:
                names["#m"] = EMAIL_ATTRIBUTE
                values[":m"] = {"S": record.email or record.learned_email}
                sets.append("#m = :m" if record.email else "#m = if_not_exists(#m, :m)")
            if ledger is not None and record.key == ledger_key:
                names["#l"] = LEDGER_ATTRIBUTE
                values[":l"] = {"S": ledger.new}
                sets.append("#l = :l")
                if ledger.old is None:
                    conditions.append("attribute_not_exists(#l)")
                else:
                    values[":lold"] = {"S": ledger.old}
                    conditions.append("#l = :lold")
            update: dict[str, Any] = {
                "TableName": self.table_name,
                "Key": {"id": {"S": record.key}},
                "UpdateExpression": "SET " + ", ".join(sets),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
            if conditions:
                update["ConditionExpression"] = " AND ".join(conditions)
                update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            items.append({"Update": update})
        for payment_id, customer_id in sorted(payments.items()):
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {
                            "id": {"S": PAYMENT_PREFIX + payment_id},
                            "customer_id": {"S": customer_id},
                            "expiration": expiration,
                        },
                    }
                }
            )
        if ledger is not None and ledger.marker is not None:
            marker = {"id": {"S": ledger.marker}, "customer_id": {"S": ledger.customer_id}, "expiration": expiration}
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": marker,
                        "ConditionExpression": "attribute_not_exists(id)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        return items


def _classified(exc: Exception) -> Exception:
    """A failed call as StateRejected (DynamoDB refused the request itself) or StateUnavailable."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error.get("Code") == "ValidationException":
        # DynamoDB's message names the limit, not the values; keep it short all the same.
        return StateRejected(f"DynamoDB refused the request: {str(error.get('Message', ''))[:200]}")
    return StateUnavailable(type(exc).__name__)


def key_problem(key: str) -> str | None:
    """Why DynamoDB would refuse `key` as a partition key, or None when it fits."""
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        return f"key {key[:40]!r}... is {size} bytes, over DynamoDB's {MAX_KEY_BYTES}-byte key limit"
    return None


def piece_problem(piece: str) -> str | None:
    """Why DynamoDB would refuse a piece's attribute name, or None when it fits."""
    size = len((PIECE_PREFIX + piece).encode("utf-8", "surrogatepass"))
    if size > MAX_ATTRIBUTE_NAME_BYTES:
        return f"piece {piece[:40]!r}... is {size} bytes, over DynamoDB's {MAX_ATTRIBUTE_NAME_BYTES}-byte name limit"
    return None


def plan_problem(plan: StatePlan) -> str | None:
    """The first reason DynamoDB would refuse the plan's keys or names, or None when all fit."""
    for record in plan.records.values():
        problem = key_problem(record.key)
        for piece in record.pieces:
            problem = problem or piece_problem(piece)
        if problem is not None:
            return problem
    for payment_id in plan.payments:
        problem = key_problem(PAYMENT_PREFIX + payment_id)
        if problem is not None:
            return problem
    if plan.ledger is not None:
        marker = plan.ledger.marker
        return (key_problem(marker) if marker else None) or key_problem(customer_key(plan.ledger.customer_id))
    return None


def claim_problem(op: Mapping[str, Any]) -> str | None:
    """Why the record an op claims could never be written, or None (also for ops with no claim)."""
    claim = state_claim(op)
    if claim is None:
        return None
    key, piece, _ = claim
    return key_problem(key) or piece_problem(piece)


def _ledger_conflict(item: Mapping[str, Any], old: Mapping[str, Any]) -> bool | None:
    """For an item of a cancelled transaction: True if it was a counted marker that exists already,
    False if it carried a ledger that changed since it was read, None if it was neither."""
    put = item.get("Put")
    if put is not None:
        return True if put.get("ConditionExpression") == "attribute_not_exists(id)" else None
    update = item.get("Update") or {}
    if update.get("ExpressionAttributeNames", {}).get("#l") != LEDGER_ATTRIBUTE:
        return None
    expected = update["ExpressionAttributeValues"].get(":lold", {}).get("S")
    return False if item_str(old, LEDGER_ATTRIBUTE) != expected else None


def _stale_pieces(item: Mapping[str, Any], old: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The pieces of an update whose stored time is newer than the one being written."""
    update = item.get("Update")
    if not update:
        return set()
    key = update["Key"]["id"]["S"]
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    stale: set[tuple[str, str]] = set()
    for alias, attribute in names.items():
        if not attribute.startswith(PIECE_PREFIX):
            continue
        stored = (old.get(attribute) or {}).get("N")
        mine = values[":t" + alias.removeprefix("#p")]["N"]
        if stored is not None and int(stored) > int(mine):
            stale.add((key, attribute.removeprefix(PIECE_PREFIX)))
    return stale


def _chunks(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def item_str(item: Mapping[str, Any], name: str) -> str | None:
    """A string attribute of an item as DynamoDB's client returns it (`{"S": ...}`), or None."""
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def item_int(item: Mapping[str, Any], name: str) -> int | None:
    """A whole-number attribute (`{"N": "12"}`), or None when absent or not a whole number."""
    value = item.get(name)
    text = value.get("N") if isinstance(value, dict) else None
    try:
        return int(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _same_person(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Customer.io matches email case-insensitively: `Maya@x` and `maya@x` are one person."""
    return {k: v.casefold() for k, v in a.items()} == {k: v.casefold() for k, v in b.items()}


def _dump(identifiers: Mapping[str, str]) -> str:
    return json.dumps(dict(identifiers), sort_keys=True, separators=(",", ":"))


def _identifiers(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and len(doc) == 1 and all(isinstance(v, str) and v for v in doc.values()):
        return {str(k): str(v) for k, v in doc.items()}
    return None


# -- from ops to a plan -------------------------------------------------------------------------


def ident_attribute(strategy_text: str) -> str:
    """The directory attribute for one identifier strategy: switching strategy never reads old entries."""
    return "ident:" + strategy_text


def state_claim(op: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(record key, piece, Dodo event time) an op claims, or None for ops freshness does not apply to."""
    ts = op.get("timestamp", op.get("_timestamp"))
    if op.get("action") != "identify" or not isinstance(ts, int) or isinstance(ts, bool):
        return None
    piece, customer_id = op.get("_state"), op.get("_customer_id")
    if isinstance(piece, str) and isinstance(customer_id, str):
        return customer_key(customer_id), piece, ts
    if op.get("type", "person") == "person" and isinstance(op.get("identifiers"), dict):
        return legacy_key(op["identifiers"]), LEGACY_PIECE, ts  # parked by an earlier version
    return None


def plan_for(
    ops: Iterable[Mapping[str, Any]],
    *,
    customers: Mapping[str, Mapping[str, str]] | None = None,
    learned: Mapping[str, Mapping[str, str]] | None = None,
    payments: Mapping[str, str] | None = None,
    emails: Mapping[str, str] | None = None,
    learned_emails: Mapping[str, str] | None = None,
    paid: Mapping[str, int] | None = None,
    guard: bool = False,
) -> StatePlan:
    """The writes a set of ops needs: each piece's newest time, plus what the directory should learn.

    `customers`: identifiers a payload stated (set with the customer piece, newest wins);
    `learned`: identifiers looked up in Dodo's API (set only where the directory has none);
    `emails`, `learned_emails`: the same for the customer's email (kept under customer_id only);
    `paid`: customer id -> the event time of a succeeded payment this webhook reports (`t#paid`);
    `guard`: stated identifiers are written only over the same ones (`RecordWrite.guard`).
    """
    plan = StatePlan()
    for op in ops:
        claim = state_claim(op)
        if claim is not None:
            plan.claim(*claim)
    for customer_id, identifiers in (customers or {}).items():
        record = plan.record(customer_key(customer_id))
        if "customer" in record.pieces:
            record.identifiers = dict(identifiers)
            record.guard = guard
        else:
            record.learned = dict(identifiers)
    for customer_id, identifiers in (learned or {}).items():
        record = plan.record(customer_key(customer_id))
        if record.identifiers is None:
            record.learned = dict(identifiers)
    for customer_id, email in (emails or {}).items():
        record = plan.record(customer_key(customer_id))
        if "customer" in record.pieces:
            record.email = email
        else:
            record.learned_email = email
    for customer_id, email in (learned_emails or {}).items():
        record = plan.record(customer_key(customer_id))
        if record.email is None:
            record.learned_email = email
    for customer_id, at in (paid or {}).items():
        plan.claim(customer_key(customer_id), PAID_PIECE, at)
    plan.payments.update(payments or {})
    return plan


def is_stale(op: Mapping[str, Any], plan: StatePlan, stale: set[tuple[str, str]]) -> bool:
    """True when a newer update of the op's piece was applied, or is in the same batch."""
    claim = state_claim(op)
    if claim is None:
        return False
    key, piece, ts = claim
    if (key, piece) in stale:
        return True
    record = plan.records.get(key)
    return record is not None and ts < record.pieces.get(piece, ts)
