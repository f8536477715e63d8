"""Reading numbers from the environment, and the error a misconfigured deployment raises.

At the bottom of the package: the settings (`dodo_cio.configuration.settings`) and the AWS
clients' timeouts (`dodo_cio.platform.aws`) both read numbers from the environment the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class ConfigError(RuntimeError):
    """The deployment is misconfigured; the message says what to fix and never holds a secret."""


def env_number(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    """A positive number of seconds; with `zero_ok`, a count or a share where 0 is a value too (no
    reservation; ingest sends nothing directly)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    unit = "" if zero_ok else " of seconds"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number{unit}, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):  # float() accepts nan and inf
        bound = "a finite number, 0 or more" if zero_ok else f"a positive, finite number{unit}"
        raise ConfigError(f"{name} must be {bound}, not {raw!r}")
    return value
