"""The request path's Dodo API client against the local fake of Dodo's API on loopback.

What each answer means, the time budget, the id escaping and the size cap, over a real socket
(`dodo_cio_local.dodo_standin`). The scripted-transport tests, which open no socket, are in
tests/unit/test_dodo_api.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from dodo_cio.platform.http import KeepAliveClient, TransportError
from dodo_cio.state.dodo_api import DodoApi, DodoApiConfigError, DodoApiUnavailable
from dodo_cio_local.dodo_standin import DodoStandIn, make_customer, make_payment

# -------------------------------------------------------------------------------------------------
# against the fake API on loopback


@pytest.fixture
def dodo() -> Iterator[DodoStandIn]:
    with DodoStandIn.populated(5, n_payments=3) as fake:
        yield fake


@pytest.fixture
def api(dodo: DodoStandIn) -> Iterator[DodoApi]:
    client = DodoApi(dodo.base_url, dodo.api_key, connect_timeout=1.0, read_timeout=2.0)
    yield client
    client.close()


@pytest.mark.network
def test_found_and_unknown_customer_and_payment_on_one_kept_connection(api: DodoApi, dodo: DodoStandIn) -> None:
    assert api.customer("cus_00003") == make_customer(3)
    transport = cast(Any, api)._transport
    first = transport._conn.sock.getsockname()
    mine = dodo.add_payment({**make_payment(42, make_customer(4)), "payment_id": "pay_dispute"})
    assert api.payment("pay_dispute") == mine
    assert api.customer("cus_nobody") is None
    assert api.payment("pay_nobody") is None
    assert (dodo.lookups("customers"), dodo.lookups("payments")) == (["cus_00003"], ["pay_dispute"])
    assert [(r.path, r.status) for r in dodo.requests[2:]] == [
        ("/customers/cus_nobody", 404),
        ("/payments/pay_nobody", 404),
    ]
    assert transport._conn.sock.getsockname() == first


@pytest.mark.network
def test_wrong_key_is_a_config_error_without_the_key_and_nothing_listening_is_unavailable(dodo: DodoStandIn) -> None:
    key = "sk_test_wrong_0123456789"
    client = DodoApi(dodo.base_url, key)
    with pytest.raises(DodoApiConfigError) as caught:
        client.customer("cus_00001")
    client.close()
    assert caught.value.status == 401
    message = str(caught.value)
    assert key not in message
    assert "other mode" in message and "test_mode" in message
    assert not isinstance(caught.value, DodoApiUnavailable)
    with DodoStandIn() as gone:
        url = gone.base_url  # a port that was just free, now closed again
    with pytest.raises(DodoApiUnavailable, match="connection error"):
        DodoApi(url, "k", connect_timeout=0.5).customer("cus_00001")


@pytest.mark.network
@pytest.mark.parametrize(
    ("status", "error"),
    [(403, DodoApiConfigError), *((status, DodoApiUnavailable) for status in (429, 500, 502, 503))],
)
def test_error_statuses_and_the_next_call_works(api: DodoApi, dodo: DodoStandIn, status: int, error: type) -> None:
    dodo.fail("/payments/*", status=status)  # any payment lookup, once
    with pytest.raises(error, match=f"HTTP {status}") as caught:
        api.payment("pay_00001")
    assert type(caught.value) is error and caught.value.status == status
    assert api.payment("pay_00001") is not None  # the injected failure was used up


@pytest.mark.network
def test_the_time_budget_sends_nothing_too_late_and_ends_a_stall_in_time(api: DodoApi, dodo: DodoStandIn) -> None:
    for left in (-1.0, 0.0, 0.01):  # the deadline passed, or too close for a call
        with pytest.raises(DodoApiUnavailable, match="not sent"):
            api.customer("cus_00001", deadline=time.monotonic() + left)
        with pytest.raises(DodoApiUnavailable, match="not sent"):
            api.payment("pay_00001", deadline=time.monotonic() + left)
    assert dodo.requests == []
    client = DodoApi(dodo.base_url, dodo.api_key, read_timeout=0.3)
    dodo.stall("/customers/cus_00001", 5.0)
    start = time.monotonic()
    with pytest.raises(DodoApiUnavailable, match="no answer in time"):
        client.customer("cus_00001")
    assert time.monotonic() - start < 1.5
    assert client.customer("cus_00001") is not None  # a fresh connection; the stall was used up
    client.close()
    dodo.stall("/payments/*", 5.0)
    start = time.monotonic()
    with pytest.raises(DodoApiUnavailable):
        api.payment("pay_00002", deadline=start + 0.3)  # read_timeout is 2 s
    assert time.monotonic() - start < 1.2


@pytest.mark.network
def test_ids_naming_nothing_are_never_sent_and_an_id_with_slash_stays_one_path_segment(
    api: DodoApi, dodo: DodoStandIn
) -> None:
    for nothing in ("", ".", ".."):  # an empty id would list customers; dots would climb the path
        assert (api.customer(nothing), api.payment(nothing)) == (None, None), nothing
    assert dodo.requests == []
    odd = dodo.add_customer({**make_customer(9), "customer_id": "cus/../9?x=1#f"})
    assert api.customer("cus/../9?x=1#f") == odd
    assert dodo.requests[-1].path == "/customers/cus%2F..%2F9%3Fx%3D1%23f"
    # an id cannot climb out of its collection: this asks for a customer with that odd id
    assert api.customer("../payments/pay_00001") is None
    assert dodo.requests[-1].path == "/customers/..%2Fpayments%2Fpay_00001"
    assert dodo.lookups("payments") == []


@pytest.mark.network
def test_transport_caps_the_answer_size(dodo: DodoStandIn) -> None:
    transport = KeepAliveClient(dodo.base_url, connect_timeout=1.0, read_timeout=1.0)
    headers = {"Authorization": f"Bearer {dodo.api_key}"}
    with pytest.raises(TransportError, match="larger than 50 bytes"):
        transport.get("/customers/cus_00001", headers, max_bytes=50)
    answer = transport.get("/customers/cus_00001", headers, deadline=time.monotonic() + 2, max_bytes=10_000)
    assert answer.status == 200
    assert json.loads(answer.body) == make_customer(1)
    transport.close()


# -------------------------------------------------------------------------------------------------
# the stand-in's webhook endpoints, through Dodo's own SDK (what `dodo-cio setup` calls)


@pytest.mark.network
def test_webhook_endpoints_through_the_sdk(dodo: DodoStandIn) -> None:
    import dodopayments

    client = dodopayments.DodoPayments(bearer_token=dodo.api_key, base_url=dodo.base_url, max_retries=0)
    created = client.webhooks.create(url="http://127.0.0.1:9/hook", filter_types=["payment.succeeded"], rate_limit=5)
    assert created.url == "http://127.0.0.1:9/hook" and created.rate_limit == 5 and created.disabled is False
    assert [w.id for w in client.webhooks.list()] == [created.id]
    secret = client.webhooks.retrieve_secret(created.id).secret
    assert secret.startswith("whsec_") and "secret" not in client.webhooks.retrieve(created.id).to_dict()
    updated = client.webhooks.update(created.id, rate_limit=None, filter_types=["refund.succeeded"])
    assert updated.rate_limit is None and updated.filter_types == ["refund.succeeded"]
    assert client.webhooks.retrieve_secret(created.id).secret == secret  # an update keeps the secret
    with pytest.raises(dodopayments.UnprocessableEntityError, match="unknown event types"):
        client.webhooks.create(url="http://127.0.0.1:9/hook", filter_types=["payment.exploded"])
    with pytest.raises(dodopayments.UnprocessableEntityError, match="rate_limit"):
        client.webhooks.update(created.id, rate_limit=0)
    client.webhooks.delete(created.id)
    with pytest.raises(dodopayments.NotFoundError):
        client.webhooks.retrieve(created.id)
    wrong = dodopayments.DodoPayments(bearer_token="nope", base_url=dodo.base_url, max_retries=0)
    with pytest.raises(dodopayments.AuthenticationError):
        wrong.webhooks.list()


@pytest.mark.network
def test_emitted_events_honour_each_endpoints_filter_and_state(dodo: DodoStandIn) -> None:
    """`POST /__dodo/events`: kept as the object Dodo holds; delivered where the filter lets it through."""
    import dodopayments
    import requests

    client = dodopayments.DodoPayments(bearer_token=dodo.api_key, base_url=dodo.base_url, max_retries=0)
    nowhere = "http://127.0.0.1:9/hook"  # port 9: refused, reported as status 0
    wants = client.webhooks.create(url=nowhere, filter_types=["payment.succeeded"])
    client.webhooks.create(url=nowhere, filter_types=["refund.succeeded"])
    client.webhooks.create(url=nowhere, disabled=True)
    body = {"type": "payment.succeeded", "data": {**make_payment(90, make_customer(1)), "payload_type": "Payment"}}
    answer = requests.post(f"{dodo.base_url}/__dodo/events", json=body, timeout=10).json()
    assert answer["stored"] == "payments" and [d["endpoint"] for d in answer["deliveries"]] == [wants.id]
    assert answer["deliveries"][0]["status"] == 0
    assert client.payments.retrieve("pay_00090").payment_id == "pay_00090"
    held = requests.post(f"{dodo.base_url}/__dodo/events?withhold=1", json=body, timeout=10).json()
    assert held["deliveries"] == []
    assert sum(1 for p in dodo.payments if p["payment_id"] == "pay_00090") == 1  # kept once, the latest copy
    bad = requests.post(f"{dodo.base_url}/__dodo/events", json={"data": {}}, timeout=10)
    assert bad.status_code == 422
