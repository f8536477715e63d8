"""`dodo-cio reconcile` end to end: the SDK against the fake Dodo, the bridge's receipts in moto's table."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from dodo_cio_cli import cli
from dodo_cio_local.dodo_standin import DodoStandIn, make_customer, make_payment, make_subscription
from support.samples import sample_paths

pytestmark = pytest.mark.network

SAMPLE = json.loads(next(p for p in sample_paths() if p.name == "payment.succeeded.json").read_bytes())


def webhook_for(payment: dict[str, Any]) -> bytes:
    doc = json.loads(json.dumps(SAMPLE))
    doc["data"]["payment_id"] = payment["payment_id"]
    return json.dumps(doc).encode()


def test_a_withheld_webhook_is_reported_missing_until_it_arrives(
    bridge: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    who = make_customer(1)
    sent, withheld = make_payment(1, who), make_payment(2, who)
    pending = make_payment(3, who, status="requires_payment_method")  # a checkout step: no webhook expected
    with DodoStandIn([who], [make_subscription(9, "pending", who)], payments=[sent, withheld, pending]) as dodo:
        monkeypatch.setenv("DODO_PAYMENTS_API_KEY", dodo.api_key)
        argv = ["reconcile", "--since", "2020-01-01", "--base-url", dodo.base_url]
        argv += ["--state-table", os.environ["STATE_TABLE_NAME"]]
        assert bridge.send(webhook_for(sent), webhook_id="msg_rec_1")[0] == 200
        capsys.readouterr()  # the handler's log lines

        assert cli.main([*argv, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert [(f["object_id"], f["state"]) for f in report["findings"]] == [(withheld["payment_id"], "missing")]
        assert report["counts"]["payments"] == {"arrived": 1, "missing": 1}
        assert report["counts"]["subscriptions"] == {}  # pending: never active, nothing expected

        assert bridge.send(webhook_for(withheld), webhook_id="msg_rec_2")[0] == 200  # Dodo's resend, say
        capsys.readouterr()
        assert cli.main(argv) == 0
        assert "nothing missing" in capsys.readouterr().out
