"""The two Lambda handlers loaded as warm containers would hold them, in this one process.

Why special loading: both functions are modules named ``app`` (``functions/ingest/app.py`` and
``functions/retry/app.py``), and the local run and the tests host both at once, so the second is
loaded under its own name. Powertools reads its service name and namespace at import time, so
they are loaded after the environment is set. Their cached services and AWS clients point at one
run's emulated endpoints, so ``reset_handler_state`` drops them between runs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

from dodo_cio_local.local_template import REPO_ROOT, LocalRunError

INGEST_DIR: Final = REPO_ROOT / "functions" / "ingest"
RETRY_APP: Final = REPO_ROOT / "functions" / "retry" / "app.py"
RETRY_MODULE_NAME: Final = "retry_app"  # both handlers are modules named `app`


def load_ingest_module() -> ModuleType:
    """functions/ingest/app.py itself (it imports its sibling `customize`, so that dir goes on sys.path)."""
    if str(INGEST_DIR) not in sys.path:
        sys.path.insert(0, str(INGEST_DIR))
    target = (INGEST_DIR / "app.py").resolve()
    existing = sys.modules.get("app")
    if existing is None:
        return importlib.import_module("app")
    if Path(getattr(existing, "__file__", "") or "").resolve() == target:
        return existing
    # Another `app` (e.g. functions/retry) is loaded: load ours under a private name.
    name = "dodo_cio_local_ingest_app"
    if name in sys.modules:
        return sys.modules[name]
    return _load_as(name, target)


def load_retry_module() -> ModuleType:
    """functions/retry/app.py under its own name (`retry_app`): both handlers are modules named `app`.

    Loaded once per process, like a warm container; import it after setting the environment
    (Powertools reads its service name and namespace at import time).
    """
    target = RETRY_APP.resolve()
    existing = sys.modules.get(RETRY_MODULE_NAME)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == target:
        return existing
    return _load_as(RETRY_MODULE_NAME, target)


def _load_as(name: str, target: Path) -> ModuleType:
    """Execute `target` as module `name`; a module that fails to import is not left in sys.modules.

    Left there half-initialised, it would be what the next load returns.
    """
    spec = importlib.util.spec_from_file_location(name, target)
    if spec is None or spec.loader is None:
        raise LocalRunError(f"cannot load {target}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def reset_handler_state(module: ModuleType | None) -> None:
    """Drop the warm container's cached service, AWS clients and Powertools' cached parameters.

    The container's boto3 clients (dodo_cio.platform.aws, and the SSM provider built on them) point at the
    emulator's port: a later run, or a test under mock_aws, must build its own.
    """
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS  # noqa: PLC0415

    from dodo_cio.platform import aws  # noqa: PLC0415

    if module is not None:
        service = getattr(module, "_service", None)
        # IngestService and RetryService keep their client in a DeliveryClients cache (`_clients`).
        cache = getattr(service, "_clients", None)
        for client in (getattr(service, "_client", None), getattr(cache, "_client", None)):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        module._service = None  # type: ignore[attr-defined]
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    DEFAULT_PROVIDERS.pop("ssm", None)
    aws.reset()
