"""Where a warm webhook's time goes, stage by stage, in the bridge and in its floor.

Not a timing run (each stage timer costs a microsecond or two); it tells what stands between the
two. The functions of each stage are wrapped, in this process only, with wall + CPU timers that
count each call's own time (what the stages it calls took is theirs), so the stages add up to
the whole; what no stage claims is "glue" (Lambda wrappers, the handler's own lines, deadlines).
Stages a side does not have stay empty on that side (the floor has no typed models, no limits,
no state records, and one log line without a logging framework).

Also one real botocore DynamoDB UpdateItem against the stub: the per-call cost that the fake AWS
leaves out of both sides of the warm comparison (the bridge makes 2 DynamoDB calls per webhook in
the common case: the TransactWriteItems with the idempotency record, then the "completed" UpdateItem).

    .venv/bin/python bench/ingest_breakdown.py [--n 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from common import (
    INGEST_DIR,
    LAYER,
    SECRET_VALUES,
    ingest_environment,
    lambda_contexts,
    signed_events,
    silence_stdout,
    write_json,
)

STAGES = (
    ("secrets", "secrets (SSM parameters, cached)"),
    ("verify", "signature verification"),
    ("parse", "JSON parse + typed validation (models)"),
    ("map", "mapping (map_event; the floor: its build_ops)"),
    ("resolve", "identity resolution + state plan"),
    ("dedupe", "duplicate check's own work (dodo_cio.state.idempotency)"),
    ("state", "state records' own work (StateTable.commit)"),
    ("fit", "limits fitting (fit_op)"),
    ("http", "Customer.io request (http.client -> stub; the bridge's also encodes the body)"),
    ("aws", "AWS calls on the in-memory fake (both sides make theirs)"),
    ("logging", "structured log lines (Powertools Logger; the floor: one print)"),
    ("metrics", "EMF metrics (dodo_cio.platform.telemetry)"),
    ("glue", "everything else (Lambda wrappers, deadlines, handler glue)"),
)
_FAKE_CALLS = ("put_item", "update_item", "transact_write_items", "batch_get_item", "get_item", "delete_item")


class Stages:
    """Wall + CPU nanoseconds per stage, each call counting only its own time (not its callees')."""

    def __init__(self) -> None:
        self.wall: defaultdict[str, int] = defaultdict(int)
        self.cpu: defaultdict[str, int] = defaultdict(int)
        self._children: list[list[int]] = []
        self._wrapped: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        self._wrapped.append((owner, name, getattr(owner, name)))
        setattr(owner, name, self.timed(getattr(owner, name), stage))

    def unwrap(self) -> None:
        """Put back what `wrap` replaced (the floor wraps json.loads and print, which the bridge also uses)."""
        for owner, name, original in reversed(self._wrapped):
            setattr(owner, name, original)

    def timed(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        clock, cpu_clock, children = time.perf_counter_ns, time.thread_time_ns, self._children

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, w0 = cpu_clock(), clock()
            children.append([0, 0])
            try:
                return function(*args, **kwargs)
            finally:
                wall, cpu = clock() - w0, cpu_clock() - c0
                below = children.pop()
                self.wall[stage] += wall - below[0]
                self.cpu[stage] += cpu - below[1]
                if children:
                    children[-1][0] += wall
                    children[-1][1] += cpu

        return timed

    def per_webhook(self, n: int) -> dict[str, Any]:
        def ms(acc: dict[str, int]) -> dict[str, float]:
            out = {key: acc.get(key, 0) / 1e6 / n for key, _ in STAGES}
            out["total"] = sum(out.values())
            return out

        return {"wall_ms": ms(self.wall), "cpu_ms": ms(self.cpu)}


def _run(handler: Callable[..., Any], events: list[dict[str, Any]], warmup: int, stages: Stages) -> None:
    contexts = lambda_contexts(len(events))
    for event, context in zip(events[:warmup], contexts, strict=False):
        handler(event, context)
    timed = stages.timed(handler, "glue")
    stages.wall.clear()
    stages.cpu.clear()
    for event, context in zip(events[warmup:], contexts[warmup:], strict=True):
        timed(event, context)


def bridge(track_url: str, events: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    os.environ.update(ingest_environment(track_url))
    sys.path[:0] = [str(INGEST_DIR), str(LAYER)]
    from fakeaws import botocore_fake, install_into_boto3

    fake = botocore_fake(SECRET_VALUES)
    install_into_boto3(fake)
    import app
    import dodo_cio.configuration.settings
    import dodo_cio.delivery.track
    import dodo_cio.state.idempotency
    import dodo_cio.state.identity
    import dodo_cio.state.table
    from dodo_cio.ingest import service as ingest

    s = Stages()
    for owner, name, stage in (
        (dodo_cio.configuration.settings.SecretStore, "load", "secrets"),
        (ingest, "verify", "verify"),
        (ingest, "parse_json", "parse"),
        (ingest, "parse_envelope", "parse"),
        (ingest, "parse_payload", "parse"),
        (ingest, "map_event", "map"),
        (dodo_cio.state.identity.Resolver, "resolve", "resolve"),
        (ingest, "plan_for", "resolve"),
        (dodo_cio.state.idempotency.WebhookDeduplicator, "__call__", "dedupe"),
        (ingest.IngestService, "_deliver", "glue"),  # what runs under the duplicate check is not its work
        (dodo_cio.state.table.StateTable, "commit", "state"),
        (ingest, "fit_op", "fit"),
        (dodo_cio.delivery.track.TrackClient, "send", "http"),
        *((app.logger, name, "logging") for name in ("info", "warning", "error", "append_keys")),
        (app.metrics, "add_metric", "metrics"),
        (app.metrics, "flush", "metrics"),
        *((fake.dynamodb, name, "aws") for name in _FAKE_CALLS),
        (fake.ssm, "get_parameters", "aws"),
    ):
        s.wrap(owner, name, stage)
    _run(app.lambda_handler, events, warmup, s)
    return s.per_webhook(len(events) - warmup)


def floor(track_url: str, events: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    import builtins

    import floor_ingest
    from fakeaws import FakeAws

    fake = FakeAws(SECRET_VALUES)
    s = Stages()
    for owner, name, stage in (
        (floor_ingest.Floor, "_load_secrets", "secrets"),
        (floor_ingest.hmac, "new", "verify"),
        (floor_ingest.hmac, "compare_digest", "verify"),
        (floor_ingest.json, "loads", "parse"),
        (floor_ingest, "build_ops", "map"),
        (floor_ingest.Floor, "_post", "http"),
        (builtins, "print", "logging"),
        *((fake.dynamodb, name, "aws") for name in ("put_item", "update_item")),
        (fake.ssm, "get_parameters", "aws"),
    ):
        s.wrap(owner, name, stage)
    _run(floor_ingest.Floor(track_url, fake), events, warmup, s)
    s.unwrap()
    return s.per_webhook(len(events) - warmup)


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
    walls, cpus = [], []
    for i in range(n + 50):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        client.update_item(
            TableName="bench-state",
            Key={"id": {"S": f'fresh#{{"id":"cus_{i}"}}'}},
            UpdateExpression="SET last_event_time = :t, expiration = :e",
            ConditionExpression="attribute_not_exists(last_event_time) OR last_event_time <= :t",
            ExpressionAttributeValues={":t": {"N": str(1_790_000_000 + i)}, ":e": {"N": "1792592000"}},
        )
        if i >= 50:
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
    events = signed_events(args.n + args.warmup, prefix="msg_breakdown_")
    real_stdout = silence_stdout()

    def measure(url: str) -> dict[str, Any]:
        return {
            "floor": floor(url, events, args.warmup),
            "bridge": bridge(url, events, args.warmup),
            "stages": [list(stage) for stage in STAGES],  # a list: results.json sorts its keys
            "botocore_update_item": botocore_call(url, args.n),
        }

    if args.track_url:
        result = measure(args.track_url)
    else:
        import stub_http

        with stub_http.start() as url:
            result = measure(url)
    sys.stdout = real_stdout
    write_json(args.json, result)


if __name__ == "__main__":
    main()
