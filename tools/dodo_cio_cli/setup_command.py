"""`dodo-cio setup`: register the bridge with Dodo and store its secrets, in one command that can run again.

What an operator otherwise does by hand after `sam deploy`: create the endpoint in Dodo's dashboard,
pick its event types and rate, copy its signing secret and the Customer.io keys into
`aws ssm put-parameter`, then hope. Here, in order:

1. Every input is gathered first (the Dodo API key, each Customer.io key: from the environment,
   else kept from SSM, else prompted without echo), so a missing one stops the run before anything
   changes.
2. Dodo's endpoint for the deployment's webhook URL is found among `webhooks.list()`, or created;
   an existing one is updated only in the fields that differ. `filter_types` are the event types the
   mapping sends (everything Dodo knows but payouts); `rate_limit` fits the Customer.io budget
   (:func:`fitting_rate_limit`).
3. `webhooks.retrieve_secret` gives the signing secret; it, the Customer.io keys and (when the
   identifier strategy needs it, or it is already stored) the Dodo API key are written as
   SecureStrings under the SSM path, each only when its value differs.
4. `dodo-cio check` runs, then one webhook signed with the stored secret goes to the endpoint: a
   `payout.created`, which the bridge verifies and acknowledges without sending anything to
   Customer.io, so no person in the workspace is touched. Together they prove the path: Dodo's secret
   opens the bridge, and the bridge's keys open Customer.io.

`--dry-run` reads and reports what it would do, and writes nothing. No secret is ever printed: a
parameter is reported as stored or unchanged, never with its value.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from dodo_cio.configuration.settings import CREDENTIAL_NAMES, DODO_API_KEY_NAME, SECRET_NAMES
from dodo_cio.ingest.service import SECRET_REFRESH_INTERVAL
from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig
from dodo_cio.receiving.events import ALL_TYPES
from dodo_cio_cli.aws_calls import OperatorError, call_aws
from dodo_cio_cli.check_dodo_api import needs_dodo_api_key

WEBHOOK_SECRET_NAME: Final = SECRET_NAMES[0]
# Where each Customer.io key may come from instead of a prompt.
KEY_ENVIRONMENT: Final = {
    "customerio-site-id": "CUSTOMERIO_SITE_ID",
    "customerio-api-key": "CUSTOMERIO_API_KEY",
    "customerio-pipelines-api-key": "CUSTOMERIO_PIPELINES_API_KEY",
}
ENDPOINT_DESCRIPTION: Final = "Customer.io bridge (managed by dodo-cio setup)"
# The bridge re-reads its secrets after a signature failure, at most every SECRET_REFRESH_INTERVAL seconds.
SECRET_REREAD_WAIT: Final = SECRET_REFRESH_INTERVAL + 1
_ABSENT: Final = "parameter not found"  # how ParameterStore.read tells absence from a failure
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1


class SetupError(Exception):
    """Stops setup before or while changing anything: exit 2 and the message."""


def filter_types(ignored: frozenset[str] | None = None) -> list[str]:
    """The event types Dodo should send: every type it knows that the mapping does not ignore."""
    skip = MappingConfig().ignored_types if ignored is None else ignored
    return sorted(ALL_TYPES - skip)


def fitting_rate_limit(requests_per_second: float, ingest_share: float, api_rate_limit: float | None = None) -> int:
    """Webhooks a second Dodo may send so ingest stays inside its part of the Customer.io budget.

    Ingest spends about one Customer.io request per webhook, within `requests_per_second` times
    `ingest_share`; faster than that it parks webhooks for the retry drain, which costs nothing lost
    but a delay. With a share of 0 every webhook is parked, so the drain's whole budget is the pace.
    Never above the API stage's throttle (`ApiThrottlingRateLimit`), which would answer Dodo 429.
    """
    pace = requests_per_second * ingest_share if ingest_share > 0 else requests_per_second
    limit = max(1, math.floor(pace))
    if api_rate_limit:
        limit = min(limit, max(1, math.floor(api_rate_limit)))
    return limit


@dataclass(frozen=True, slots=True)
class Deployment:
    """What setup configures, read from the stack (or the local run) by the CLI."""

    where: str  # "stack dodo-cio" or "the local run at http://127.0.0.1:3000": for the report
    webhook_url: str
    ssm_path: str
    api: str  # track | pipelines: whose keys are stored
    rate_limit: int
    identifier: str = "customer_id"
    contact_fields: str = "auto"
    default_dodo_api_key: str = ""  # the local stand-in's key; never a real one


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the report: what was (or would be) done to one thing."""

    subject: str
    action: str  # created | updated | stored | unchanged | would create | would update | would store
    detail: str = ""

    def format(self) -> str:
        return f"  {self.subject:<46} {self.action}{': ' + self.detail if self.detail else ''}"


@dataclass
class Inputs:
    """Everything setup writes, gathered before it writes anything."""

    dodo_api_key: str
    keys: dict[str, str] = field(default_factory=dict)  # SSM name -> value (Customer.io keys)


def find_endpoint(endpoints: list[dict[str, Any]], url: str) -> dict[str, Any] | None:
    """Dodo's endpoint for `url` (a trailing slash aside), or None."""
    wanted = url.rstrip("/")
    return next((e for e in endpoints if str(e.get("url", "")).rstrip("/") == wanted), None)


def endpoint_changes(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `desired` an update must send: only those that differ (filter_types as a set)."""
    changes: dict[str, Any] = {}
    for key, value in desired.items():
        current = existing.get(key)
        if key == "filter_types":
            if set(current or ()) != set(value):
                changes[key] = value
        elif key == "disabled":
            if bool(current) != bool(value):
                changes[key] = value
        elif current != value:
            changes[key] = value
    return changes


def describe_changes(existing: Mapping[str, Any], changes: Mapping[str, Any]) -> str:
    """`rate_limit None -> 50, filter_types +3 -2, enabled`: what an update changes, without the lists."""
    parts: list[str] = []
    for key, value in changes.items():
        if key == "filter_types":
            before = set(existing.get("filter_types") or ())
            if not before:
                parts.append(f"filter_types all -> {len(value)} types")
            else:
                parts.append(f"filter_types +{len(set(value) - before)} -{len(before - set(value))}")
        elif key == "disabled":
            parts.append("disabled" if value else "enabled")
        else:
            parts.append(f"{key} {existing.get(key)!r} -> {value!r}")
    return ", ".join(parts)


def probe_body(now: datetime | None = None) -> bytes:
    """A signed-able `payout.created`: verified and acknowledged by the bridge, sent nowhere."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    data = {
        "payload_type": "Payout",
        "payout_id": "pout_dodo_cio_setup_probe",
        "business_id": "bus_dodo_cio_setup",
        "name": "dodo-cio setup probe",
        "amount": 0,
        "currency": "USD",
        "fee": 0,
        "tax": 0,
        "refunds": 0,
        "chargebacks": 0,
        "payment_method": "bank_transfer",
        "created_at": stamp,
        "status": "not_initiated",
        "updated_at": stamp,
        "payout_document_url": None,
        "remarks": None,
    }
    body = {"business_id": "bus_dodo_cio_setup", "type": "payout.created", "timestamp": stamp, "data": data}
    return json.dumps(body).encode()


class ParameterStore:
    """The SSM parameters under one path, read and written as SecureStrings; values never leave it in a message."""

    def __init__(self, ssm: Any, path: str) -> None:
        if not path.startswith("/"):
            raise SetupError(f"the SSM path must start with '/', like /dodo-customerio, not {path!r}")
        self._ssm = ssm
        self.path = path.rstrip("/")
        self._read: dict[str, tuple[str | None, str]] = {}  # one run reads each parameter once

    def name(self, short: str) -> str:
        return f"{self.path}/{short}"

    def read(self, short: str) -> tuple[str | None, str]:
        """(decrypted value or None when absent, its type); asked of SSM once, then as written since."""
        if short not in self._read:
            self._read[short] = self._fetch(short)
        return self._read[short]

    def _fetch(self, short: str) -> tuple[str | None, str]:
        name = self.name(short)
        try:
            got = call_aws(
                f"reading {name}",
                lambda: self._ssm.get_parameter(Name=name, WithDecryption=True),
                lambda code, _: _ABSENT if code == "ParameterNotFound" else None,
            )
        except OperatorError as exc:
            if str(exc) == _ABSENT:
                return None, ""
            raise
        parameter = got.get("Parameter", {})
        return str(parameter.get("Value", "")), str(parameter.get("Type", ""))

    def write(self, short: str, value: str) -> None:
        name = self.name(short)
        call_aws(
            f"storing {name}",
            lambda: self._ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True),
        )
        self._read[short] = (value, "SecureString")


@dataclass
class Setup:
    """One run of `dodo-cio setup`; every effect goes through the collaborators given, so tests can watch."""

    deployment: Deployment
    store: ParameterStore
    dodo: Callable[[str], Any]  # API key -> dodopayments.DodoPayments (or a stand-in)
    env: Mapping[str, str]
    prompt: Callable[[str], str] | None  # getpass when interactive, else None
    check: Callable[[], int]
    probe: Callable[[bytes, str], int]  # (body, secret) -> HTTP status of the signed POST
    out: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    dry_run: bool = False
    api_key_env: str = "DODO_PAYMENTS_API_KEY"
    steps: list[Step] = field(default_factory=list)

    # -- inputs -----------------------------------------------------------------------------------

    def _given(self, variable: str, stored: str | None, question: str) -> str | None:
        value = self.env.get(variable, "").strip()
        if value:
            return value
        if stored:
            return stored
        if self.prompt is not None and not self.dry_run:
            return self.prompt(question).strip() or None
        return None

    def gather(self) -> Inputs:
        """The Dodo API key and the Customer.io keys, or SetupError naming every one that is missing."""
        missing: list[str] = []
        stored_key, _ = self.store.read(DODO_API_KEY_NAME)
        dodo_key = self._given(
            self.api_key_env, stored_key or self.deployment.default_dodo_api_key or None, "Dodo Payments API key: "
        )
        if not dodo_key:
            missing.append(f"the Dodo Payments API key (${self.api_key_env}, or {self.store.name(DODO_API_KEY_NAME)})")
        keys: dict[str, str] = {}
        for short in CREDENTIAL_NAMES[self.deployment.api]:
            stored, _ = self.store.read(short)
            value = self._given(KEY_ENVIRONMENT[short], stored, f"{short}: ")
            if value:
                keys[short] = value
            else:
                missing.append(f"{short} (${KEY_ENVIRONMENT[short]})")
        if missing:
            how = "set them in the environment or run setup in a terminal to be asked"
            raise SetupError(f"missing {'; '.join(missing)}: {how}")
        return Inputs(dodo_api_key=dodo_key or "", keys=keys)

    # -- Dodo's endpoint --------------------------------------------------------------------------

    def endpoint(self, client: Any) -> tuple[str | None, str | None]:
        """Create or update Dodo's endpoint; (its id, its signing secret), None for what a dry run cannot know."""
        url = self.deployment.webhook_url
        existing_models = list(client.webhooks.list())
        existing = find_endpoint([m.to_dict(mode="json", warnings=False) for m in existing_models], url)
        types = filter_types()
        desired: dict[str, Any] = {
            "filter_types": types,
            "rate_limit": self.deployment.rate_limit,
            "disabled": False,
        }
        subject = "Dodo webhook endpoint"
        if existing is None:
            if self.dry_run:
                self.steps.append(Step(subject, "would create", f"{url}, {len(types)} event types"))
                return None, None
            created = client.webhooks.create(url=url, description=ENDPOINT_DESCRIPTION, **desired)
            self.steps.append(
                Step(
                    subject,
                    "created",
                    f"{created.id} for {url}, {len(types)} event types, rate_limit {self.deployment.rate_limit}/s",
                )
            )
            webhook_id = str(created.id)
        else:
            webhook_id = str(existing["id"])
            changes = endpoint_changes(existing, desired)
            if not changes:
                self.steps.append(Step(subject, "unchanged", f"{webhook_id} for {url}"))
            elif self.dry_run:
                self.steps.append(Step(subject, "would update", f"{webhook_id}: {describe_changes(existing, changes)}"))
            else:
                client.webhooks.update(webhook_id, **changes)
                self.steps.append(Step(subject, "updated", f"{webhook_id}: {describe_changes(existing, changes)}"))
        return webhook_id, str(client.webhooks.retrieve_secret(webhook_id).secret)

    # -- SSM --------------------------------------------------------------------------------------

    def put(self, short: str, value: str | None) -> bool:
        """Store `value` as `short` unless it is already there as a SecureString; True when it changed."""
        name = self.store.name(short)
        if value is None:  # a dry run before the endpoint exists: its secret is not known yet
            self.steps.append(Step(name, "would store", "the new endpoint's signing secret"))
            return True
        current, kind = self.store.read(short)
        if current == value and kind == "SecureString":
            self.steps.append(Step(name, "unchanged"))
            return False
        why = "new" if current is None else ("was plaintext" if current == value else "changed")
        if self.dry_run:
            self.steps.append(Step(name, "would store", f"SecureString ({why})"))
        else:
            self.store.write(short, value)
            self.steps.append(Step(name, "stored", f"SecureString ({why})"))
        return True

    def _wants_dodo_key(self) -> bool:
        config = MappingConfig(
            identifier=IdentifierStrategy.parse(self.deployment.identifier),
            contact_fields=self.deployment.contact_fields,
        )
        return needs_dodo_api_key(config) is not None

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> int:
        d = self.deployment
        self.out(f"setting up {d.where}: {d.webhook_url}, SSM path {self.store.path}, {d.api} API")
        inputs = self.gather()
        client = self.dodo(inputs.dodo_api_key)
        _, secret = self.endpoint(client)
        secret_changed = self.put(WEBHOOK_SECRET_NAME, secret)
        for short, value in inputs.keys.items():
            self.put(short, value)
        stored_key, _ = self.store.read(DODO_API_KEY_NAME)
        if stored_key is not None or self._wants_dodo_key():
            self.put(DODO_API_KEY_NAME, inputs.dodo_api_key)
        for step in self.steps:
            self.out(step.format())
        if self.dry_run:
            self.out("dry run: nothing was changed; run without --dry-run to apply")
            return EXIT_OK
        self.out("")
        if self.check() != EXIT_OK:
            self.out("setup: the check found a problem (above); the test webhook was not sent")
            return EXIT_FAILED
        return self._prove(secret or "", waited=not secret_changed)

    def _prove(self, secret: str, *, waited: bool) -> int:
        status = self.probe(probe_body(), secret)
        if status == 401 and not waited:
            self.out(
                "  the bridge still had the old secret; it re-reads it after a failure: "
                f"retrying in {SECRET_REREAD_WAIT:g} s"
            )
            self.sleep(SECRET_REREAD_WAIT)
            status = self.probe(probe_body(), secret)
        if 200 <= status < 300:
            self.out(f"test webhook: HTTP {status}: the bridge verified Dodo's signature and answered; setup is done")
            return EXIT_OK
        reason = {
            0: "no answer (is the stack's API reachable?)",
            401: "the bridge rejected the signature: it does not read the secret just stored (SsmParameterPath?)",
        }.get(status, "see `dodo-cio trace` and the ingest function's log")
        self.out(f"test webhook: HTTP {status}: {reason}")
        return EXIT_FAILED
