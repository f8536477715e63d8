"""Every option more than one `dodo-cio` command takes, declared once.

A command names the options it takes (`add(parser, "stack", "region", "json")`) and may say in its
own words what one means for it (`help={"json": "the report as JSON"}`); the flag, its type, its
choices and its default are the same everywhere, so `--environment` cannot mean one thing to
`backfill` and another to `reconcile`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Final

DEFAULT_API_KEY_ENV: Final = "DODO_PAYMENTS_API_KEY"
DEFAULT_LOCAL_URL_HELP: Final = "default: $DODO_CIO_LOCAL_URL, else http://127.0.0.1:3000"

# name -> (flag, argparse keyword arguments). `%(default)s` in a help text is argparse's.
OPTIONS: Final[Mapping[str, tuple[str, Mapping[str, Any]]]] = {
    "stack": ("--stack", {"help": "CloudFormation stack name: read what the command needs from its outputs"}),
    "region": ("--region", {"help": "AWS region (default: your AWS configuration)"}),
    "local": ("--local", {"action": "store_true", "help": "use a running `make run` instead of AWS"}),
    "local_url": (
        "--local-url",
        {"metavar": "URL", "help": f"where that local run listens (implies --local; {DEFAULT_LOCAL_URL_HELP})"},
    ),
    "ssm_path": ("--ssm-path", {"help": "SSM path of the secrets (default: the stack's SsmParameterPath)"}),
    "environment": (
        "--environment",
        {"choices": ("live_mode", "test_mode"), "default": "live_mode", "help": "Dodo API (default %(default)s)"},
    ),
    "base_url": ("--base-url", {"help": "Dodo API base URL instead of --environment (a proxy, or the local stand-in)"}),
    "api_key_env": (
        "--api-key-env",
        {
            "default": DEFAULT_API_KEY_ENV,
            "metavar": "NAME",
            "help": "environment variable holding the Dodo API key (default %(default)s; else SSM <path>/dodo-api-key)",
        },
    ),
    "json": ("--json", {"action": "store_true", "help": "the same, as JSON, for machines"}),
    "dry_run": ("--dry-run", {"action": "store_true", "help": "say what would be done; change nothing"}),
    "url": ("--url", {"help": "webhook endpoint (default: the stack's WebhookUrl, or --local's)"}),
    "secret": ("--secret", {"help": "webhook secret whsec_... (default: $DODO_WEBHOOK_SECRET)"}),
    "webhook_id": ("--webhook-id", {"help": "webhook-id header (default: a fresh msg_... id)"}),
    "timestamp": ("--timestamp", {"type": int, "help": "webhook-timestamp, Unix seconds (default: now)"}),
    "queue_url": ("--queue-url", {"help": "dead-letter queue URL (instead of --stack)"}),
    "quarantine_url": (
        "--quarantine-url",
        {"help": "quarantine queue URL (default: the stack's QuarantineQueueUrl)"},
    ),
    "state_table": ("--state-table", {"metavar": "NAME", "help": "the state table (default: the stack's output)"}),
    "identifier": (
        "--identifier",
        {
            "help": "customer_id | email | metadata:<key>; must match the bridge's (default: the stack's "
            "CustomerioIdentifier, else $CUSTOMERIO_IDENTIFIER, else customer_id)"
        },
    ),
    "region_cio": (
        "--region-cio",
        {
            "choices": ("us", "eu"),
            "help": "Customer.io region (default: the stack's CustomerioRegion, else $CUSTOMERIO_REGION, else us)",
        },
    ),
    "track_url": ("--track-url", {"help": "Customer.io Track base URL override (default: the stack's, if any)"}),
}


# Where a command finds a deployed stack's settings and secrets.
STACK_SETTINGS: Final = ("stack", "region", "ssm_path")


def add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *names: str,
    help: Mapping[str, str] | None = None,
    **defaults: Any,
) -> None:
    """Add the named options to `parser`, each as declared in OPTIONS; `help` rewords, `defaults` (by name) differ."""
    for name in names:
        flag, declared = OPTIONS[name]
        keywords = dict(declared)
        if help and name in help:
            keywords["help"] = help[name]
        if name in defaults:
            keywords["default"] = defaults[name]
        parser.add_argument(flag, **keywords)


def aws_target(
    parser: argparse.ArgumentParser, what: str = "the queues (and function) of a running `make run`"
) -> None:
    """--stack, --region, --local, --local-url: where an operator command acts."""
    add(parser, "stack", "region")
    add(parser, "local", "local_url", help={"local": f"use {what} instead of AWS"})


def add_declared(parser: argparse.ArgumentParser, declared: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """A command's own options, declared as data: (flags, argparse keywords) each; "-n --webhooks" for two flags."""
    for flags, keywords in declared:
        parser.add_argument(*flags.split(), **keywords)
