"""`dodo-cio setup` without sockets: its decisions against an in-memory Dodo and SSM.

The run against `make run` (the stand-in's SDK-shaped API, moto's SSM, the real check and probe) is
`tests/integration/test_local_run.py::test_setup_local_then_a_withheld_webhook_is_reconciled_and_fixed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dodo_cio.receiving.events import ALL_TYPES, PAYOUT_TYPES
from dodo_cio_cli import setup_command as sc

PATH = "/dodo-customerio"
URL = "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/dodo"
DODO_SECRET = "whsec_" + "c2VjcmV0LWZyb20tZG9kby1mb3ItdGhlLWVuZHBvaW50"
ENV = {"DODO_PAYMENTS_API_KEY": "dodo-key-123", "CUSTOMERIO_SITE_ID": "site-9", "CUSTOMERIO_API_KEY": "cio-key-9"}


class FakeSsm:
    def __init__(self, values: dict[str, tuple[str, str]] | None = None, *, deny: bool = False) -> None:
        self.values = dict(values or {})  # name -> (value, type)
        self.puts: list[str] = []
        self.gets: list[str] = []
        self.deny = deny

    def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
        self.gets.append(Name)
        if self.deny:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
        if Name not in self.values:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": ""}}, "GetParameter")
        value, kind = self.values[Name]
        return {"Parameter": {"Value": value, "Type": kind}}

    def put_parameter(self, Name: str, Value: str, Type: str, Overwrite: bool) -> dict[str, Any]:
        self.values[Name] = (Value, Type)
        self.puts.append(Name)
        return {}


@dataclass
class Model:
    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        return self.fields[name]

    def to_dict(self, **_: Any) -> dict[str, Any]:
        return dict(self.fields)


class FakeWebhooks:
    def __init__(self, endpoints: list[dict[str, Any]] | None = None) -> None:
        self.endpoints = {e["id"]: dict(e) for e in endpoints or []}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list(self) -> list[Model]:
        return [Model(e) for e in self.endpoints.values()]

    def create(self, **fields: Any) -> Model:
        self.calls.append(("create", fields))
        record = {"id": "ep_new", "disabled": False, **fields}
        self.endpoints["ep_new"] = record
        return Model(record)

    def update(self, webhook_id: str, **fields: Any) -> Model:
        self.calls.append(("update", fields))
        self.endpoints[webhook_id].update(fields)
        return Model(self.endpoints[webhook_id])

    def retrieve_secret(self, webhook_id: str) -> Any:
        return SimpleNamespace(secret=DODO_SECRET)


def _setup(
    ssm: FakeSsm,
    webhooks: FakeWebhooks,
    *,
    env: dict[str, str] | None = None,
    dry_run: bool = False,
    check: int = 0,
    probes: list[int] | None = None,
    prompt: Any = None,
    api: str = "track",
) -> tuple[sc.Setup, list[str], list[tuple[bytes, str]], list[float]]:
    out: list[str] = []
    sent: list[tuple[bytes, str]] = []
    sleeps: list[float] = []
    answers = list(probes or [200])

    def probe(body: bytes, secret: str) -> int:
        sent.append((body, secret))
        return answers.pop(0)

    setup = sc.Setup(
        sc.Deployment("stack s", URL, PATH, api, rate_limit=50),
        store=sc.ParameterStore(ssm, PATH),
        dodo=lambda key: SimpleNamespace(webhooks=webhooks, key=key),
        env=ENV if env is None else env,
        prompt=prompt,
        check=lambda: check,
        probe=probe,
        out=out.append,
        sleep=sleeps.append,
        dry_run=dry_run,
    )
    return setup, out, sent, sleeps


@pytest.mark.parametrize(
    ("rps", "share", "throttle", "expected"),
    [
        (100, 0.5, None, 50),  # the defaults: ingest's half of Track's 100/s
        (100, 0.5, 20, 20),  # never above the API stage's throttle (Dodo would get 429s)
        (3, 0.1, None, 1),  # at least one a second
        (100, 0, None, 100),  # share 0: everything parked, the drain's budget is the pace
        (1000, 0.25, 50.0, 50),
    ],
)
def test_the_rate_limit_fits_the_budget(rps: float, share: float, throttle: float | None, expected: int) -> None:
    assert sc.fitting_rate_limit(rps, share, throttle) == expected


def test_the_filter_is_every_type_the_mapping_sends() -> None:
    types = sc.filter_types()
    assert set(types) == ALL_TYPES - PAYOUT_TYPES and types == sorted(types)


def test_a_first_run_creates_the_endpoint_stores_every_secret_checks_and_proves() -> None:
    ssm, webhooks = FakeSsm(), FakeWebhooks()
    setup, out, sent, _ = _setup(ssm, webhooks)
    assert setup.run() == sc.EXIT_OK
    ((call, fields),) = webhooks.calls
    assert call == "create" and fields["url"] == URL and fields["rate_limit"] == 50
    assert fields["filter_types"] == sc.filter_types() and fields["disabled"] is False
    assert ssm.values[f"{PATH}/webhook-secret"] == (DODO_SECRET, "SecureString")
    assert ssm.values[f"{PATH}/customerio-site-id"] == ("site-9", "SecureString")
    assert ssm.values[f"{PATH}/customerio-api-key"] == ("cio-key-9", "SecureString")
    assert ssm.values[f"{PATH}/dodo-api-key"] == ("dodo-key-123", "SecureString")  # customer_id + dodo contact fields
    ((body, secret),) = sent
    assert secret == DODO_SECRET and b'"type": "payout.created"' in body
    assert sorted(ssm.gets) == sorted(set(ssm.gets)), "each parameter is read from SSM once per run"
    text = "\n".join(out)
    for value in (DODO_SECRET, "cio-key-9", "site-9", "dodo-key-123"):
        assert value not in text  # never printed
    assert "setup is done" in text


def test_an_endpoint_is_updated_only_where_it_differs() -> None:
    """A second run that changes nothing: tests/integration/test_local_run.py's setup runs it on `make run`."""
    ssm, webhooks = FakeSsm(), FakeWebhooks()
    assert _setup(ssm, webhooks)[0].run() == 0
    webhooks.calls.clear()
    webhooks.endpoints["ep_new"].update(rate_limit=None, disabled=True, filter_types=["payment.succeeded"])
    setup, out, _, _ = _setup(ssm, webhooks)
    assert setup.run() == 0
    ((call, fields),) = webhooks.calls
    assert call == "update" and set(fields) == {"rate_limit", "disabled", "filter_types"}
    assert "rate_limit None -> 50" in "\n".join(out) and "enabled" in "\n".join(out)


def test_a_dry_run_reads_but_writes_nothing() -> None:
    ssm, webhooks = FakeSsm(), FakeWebhooks()
    setup, out, sent, _ = _setup(ssm, webhooks, dry_run=True, check=1)
    assert setup.run() == 0
    assert ssm.puts == [] and webhooks.calls == [] and sent == []
    assert [s.action for s in setup.steps][:2] == ["would create", "would store"]
    assert "nothing was changed" in out[-1]


def test_missing_inputs_stop_before_any_change_and_name_every_one() -> None:
    ssm, webhooks = FakeSsm(), FakeWebhooks()
    setup, *_ = _setup(ssm, webhooks, env={})
    with pytest.raises(sc.SetupError) as caught:
        setup.run()
    for name in ("DODO_PAYMENTS_API_KEY", "CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY"):
        assert name in str(caught.value)
    assert ssm.puts == [] and webhooks.calls == []


def test_keys_already_stored_are_kept_and_a_prompt_fills_the_rest() -> None:
    ssm = FakeSsm({f"{PATH}/customerio-pipelines-api-key": ("kept", "SecureString")})
    asked: list[str] = []
    setup, *_ = _setup(ssm, FakeWebhooks(), env={}, api="pipelines", prompt=lambda q: asked.append(q) or "typed")
    assert setup.run() == 0
    assert asked == ["Dodo Payments API key: "]  # the Pipelines key was already there
    assert ssm.values[f"{PATH}/customerio-pipelines-api-key"] == ("kept", "SecureString")
    assert f"{PATH}/customerio-site-id" not in ssm.values  # Track's keys are not the deployment's


def test_a_plaintext_parameter_is_rewritten_as_a_securestring() -> None:
    ssm = FakeSsm({f"{PATH}/customerio-site-id": ("site-9", "String")})
    setup, *_ = _setup(ssm, FakeWebhooks())
    assert setup.run() == 0
    assert ssm.values[f"{PATH}/customerio-site-id"] == ("site-9", "SecureString")
    assert any(s.detail == "SecureString (was plaintext)" for s in setup.steps)


def test_an_unreadable_parameter_is_an_error_not_absence() -> None:
    setup, *_ = _setup(FakeSsm(deny=True), FakeWebhooks())
    with pytest.raises(sc.OperatorError, match="access denied"):
        setup.run()


def test_a_failed_check_sends_no_test_webhook() -> None:
    setup, out, sent, _ = _setup(FakeSsm(), FakeWebhooks(), check=1)
    assert setup.run() == sc.EXIT_FAILED and sent == []
    assert "test webhook was not sent" in out[-1]


OLD_SECRET = "whsec_b2xkLXNlY3JldA=="


@pytest.mark.parametrize(
    ("stored", "probes", "expected", "waits"),
    [
        (OLD_SECRET, [401, 200], 0, [sc.SECRET_REREAD_WAIT]),  # rotated by this run: one wait, then it reads it
        (OLD_SECRET, [401, 401], 1, [sc.SECRET_REREAD_WAIT]),
        (OLD_SECRET, [0], 1, []),
        (OLD_SECRET, [500], 1, []),
        (DODO_SECRET, [401], 1, []),  # the secret was already stored: nothing to wait for
    ],
)
def test_the_test_webhook(stored: str, probes: list[int], expected: int, waits: list[float]) -> None:
    ssm = FakeSsm({f"{PATH}/webhook-secret": (stored, "SecureString")})
    setup, _, sent, sleeps = _setup(ssm, FakeWebhooks(), probes=probes)
    assert setup.run() == expected
    assert sleeps == waits and len(sent) == len(probes)


def test_the_ssm_path_must_be_absolute() -> None:
    with pytest.raises(sc.SetupError, match="must start with '/'"):
        sc.ParameterStore(FakeSsm(), "dodo-customerio")
