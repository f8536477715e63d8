"""The retry drain: functions/retry/app.py fed by Lambda's SQS poller, in a background thread.

Why: the deployed stack drains parked deliveries with the RetryFunction's SQS event source, which
moto does not run, so the local run hosts the retry handler in its own process and drives it with
``event_source.SqsEventSource``, using the batch size and partial-batch setting of the template's
RetryFunction event. The backoff runs ``$DODO_CIO_BACKOFF_SCALE`` times the real schedule (default
0.01: waits of 1-9 s instead of up to 15 min; horizons scaled alike), so a demo sees retries in
seconds; a scale of 1 is production.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from dodo_cio_local.handler_modules import load_retry_module, reset_handler_state
from dodo_cio_local.lambda_context import FakeLambdaContext
from dodo_cio_local.local_template import STACK_NAME, LocalRunError, TemplateSettings

if TYPE_CHECKING:
    from dodo_cio.delivery.backoff import BackoffPolicy
    from dodo_cio_local.event_source import PollResult

# The local run's retry schedule: this fraction of the real one (base, cap and horizons alike).
BACKOFF_SCALE_ENV: Final = "DODO_CIO_BACKOFF_SCALE"
DEFAULT_BACKOFF_SCALE: Final = 0.01
DEFAULT_DRAIN_INTERVAL: Final = 1.0  # seconds between polls of an empty retry queue


def backoff_scale_from_env(env: Mapping[str, str] | None = None) -> float:
    """$DODO_CIO_BACKOFF_SCALE, else the local default; must be in (0, 1]."""
    raw = (os.environ if env is None else env).get(BACKOFF_SCALE_ENV, "").strip()
    if not raw:
        return DEFAULT_BACKOFF_SCALE
    try:
        return check_scale(float(raw))
    except ValueError:
        raise LocalRunError(f"{BACKOFF_SCALE_ENV} must be a number in (0, 1], not {raw!r}") from None


def check_scale(scale: float) -> float:
    """`scale` itself when it is in (0, 1]: a larger one would wait longer than production does."""
    if not 0 < scale <= 1:  # also rejects nan
        raise ValueError(f"the backoff scale must be in (0, 1], not {scale!r}")
    return scale


def scaled_backoff(scale: float) -> BackoffPolicy:
    """The production BackoffPolicy with base, cap and both horizons multiplied by `scale`.

    Scaling all four keeps the schedule's proportions, including the template's arithmetic that a
    delivery reaches its horizon long before maxReceiveCount (SQS's 1 s minimum visibility aside).
    """
    from dodo_cio.delivery.backoff import BackoffPolicy  # noqa: PLC0415

    real = BackoffPolicy()
    if scale == 1:
        return real
    return BackoffPolicy(
        base=real.base * scale,
        cap=real.cap * scale,
        transient_horizon=max(1, round(real.transient_horizon * scale)),
        config_horizon=max(1, round(real.config_horizon * scale)),
    )


def describe_backoff(policy: BackoffPolicy) -> str:
    """The schedule in one line, for the banner and the status page: what a demo should expect."""
    return (
        f"waits 1-{max(1, int(policy.cap))} s, gives up after {policy.transient_horizon / 3600:.3g} h "
        f"(transient) / {policy.config_horizon / 3600:.3g} h (configuration errors)"
    )


class RetryDrain:
    """The retry handler and the thread that polls the retry queue for it, started and stopped together.

    `load()` builds the handler's service on the scaled backoff, before the thread can invoke it;
    `start()` polls with `lock` held per batch (see LocalBridge.lock); `stop()` lets a poll in
    progress finish. `interval` is the pause after a poll that found nothing visible.
    """

    def __init__(self, scale: float, interval: float, log: Callable[[str], None] | None) -> None:
        self.scale = scale
        self.interval = interval
        self.module: ModuleType | None = None
        self.backoff: BackoffPolicy | None = None
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self, metrics_namespace: str) -> None:
        """functions/retry/app.py with its service built now, on the (scaled) local backoff."""
        from dodo_cio.platform.env import ConfigError  # noqa: PLC0415

        module = self.module = load_retry_module()
        metrics = getattr(module, "metrics", None)
        if metrics is not None and not metrics.namespace:
            metrics.namespace = metrics_namespace
        reset_handler_state(module)
        self.backoff = scaled_backoff(self.scale)
        try:
            service = module.service()  # the handler's own construction, from the environment
        except ConfigError as exc:
            raise LocalRunError(f"retry function: {exc}") from None
        # RetryService.policy is the documented way to choose a schedule; nothing ran with the old one.
        service.policy = self.backoff

    def start(self, sqs: Any, settings: TemplateSettings, queue_url: str, lock: AbstractContextManager[Any]) -> None:
        from dodo_cio_local.event_source import SqsEventSource  # noqa: PLC0415

        module = self.module
        assert module is not None

        def context() -> FakeLambdaContext:
            return FakeLambdaContext(
                f"{STACK_NAME}-RetryFunction",
                memory_limit_in_mb=settings.retry_memory_mb,
                timeout_seconds=settings.retry_timeout_seconds,
            )

        source = SqsEventSource(
            sqs,
            queue_url,
            module.lambda_handler,
            batch_size=settings.retry_batch_size,
            context_factory=context,
            report_batch_item_failures=settings.retry_reports_batch_item_failures,
            lock=lock,
        )
        self._stop.clear()
        self._thread = threading.Thread(
            target=source.run,
            args=(self._stop,),
            kwargs={"idle_sleep": self.interval, "on_poll": self._log_poll},
            name="dodo-cio-retry-drain",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # A poll in progress finishes first: at most one retry invocation (Customer.io timeouts).
            thread.join(timeout=30)

    def reset(self) -> None:
        """Drop the retry container's cached service and clients (see reset_handler_state)."""
        if self.module is not None:
            reset_handler_state(self.module)

    def status(self, batch_size: int | str) -> str:
        running = self._thread is not None and self._thread.is_alive()
        schedule = describe_backoff(self.backoff) if self.backoff is not None else ""
        scale = f"backoff x{self.scale:g}: {schedule}"
        return f"{'running' if running else 'stopped'}, batch size {batch_size}, {scale}"

    def _log_poll(self, result: PollResult) -> None:
        if result.error is not None and result.received:
            traceback.print_exception(result.error)
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} retry {result.summary()}")
