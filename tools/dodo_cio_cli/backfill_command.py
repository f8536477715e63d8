"""`dodo-cio backfill`: its arguments, where it finds credentials and the mapping, and the run it starts.

The Customer.io API is the deployment's (`--api`, else the stack's `CustomerioApi`: see
`dodo_cio_cli.api_choice`); what depends on it is in `dodo_cio_cli.backfill_destination`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dodo_cio.mapping.mapper import MappingConfig
from dodo_cio_cli import backfill_source, options
from dodo_cio_cli.api_choice import add_api_options
from dodo_cio_cli.backfill import Backfill, BackfillOptions, format_summary
from dodo_cio_cli.backfill_state import State, fingerprint

if TYPE_CHECKING:
    from dodo_cio.delivery.destination import Credentials
    from dodo_cio_cli.backfill_destination import Destination
    from dodo_cio_cli.backfill_summary import SummarySeeder

# -- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add(
        parser,
        *options.STACK_SETTINGS,
        "api_key_env",
        "environment",
        "base_url",
        help={
            "stack": "CloudFormation stack name: SSM path, Customer.io API, region/URL and identifier from its "
            "parameters",
            "api_key_env": "environment variable holding the Dodo API key (default %(default)s); when it is unset "
            f"the key is read from SSM <path>/{backfill_source.DODO_API_KEY_PARAMETER} (with --stack or --ssm-path)",
            "environment": "which Dodo Payments API to read (default %(default)s)",
        },
    )
    options.add_declared(parser, _BEFORE_API)
    options.add(parser, "identifier", "region_cio", "track_url")
    add_api_options(parser, url_env=True)
    options.add_declared(parser, _AFTER_API)


# backfill's own options, declared once each (the ones other commands share are in options.py).
_BEFORE_API: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    (
        "--dodo-retries",
        {
            "type": int,
            "default": 2,
            "help": "retries of a failed Dodo request, with the SDK's backoff, before stopping (default %(default)s)",
        },
    ),
    (
        "--statuses",
        {
            "default": ",".join(backfill_source.DEFAULT_STATUSES),
            "help": "subscription statuses to backfill, comma separated, in the order sent: a customer with "
            "several subscriptions keeps the attributes of the one sent last (default %(default)s)",
        },
    ),
    ("--no-customers", {"action": "store_true", "help": "skip the customer listing (subscriptions only)"}),
    (
        "--events",
        {
            "action": "store_true",
            "help": "also send one subscription.<status> event per subscription "
            "(attribute backfill=true, dedup id from backfill:<subscription_id>); off by default: identify only",
        },
    ),
)
_AFTER_API: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    (
        "--customize",
        {
            "metavar": "FILE",
            "help": "the mapping customisation to apply (default: functions/ingest/customize.py when it exists here)",
        },
    ),
    (
        "--rate",
        {
            "type": float,
            "default": 10.0,
            "help": "Customer.io requests per second, at most the API's published rate (default %(default)s)",
        },
    ),
    (
        "--page-size",
        {"type": int, "default": backfill_source.MAX_PAGE_SIZE, "help": "Dodo page size, 1-100 (default %(default)s)"},
    ),
    (
        "--max-attempts",
        {
            "type": int,
            "default": 5,
            "help": "attempts per Customer.io request on 429/5xx/timeouts before stopping (default %(default)s)",
        },
    ),
    (
        "--state",
        {
            "default": backfill_source.DEFAULT_STATE_FILE,
            "metavar": "FILE",
            "help": "checkpoint file; a rerun continues from it (default %(default)s)",
        },
    ),
    ("--restart", {"action": "store_true", "help": "ignore the checkpoint and start from the first page"}),
    (
        "--dry-run",
        {
            "action": "store_true",
            "help": "read Dodo and build the ops, print counts and a masked sample, "
            "send nothing (needs no Customer.io credentials, writes no checkpoint)",
        },
    ),
    ("--sample", {"type": int, "default": 3, "help": "ops shown by --dry-run (default %(default)s)"}),
    ("--no-progress", {"action": "store_true", "help": "no progress bar"}),
    (
        "--state-table",
        {
            "metavar": "NAME",
            "help": "the bridge's state table, where the commercial summary is seeded (default: the stack's "
            "StateTableName output, else $STATE_TABLE_NAME); without one the summary is not seeded",
        },
    ),
    (
        "--no-summary",
        {"action": "store_true", "help": "do not read succeeded payments and refunds nor seed the commercial summary"},
    ),
)


def load_mapping(defaults: MappingConfig, customize: str | None) -> tuple[MappingConfig, str]:
    """The merchant's `build_mapping` applied to the defaults (`Settings.mapping()`), as the ingest function does."""
    path = Path(customize) if customize else Path("functions/ingest/customize.py")
    if not path.is_file():
        if customize:
            raise backfill_source.BackfillError(f"--customize: no file {customize}")
        return defaults, "the default mapping"
    directory = str(path.resolve().parent)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)  # customize.py may import recipes.py beside it
    try:
        spec = importlib.util.spec_from_file_location("_dodo_cio_backfill_customize", path)
        if spec is None or spec.loader is None:
            raise backfill_source.BackfillError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        build = getattr(module, "build_mapping", None)
        if not callable(build):
            raise backfill_source.BackfillError(f"{path} has no build_mapping(defaults) function")
        mapping = build(defaults)
    except backfill_source.BackfillError:
        raise
    except Exception as exc:  # noqa: BLE001 - the merchant's code: say where it failed
        raise backfill_source.BackfillError(f"{path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
    if not isinstance(mapping, MappingConfig):
        raise backfill_source.BackfillError(
            f"{path}: build_mapping must return a MappingConfig, not {type(mapping).__name__}"
        )
    return mapping, str(path)


def _ssm_value(ssm: Any, name: str, *, what: str) -> str | None:
    """A decrypted SSM parameter, None when it does not exist; access problems are errors."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        value = str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", ""))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "ParameterNotFound":
            return None
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        raise backfill_source.BackfillError(
            f"reading {what} from SSM {name} failed: {code}: {message}".rstrip(": ")
        ) from None
    except BotoCoreError as exc:
        raise backfill_source.BackfillError(f"reading {what} from SSM {name} failed: {exc}") from None
    return value.strip() or None


def command(args: argparse.Namespace, aws: Callable[[str, str | None], Any]) -> int:
    """`dodo-cio backfill`: resolve settings and credentials, run, print the summary; the exit code."""
    started = time.monotonic()
    try:
        return _command(args, aws, started)
    except backfill_source.BackfillError as exc:
        print(f"dodo-cio backfill: {exc}", file=sys.stderr)
        return exc.code


@dataclass(frozen=True, slots=True)
class _Target:
    """Where the run reads from and writes to, resolved from the options, the stack and the environment."""

    ssm_path: str
    destination: Destination
    identifier: str
    mapping: MappingConfig
    mapping_source: str
    state_table: str | None = None


def _options(args: argparse.Namespace) -> BackfillOptions:
    if not 1 <= args.page_size <= backfill_source.MAX_PAGE_SIZE:
        raise backfill_source.BackfillError(
            f"--page-size must be 1 to {backfill_source.MAX_PAGE_SIZE}, not {args.page_size}"
        )
    if not args.rate > 0:
        raise backfill_source.BackfillError(f"--rate must be a positive number of requests per second, not {args.rate}")
    if args.max_attempts < 1:
        raise backfill_source.BackfillError(f"--max-attempts must be at least 1, not {args.max_attempts}")
    if args.dodo_retries < 0:
        raise backfill_source.BackfillError(f"--dodo-retries must be 0 or more, not {args.dodo_retries}")
    statuses = backfill_source.parse_statuses(args.statuses)
    if args.no_customers and not statuses:
        raise backfill_source.BackfillError("nothing to backfill: --no-customers and no --statuses")
    return BackfillOptions(
        statuses=statuses,
        customers=not args.no_customers,
        events=args.events,
        page_size=args.page_size,
        rate=args.rate,
        max_attempts=args.max_attempts,
        dry_run=args.dry_run,
        sample=max(0, args.sample),
        progress=False if args.no_progress else None,
    )


def _target(args: argparse.Namespace, aws: Callable[[str, str | None], Any]) -> _Target:
    """The deployment's settings: each from its option, else the stack's parameter, else the environment.

    With --stack a parameter the stack has wins even when empty (an empty CustomerioTrackUrl means
    "no override" for the functions, whatever the shell says); the environment fills in only what
    the stack does not have. The settings are then read as the functions read them.
    """
    from dodo_cio_cli import api_choice, operator  # noqa: PLC0415
    from dodo_cio_cli.backfill_destination import Destination, bridge_settings  # noqa: PLC0415

    parameters: dict[str, str] = {}
    outputs: dict[str, str] = {}
    if args.stack:
        try:
            cfn = aws("cloudformation", args.region)
            stack = operator.resolve_stack(cfn, args.stack, parameters=("SsmParameterPath",))
            parameters = stack.parameters
            if not (args.no_summary or args.state_table):
                outputs = stack.outputs
        except operator.OperatorError as exc:
            raise backfill_source.BackfillError(str(exc)) from None

    def pick(option: str | None, parameter: str, variable: str) -> str:
        if option:
            return option
        return parameters[parameter] if parameter in parameters else os.environ.get(variable, "")

    try:
        api = api_choice.choose_api(args.api, parameters, stack=bool(args.stack))
    except ValueError as exc:
        raise backfill_source.BackfillError(str(exc)) from None
    values = {
        "CUSTOMERIO_API": api,
        "CUSTOMERIO_REGION": pick(args.region_cio, "CustomerioRegion", "CUSTOMERIO_REGION"),
        "CUSTOMERIO_TRACK_URL": pick(args.track_url, "CustomerioTrackUrl", "CUSTOMERIO_TRACK_URL"),
        "CUSTOMERIO_PIPELINES_URL": pick(
            args.pipelines_url, api_choice.PIPELINES_URL_PARAMETER, "CUSTOMERIO_PIPELINES_URL"
        ),
        "CUSTOMERIO_IDENTIFIER": pick(args.identifier, "CustomerioIdentifier", "CUSTOMERIO_IDENTIFIER"),
        "CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID": pick(
            None, "CustomerioSubscriptionObjectTypeId", "CUSTOMERIO_SUBSCRIPTION_OBJECT_TYPE_ID"
        ),
        "CUSTOMERIO_PROFILE_METADATA": pick(None, "CustomerioProfileMetadata", "CUSTOMERIO_PROFILE_METADATA"),
        "CUSTOMERIO_CONTACT_FIELDS": pick(None, "CustomerioContactFields", "CUSTOMERIO_CONTACT_FIELDS"),
    }
    settings = bridge_settings(values)
    url_override = values["CUSTOMERIO_PIPELINES_URL" if api == "pipelines" else "CUSTOMERIO_TRACK_URL"]
    destination = Destination.of(settings, url_override)
    destination.check_rate(args.rate)
    mapping, mapping_source = load_mapping(settings.mapping(), args.customize)
    if not mapping.send_identify and not args.events:
        raise backfill_source.BackfillError(
            f"{mapping_source} turns identify off (send_identify=False): nothing to send without --events"
        )
    return _Target(
        ssm_path=(args.ssm_path or parameters.get("SsmParameterPath") or "").rstrip("/"),
        destination=destination,
        identifier=settings.identifier.text,
        mapping=mapping,
        mapping_source=mapping_source,
        state_table=None if args.no_summary or not mapping.send_summary else _state_table(args, outputs),
    )


def _state_table(args: argparse.Namespace, outputs: dict[str, str]) -> str | None:
    return args.state_table or outputs.get("StateTableName") or os.environ.get("STATE_TABLE_NAME", "").strip() or None


def _credentials(
    args: argparse.Namespace, target: _Target, aws: Callable[[str, str | None], Any]
) -> tuple[str, Credentials | None]:
    """(Dodo API key, the chosen API's Customer.io credentials): the environment first, then SSM.

    A dry run sends nothing to Customer.io, so it reads no Customer.io credentials (None).
    """
    ssm: Any = None

    def read(name: str, what: str) -> str:
        nonlocal ssm
        if not target.ssm_path:
            return ""
        if ssm is None:
            ssm = aws("ssm", args.region)
        return _ssm_value(ssm, f"{target.ssm_path}/{name}", what=what) or ""

    api_key = os.environ.get(args.api_key_env, "").strip() or read(
        backfill_source.DODO_API_KEY_PARAMETER, "the Dodo API key"
    )
    if not api_key:
        where = (
            f" or put it in SSM {target.ssm_path}/{backfill_source.DODO_API_KEY_PARAMETER}"
            if target.ssm_path
            else " (or pass --stack/--ssm-path to read it from SSM)"
        )
        raise backfill_source.BackfillError(
            f"no Dodo Payments API key: set ${args.api_key_env}{where}; create one in Dodo's dashboard "
            "(Developer → API keys)"
        )
    if args.dry_run:
        return api_key, None
    return api_key, target.destination.credentials(read, os.environ)


def _open_state(path: Path, wanted: dict[str, Any], *, restart: bool) -> State:
    state = None if restart else State.load(path)
    if state is None:
        return State(fingerprint=wanted)
    differs = sorted(k for k in set(wanted) | set(state.fingerprint) if wanted.get(k) != state.fingerprint.get(k))
    if differs:
        raise backfill_source.BackfillError(
            f"the state file {path} belongs to a different backfill ({', '.join(differs)} changed); "
            "pass --restart to start over, or --state to use another file"
        )
    return state


def _seeder(
    args: argparse.Namespace,
    target: _Target,
    source: backfill_source.SdkSource,
    options: BackfillOptions,
    aws: Callable[[str, str | None], Any],
) -> SummarySeeder | None:
    """What seeds the commercial summary (dodo_cio_cli.backfill_summary), or None without a state table."""
    if target.state_table is None:
        if not args.no_summary:
            print(
                "not seeding the commercial summary: no state table (pass --stack or --state-table, or --no-summary)",
                file=sys.stderr,
                flush=True,
            )
        return None
    from dodo_cio.state.table import StateTable  # noqa: PLC0415
    from dodo_cio_cli.backfill_summary import SummarySeeder  # noqa: PLC0415

    table = StateTable(target.state_table, lambda: aws("dynamodb", args.region))
    print(f"seeding the commercial summary in state table {target.state_table}", flush=True)
    return SummarySeeder(table, target.mapping, source, dry_run=options.dry_run)


def _command(args: argparse.Namespace, aws: Callable[[str, str | None], Any], started: float) -> int:
    from dodo_cio_cli.backfill import Pacer  # noqa: PLC0415
    from dodo_cio_cli.backfill_destination import workspace_key  # noqa: PLC0415

    options = _options(args)
    target = _target(args, aws)
    destination = target.destination
    api_key, credentials = _credentials(args, target, aws)
    pacer = Pacer(options.rate)
    sender = None
    if credentials is not None:
        destination.preflight(credentials)
        sender = destination.client(credentials, pace=pacer)
    source = backfill_source.SdkSource(
        api_key, environment=args.environment, base_url=args.base_url, max_retries=args.dodo_retries
    )
    state_path = Path(args.state)
    state: State | None = None
    if options.dry_run:
        print(
            f"dry run: reading Dodo {source.where}; nothing will be sent; shown as the {destination.label} would "
            f"get it ({target.mapping_source})",
            flush=True,
        )
    else:
        print(
            f"Dodo {source.where} -> Customer.io {destination.label} {destination.url} "
            f"(identifier {target.identifier}; {target.mapping_source})",
            flush=True,
        )
        wanted = fingerprint(
            dodo=source.where,
            customerio_url=destination.url,
            site_id=workspace_key(credentials),
            identifier=target.identifier,
            events=options.events,
            page_size=options.page_size,
        )
        state = _open_state(state_path, wanted, restart=args.restart)
        if state.started_at:
            plan = backfill_source.listings(
                options.statuses, customers=options.customers, summary=target.state_table is not None
            )
            if state.completed_at and all(state.listing(listing.key).done for listing in plan):
                print(f"already complete according to {state_path}; nothing to do (--restart sends everything again)")
                source.close()
                if sender is not None:
                    sender.close()
                return backfill_source.EXIT_OK
            print(f"resuming from {state_path}", flush=True)
            state.completed_at = None

    builder = backfill_source.OpBuilder(target.mapping, events=options.events)
    seeder = _seeder(args, target, source, options, aws)
    backfill = Backfill(
        source,
        sender,
        builder,
        options,
        state=state,
        state_path=state_path,
        destination=destination,
        pacer=pacer,
        seeder=seeder,
    )
    try:
        report = backfill.run()
    finally:
        source.close()
        if sender is not None:
            sender.close()
    elapsed = time.monotonic() - started
    print(format_summary(report, options, elapsed=elapsed, requests_to=destination.requests_to))
    if report.message:
        print(f"dodo-cio backfill: {report.message}", file=sys.stderr)
    elif report.code == backfill_source.EXIT_INCOMPLETE:
        print(
            "dodo-cio backfill: some objects were rejected (listed above and in the state file); "
            "fix the data or the mapping, then run again with --restart",
            file=sys.stderr,
        )
    return report.code
