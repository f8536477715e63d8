"""Which Customer.io API a command talks to: the one the deployment delivers to (`CustomerioApi`).

`check` and `backfill` must use the API, key and URL of the bridge they are run for: a backfill
sent through Track into a workspace the bridge feeds through Pipelines would address the same
people by other routes, and a check of the Track key says nothing about a Pipelines deployment.
So both take the choice from the same place, in the same order (`choose_api`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Final

from dodo_cio.delivery.destination import APIS, TRACK

STACK_PARAMETER: Final = "CustomerioApi"
PIPELINES_URL_PARAMETER: Final = "CustomerioPipelinesUrl"
ENV: Final = "CUSTOMERIO_API"


def add_api_options(parser: argparse.ArgumentParser, *, url_env: bool = False) -> None:
    """`--api` and `--pipelines-url`; `url_env` when the command also reads $CUSTOMERIO_PIPELINES_URL."""
    parser.add_argument(
        "--api",
        choices=APIS,
        help=f"the Customer.io API: track or pipelines (default: the stack's {STACK_PARAMETER}, which is track "
        f"on a stack deployed without it; without --stack ${ENV}, else track)",
    )
    also = ", else $CUSTOMERIO_PIPELINES_URL" if url_env else ""
    parser.add_argument(
        "--pipelines-url",
        help="Customer.io Data Pipelines base URL override, ending in /v1 "
        f"(default: the stack's {PIPELINES_URL_PARAMETER}, if any{also}; else the region's host)",
    )


def choose_api(
    flag: str | None, parameters: Mapping[str, str], *, stack: bool, env: Mapping[str, str] | None = None
) -> str:
    """`--api`, else the stack's parameter, else (without a stack) $CUSTOMERIO_API, else track.

    With a stack the shell's $CUSTOMERIO_API is not consulted: it may be set for `make run`, and
    the stack's functions never see it. A stack deployed before the parameter existed has none
    and delivers with Track. ValueError names where an unknown value came from.
    """
    if flag:
        return flag
    if stack:
        raw, source = parameters.get(STACK_PARAMETER, ""), f"the stack's {STACK_PARAMETER}"
    else:
        raw, source = (os.environ if env is None else env).get(ENV, ""), f"${ENV}"
    api = raw.strip().lower() or TRACK
    if api not in APIS:
        raise ValueError(f"{source} must be track or pipelines, not {raw!r}")
    return api
