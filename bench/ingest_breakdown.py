"""Where a warm webhook's time goes: the ingest handler's stages, and the HTTP client alone.

Not a timing run (the stage timers add a few microseconds per stage); it tells what to change:

* stages: the bridge's functions are wrapped (in this process only) with wall + CPU timers, and
  each stage's exclusive time per webhook is reported (Powertools decorators, secrets, signature,
  Powertools Idempotency's own overhead, its DynamoDB records (the "in progress" record travels in
  one TransactWriteItems with the webhook's state records), parsing + validation, mapping, limits
  fitting, identity resolution (directory BatchGetItem when a payload lacks identifiers), the
  state commit's own work, the Customer.io request, everything else);
* HTTP clients: one Track v2 batch body POSTed to the same stub by `requests.Session` (what
  TrackClient uses), the same with `trust_env = False`, a urllib3 pool and `http.client`;
* one real botocore DynamoDB UpdateItem against the stub: the per-call cost that the fake AWS
  leaves out of both sides of the warm comparison (the bridge makes 2 DynamoDB calls per webhook in
  the common case: the TransactWriteItems with the idempotency record, then the "completed" UpdateItem).

Same set-up as warm_ingest.py (stub on loopback, fake AWS).

    .venv/bin/python bench/ingest_breakdown.py [--n 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from common import INGEST_DIR, LAYER, SECRET_VALUES, ingest_environment, signed_events, silence_stdout, write_json

ORDER = (
    ("lambda_wrappers", "Powertools Logger/Metrics decorators (EMF flush), event conversion"),
    ("secrets", "secrets (SecretStore.load, cached)"),
    ("verify", "signature verification"),
    ("idempotency_overhead", "Powertools Idempotency, its own work"),
    ("idempotency_records", "idempotency records + state records (TransactWriteItems + UpdateItem on the fake)"),
    ("parse", "JSON parse + typed validation (models)"),
    ("map", "mapping (map_event)"),
    ("fit", "limits fitting (fit_op)"),
    ("resolve", "identity resolution (Resolver.resolve; directory BatchGetItem if needed)"),
    ("state", "state commit's own work (StateTable.commit, less the transaction call)"),
    ("http", "Customer.io request (http.client -> stub)"),
    ("other", "everything else (logging calls, metrics, glue)"),
)


class Timers:
    def __init__(self) -> None:
        self.wall: defaultdict[str, int] = defaultdict(int)
        self.cpu: defaultdict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)
        wall, cpu = self.wall, self.cpu
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, w0 = cpu_clock(), clock()
            try:
                return original(*args, **kwargs)
            finally:
                wall[label] += clock() - w0
                cpu[label] += cpu_clock() - c0

        setattr(owner, name, timed)


def stages(track_url: str, n: int, warmup: int) -> dict[str, Any]:
    os.environ.update(ingest_environment(track_url))
    sys.path[:0] = [str(INGEST_DIR), str(LAYER)]
    from fakeaws import botocore_fake, install_into_boto3

    install_into_boto3(botocore_fake(SECRET_VALUES))
    events = signed_events(warmup + n)
    from common import BenchContext

    import app

    for i, event in enumerate(events[:warmup]):
        app.lambda_handler(event, BenchContext(f"w{i}"))

    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

    import dodo_cio.config
    import dodo_cio.customerio
    import dodo_cio.idempotency
    import dodo_cio.identity
    import dodo_cio.state
    from dodo_cio import ingest

    t = Timers()
    t.wrap(ingest.IngestService, "handle", "handle")
    t.wrap(dodo_cio.config.SecretStore, "load", "secrets")
    t.wrap(ingest, "verify", "verify")
    t.wrap(dodo_cio.idempotency.WebhookDeduplicator, "__call__", "dedupe")
    t.wrap(ingest.IngestService, "_deliver", "deliver")  # the work run under the duplicate check
    t.wrap(DynamoDBPersistenceLayer, "_put_record", "idempotency_records")
    t.wrap(DynamoDBPersistenceLayer, "_update_record", "idempotency_records")
    for name in ("parse_json", "parse_envelope", "parse_payload"):
        t.wrap(ingest, name, "parse")
    t.wrap(ingest, "map_event", "map")
    t.wrap(ingest, "fit_op", "fit")
    t.wrap(dodo_cio.identity.Resolver, "resolve", "resolve")
    # The commit runs inside Powertools' _put_record (dodo_cio.idempotency._OneTransaction.put_item),
    # so its own work is split out of idempotency_records: commit less the TransactWriteItems call.
    t.wrap(dodo_cio.state.StateTable, "commit", "commit")
    t.wrap(dodo_cio.state.StateTable, "_transact", "transact")
    t.wrap(dodo_cio.customerio.TrackClient, "send", "http")

    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i, event in enumerate(events[warmup:]):
        context = BenchContext(f"r{i}")
        c0, w0 = cpu_clock(), clock()
        app.lambda_handler(event, context)
        t.wall["total"] += clock() - w0
        t.cpu["total"] += cpu_clock() - c0

    def exclusive(acc: dict[str, int]) -> dict[str, float]:
        ms = defaultdict(float, {k: v / 1e6 / n for k, v in acc.items()})
        state = ms["commit"] - ms["transact"]
        out = {
            "lambda_wrappers": ms["total"] - ms["handle"],
            "secrets": ms["secrets"],
            "verify": ms["verify"],
            "idempotency_overhead": ms["dedupe"] - ms["deliver"] - ms["idempotency_records"],
            "idempotency_records": ms["idempotency_records"] - state,
            "parse": ms["parse"],
            "map": ms["map"],
            "fit": ms["fit"],
            "resolve": ms["resolve"],
            "state": state,
            "http": ms["http"],
        }
        out["other"] = ms["total"] - sum(out.values())
        out["total"] = ms["total"]
        return out

    return {
        "n": n,
        "wall_ms": exclusive(t.wall),
        "cpu_ms": exclusive(t.cpu),
        "labels": dict(ORDER),
        "order": [key for key, _ in ORDER],
    }


def http_clients(track_url: str, n: int) -> dict[str, Any]:
    """One realistic /api/v2/batch body POSTed n times by each client, kept-alive, same stub."""
    import http.client
    from urllib.parse import urlsplit

    import requests
    import urllib3

    ops = [
        {"type": "person", "identifiers": {"id": "cus_1"}, "action": "identify", "attributes": {"email": "a@b.c"}},
        {"type": "person", "identifiers": {"id": "cus_1"}, "action": "event", "name": "payment.succeeded"},
    ]
    ops[1]["attributes"] = {f"attribute_{i}": "x" * 30 for i in range(22)}
    body = json.dumps({"batch": ops}, separators=(",", ":")).encode()
    headers = {"Authorization": "Basic YTpi", "Content-Type": "application/json", "User-Agent": "bench"}
    url = urlsplit(track_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    target = track_url + "/api/v2/batch"

    session = requests.Session()
    bare = requests.Session()
    bare.trust_env = False
    pool = urllib3.HTTPConnectionPool(host, port, maxsize=1, timeout=urllib3.Timeout(connect=2, read=5))
    conn = http.client.HTTPConnection(host, port, timeout=5)

    def via_http_client() -> int:
        conn.request("POST", "/api/v2/batch", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    clients: dict[str, Callable[[], int]] = {
        "requests.Session (TrackClient today)": lambda: (
            session.post(target, data=body, headers=headers, timeout=(2, 5)).status_code
        ),
        "requests.Session, trust_env=False": lambda: (
            bare.post(target, data=body, headers=headers, timeout=(2, 5)).status_code
        ),
        "urllib3.HTTPConnectionPool": lambda: (
            pool.urlopen("POST", "/api/v2/batch", body=body, headers=headers, retries=False).status
        ),
        "http.client.HTTPConnection": via_http_client,
    }
    out: dict[str, Any] = {}
    for label, call in clients.items():
        for _ in range(50):
            assert call() == 200
        walls, cpus = [], []
        for _ in range(n):
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            call()
            walls.append((time.perf_counter_ns() - w0) / 1e6)
            cpus.append((time.thread_time_ns() - c0) / 1e6)
        out[label] = {"wall_p50_ms": statistics.median(walls), "cpu_p50_ms": statistics.median(cpus)}
    return out


def botocore_call(track_url: str, n: int) -> dict[str, Any]:
    """What one real botocore DynamoDB UpdateItem costs the caller (serialise, sign, send, parse),
    against the loopback stub: the fake AWS of the timed runs leaves this out on both sides."""
    import botocore.session
    from botocore.config import Config

    # botocore directly: boto3.client is routed to the in-memory fake in this process.
    client = botocore.session.get_session().create_client(
        "dynamodb",
        endpoint_url=track_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the stub checks nothing
        config=Config(retries={"max_attempts": 1}),
    )

    def call(i: int) -> None:
        client.update_item(
            TableName="bench-state",
            Key={"id": {"S": f'fresh#{{"id":"cus_{i}"}}'}},
            UpdateExpression="SET last_event_time = :t, expiration = :e",
            ConditionExpression="attribute_not_exists(last_event_time) OR last_event_time <= :t",
            ExpressionAttributeValues={":t": {"N": str(1_790_000_000 + i)}, ":e": {"N": "1792592000"}},
        )

    for i in range(50):
        call(i)
    walls, cpus = [], []
    for i in range(n):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        call(i)
        walls.append((time.perf_counter_ns() - w0) / 1e6)
        cpus.append((time.thread_time_ns() - c0) / 1e6)
    return {"wall_p50_ms": statistics.median(walls), "cpu_p50_ms": statistics.median(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--track-url", help="a running stub (default: start one)")
    parser.add_argument("--json", help="write the result here instead of stdout")
    args = parser.parse_args()
    real_stdout = silence_stdout()

    def both(url: str) -> dict[str, Any]:
        return {
            "stages": stages(url, args.n, args.warmup),
            "http_clients": http_clients(url, args.n),
            "botocore_update_item": botocore_call(url, args.n),
        }

    if args.track_url:
        result = both(args.track_url)
    else:
        import stub_http

        with stub_http.start() as url:
            result = both(url)
    sys.stdout = real_stdout
    write_json(args.json, result)


if __name__ == "__main__":
    main()
