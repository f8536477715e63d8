"""The load test's senders (signed webhooks, retried like Dodo) and the bridge under test: in-process or over HTTP."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from dodo_cio_cli.apigw import DEV_WEBHOOK_SECRET, WEBHOOK_PATH
from dodo_cio_testdata.loadtest_model import (
    DRAIN_IDLE_INTERVAL,
    PROGRESS_EVERY,
    SANDBOX_LOGGER,
    AcceptedEvent,
    Attempt,
    Delivery,
    LoadConfig,
    LoadTestError,
    Webhook,
    WireStats,
    is_2xx,
)

if TYPE_CHECKING:
    import requests

    from dodo_cio_local.local_run import LocalBridge


# --- Sending, like Dodo --------------------------------------------------------------------------


def _answer_label(response: requests.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    if isinstance(doc, dict):
        value = doc.get("status") if is_2xx(response.status_code) else doc.get("error", doc.get("message"))
        return str(value) if value is not None else ""
    return ""


def deliver(
    session: requests.Session,
    webhook: Webhook,
    *,
    duplicate: bool,
    url: str,
    secret: str,
    config: LoadConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """One Dodo delivery: signed afresh on every attempt, retried on anything but a 2xx."""
    import requests  # noqa: PLC0415

    from dodo_cio_cli.sender import send_webhook  # noqa: PLC0415

    delivery = Delivery(webhook, duplicate)
    for attempt in range(1, config.max_attempts + 1):
        start = time.perf_counter()
        try:
            response = send_webhook(
                webhook.body,
                url=url,
                secret=secret,
                webhook_id=webhook.webhook_id,
                timeout=config.request_timeout,
                session=session,
                user_agent="dodo-cio-loadtest",
            )
        except requests.RequestException as exc:
            delivery.attempts.append(Attempt(None, type(exc).__name__, (time.perf_counter() - start) * 1000))
        else:
            label = _answer_label(response)
            delivery.attempts.append(Attempt(response.status_code, label, (time.perf_counter() - start) * 1000))
            if is_2xx(response.status_code):
                break
        if attempt < config.max_attempts:
            sleep(config.retry_pause * attempt)
    return delivery


def send_all(
    plan: Sequence[tuple[Webhook, bool]],
    *,
    url: str,
    secret: str,
    config: LoadConfig,
    on_progress: Callable[[int], None] | None = None,
) -> list[Delivery]:
    """`config.concurrency` sender threads, each with its own session, taking deliveries in plan order."""
    import requests  # noqa: PLC0415

    from dodo_cio.retry.pacing import RateLimiter  # noqa: PLC0415

    pace = RateLimiter(config.send_rate or 0.0)  # all senders together, as Dodo's endpoint rate_limit would
    jobs: queue.SimpleQueue[tuple[Webhook, bool]] = queue.SimpleQueue()
    for job in plan:
        jobs.put(job)
    results: list[Delivery] = []
    errors: list[BaseException] = []

    def sender() -> None:
        session = requests.Session()
        try:
            while True:
                try:
                    webhook, duplicate = jobs.get_nowait()
                except queue.Empty:
                    return
                pace.acquire()
                results.append(deliver(session, webhook, duplicate=duplicate, url=url, secret=secret, config=config))
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)
        finally:
            session.close()

    threads = [
        threading.Thread(target=sender, name=f"dodo-load-sender-{n}", daemon=True) for n in range(config.concurrency)
    ]
    for thread in threads:
        thread.start()
    last = time.monotonic()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.2)
        if on_progress is not None and time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            on_progress(len(results))
    if errors:
        raise LoadTestError(f"a sender crashed: {errors[0]!r}") from errors[0]
    return results


# --- The bridge under test -------------------------------------------------------------------------


class Target:
    """What the load test needs from the bridge: where to send, queue depths, what Customer.io got."""

    mode = ""
    webhook_url = ""
    secret = ""
    log_path: str | None = None

    def depths(self) -> dict[str, dict[str, int]]:
        raise NotImplementedError

    def wire(self) -> WireStats:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what was started; undo what was changed."""


def total_messages(depth: Mapping[str, int]) -> int:
    return int(depth.get("visible", 0)) + int(depth.get("in_flight", 0)) + int(depth.get("delayed", 0))


class _Sink(io.TextIOBase):
    """stdout while the in-process bridge runs: its JSON logs and metrics go to a file, not the console.

    Stays usable after `close_file()` (Powertools' Logger keeps a reference to the stream it was built
    with; later writes are dropped instead of failing on a closed file).
    """

    def __init__(self, path: str) -> None:
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close_file
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._file is not None:
                self._file.write(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close_file(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            file.close()


class InProcessTarget(Target):
    """A LocalBridge in this process: port 0, sandbox on a free port, its fail_rate and seed set."""

    mode = "in-process local run"

    def __init__(self, config: LoadConfig) -> None:
        from dodo_cio_local.local_run import LocalBridge  # noqa: PLC0415
        from dodo_cio_local.local_template import LocalRunError  # noqa: PLC0415

        self.secret = config.secret or os.environ.get("DODO_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
        self._stack = contextlib.ExitStack()
        self._sink: _Sink | None = None
        if not config.verbose:
            self._quiet()
        try:
            bridge = LocalBridge(
                port=0,
                sandbox_port=0,
                secret=self.secret,
                log=_console_log if config.verbose else self._bridge_log,
                drain=True,
                drain_interval=DRAIN_IDLE_INTERVAL,
                sandbox_rate_limit=config.sandbox_rate_limit,
            )
            self._stack.callback(bridge.stop)
            info = bridge.start()
        except LocalRunError as exc:
            self.close()
            raise LoadTestError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        sandbox = bridge.sandbox
        assert sandbox is not None  # no credentials were given: the sandbox is always used
        sandbox.fail_rate = config.fail_rate
        sandbox.seed = config.seed
        sandbox.reset()  # re-seeds the failure sequence
        self.bridge: LocalBridge = bridge
        self.webhook_url = info.webhook_url

    def _quiet(self) -> None:
        handle, path = tempfile.mkstemp(prefix="dodo-cio-load-", suffix=".log")
        os.close(handle)
        sink = self._sink = _Sink(path)
        self.log_path = path
        previous_stdout = sys.stdout
        sys.stdout = sink

        def give_stdout_back() -> None:
            sys.stdout = previous_stdout
            # Loggers created meanwhile (Powertools' in the handler modules) bound the sink: rebind them.
            for logger in list(logging.Logger.manager.loggerDict.values()):
                for handler in getattr(logger, "handlers", ()):
                    if isinstance(handler, logging.StreamHandler) and handler.stream is sink:
                        handler.setStream(previous_stdout)

        self._stack.callback(sink.close_file)
        self._stack.callback(give_stdout_back)
        sandbox_log = logging.getLogger(SANDBOX_LOGGER)
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s track-sandbox %(message)s", "%H:%M:%S"))
        saved = (sandbox_log.level, sandbox_log.propagate)
        sandbox_log.addHandler(handler)  # the sandbox adds its stderr handler only when none exists
        sandbox_log.setLevel(logging.INFO)
        sandbox_log.propagate = False

        def restore() -> None:
            sandbox_log.removeHandler(handler)
            sandbox_log.setLevel(saved[0])
            sandbox_log.propagate = saved[1]

        self._stack.callback(restore)

    def _bridge_log(self, line: str) -> None:
        if self._sink is not None:
            self._sink.write(line + "\n")

    def depths(self) -> dict[str, dict[str, int]]:
        return self.bridge.queue_depths()

    def wire(self) -> WireStats:
        sandbox = self.bridge.sandbox
        assert sandbox is not None
        records = list(sandbox.requests)
        posts = [r for r in records if r.method == "POST" and r.path.startswith("/api/")]
        statuses = Counter(str(r.status or "closed") for r in posts)
        events = [
            AcceptedEvent(
                event_id=op.get("id") if isinstance(op.get("id"), str) else None,
                customer=_identifier(op.get("identifiers")),
                name=op.get("name") if isinstance(op.get("name"), str) else None,
            )
            for op in sandbox.accepted_ops()
            if op.get("action") == "event"
        ]
        return WireStats(
            requests=len(posts),
            injected_503=sum(1 for r in posts if r.scripted == "fail_rate"),
            status_counts=dict(statuses),
            events=events,
        )

    def close(self) -> None:
        self._stack.close()


def _console_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _identifier(identifiers: Any) -> str | None:
    if not isinstance(identifiers, dict):
        return None
    for key in ("id", "email", "cio_id"):
        value = identifiers.get(key)
        if isinstance(value, str):
            return value
    return None


class HttpTarget(Target):
    """A `make run` in another process: its status page, its sandbox's control endpoints."""

    mode = "running local bridge"

    def __init__(self, config: LoadConfig, url: str) -> None:
        import requests  # noqa: PLC0415

        self.secret = config.secret or os.environ.get("DODO_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
        parts = urlsplit(url if "://" in url else f"http://{url}")
        path = parts.path.rstrip("/")
        if not path.endswith(WEBHOOK_PATH):
            path += WEBHOOK_PATH
        self.webhook_url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.status_url = urlunsplit((parts.scheme, parts.netloc, "/__local", "", ""))
        self._http = requests.Session()
        try:
            page = self._http.get(self.status_url, timeout=10).json()
        except (requests.RequestException, ValueError) as exc:
            raise LoadTestError(
                f"no local run answers at {self.status_url} ({exc}); start it with `make run`"
            ) from None
        sandbox = page.get("sandbox_url") if isinstance(page, dict) else None
        if not sandbox:
            raise LoadTestError(
                f"{self.status_url} delivers to the real Customer.io Track API; the load test needs the local sandbox"
            )
        self.sandbox_url = str(sandbox).rstrip("/")
        self.mode = f"running local bridge at {self.webhook_url}"
        self._saved_config = self._control("config", {})
        self._control("config", {"fail_rate": config.fail_rate, "seed": config.seed})
        self._offset = len(self._requests())

    def _control(self, name: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        response = self._http.post(f"{self.sandbox_url}/__sandbox/{name}", json=dict(doc), timeout=10)
        if response.status_code != 200:
            raise LoadTestError(f"sandbox {name}: HTTP {response.status_code} {response.text[:200]}")
        answer: dict[str, Any] = response.json()
        return answer

    def _requests(self) -> list[dict[str, Any]]:
        response = self._http.get(f"{self.sandbox_url}/__sandbox/requests", timeout=60)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def depths(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = self._http.get(self.status_url, timeout=10).json()["queues"]
        return queues

    def wire(self) -> WireStats:
        records = [r for r in self._requests()[self._offset :] if str(r.get("path", "")).startswith("/api/")]
        posts = [r for r in records if r.get("method") == "POST"]
        events: list[AcceptedEvent] = []
        for rec in posts:
            status = int(rec.get("status") or 0)
            if not is_2xx(status) or rec.get("scripted") in {"close", "reset"}:
                continue
            rejected = {e.get("batch_index") for e in rec.get("errors") or [] if isinstance(e, dict)}
            for index, op in enumerate(rec.get("ops") or []):
                if index in rejected or not isinstance(op, dict) or op.get("action") != "event":
                    continue
                ident = str(op.get("identifier") or "")
                _, _, value = ident.partition("=")
                events.append(AcceptedEvent(None, value or None, op.get("name")))
        return WireStats(
            requests=len(posts),
            injected_503=sum(1 for r in posts if r.get("scripted") == "fail_rate"),
            status_counts=dict(Counter(str(r.get("status") or "closed") for r in posts)),
            events=events,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            saved: dict[str, Any] = {k: v for k, v in self._saved_config.items() if k in {"fail_rate", "seed"}}
            self._control("config", saved)
        self._http.close()


@contextlib.contextmanager
def open_target(config: LoadConfig) -> Iterator[Target]:
    target: Target = HttpTarget(config, config.url) if config.url else InProcessTarget(config)
    try:
        yield target
    finally:
        target.close()
