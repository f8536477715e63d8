"""`dodo-cio`: developer commands for the bridge (local run, signed test deliveries, SAM events).

Imports are lazy per subcommand so `send` and `event` stay fast and never load moto.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dodo_cio_cli import options

if TYPE_CHECKING:
    from dodo_cio_cli.local_target import LocalTarget
    from dodo_cio_cli.operator import ReplayAnswer

DEFAULT_URL: Final = "http://127.0.0.1:3000/webhooks/dodo"
SEND_TIMEOUT: Final = 15.0  # as dodo_cio_cli.sender; kept here so usage errors need no import
EXIT_OK: Final = 0
EXIT_HTTP_ERROR: Final = 1
EXIT_USAGE: Final = 2
DLQ_LIMIT: Final = 100  # messages per queue a `dlq` listing shows unless --limit says otherwise


class UsageError(Exception):
    """Bad arguments or unreadable input: exit code 2, message on stderr."""


def _read_body(source: str) -> bytes:
    """The exact bytes to sign and send: a file, or stdin for '-'."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def _secret(value: str | None) -> str:
    from dodo_cio.receiving.signature import parse_secrets  # noqa: PLC0415

    raw = value or os.environ.get("DODO_WEBHOOK_SECRET", "")
    if not raw.strip():
        raise UsageError("no webhook secret: pass --secret whsec_... or set DODO_WEBHOOK_SECRET")
    try:
        parse_secrets(raw)
    except ValueError as exc:
        raise UsageError(f"--secret: {exc}") from None
    return raw


def _extra_headers(items: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header must look like 'Name: value', not {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def _cmd_send(args: argparse.Namespace) -> int:
    target = _local(args)
    if target is not None:
        from dodo_cio_cli import operator  # noqa: PLC0415

        args.url = target.webhook_url if args.url == DEFAULT_URL else args.url
        args.secret = args.secret or operator.read_secret_from_ssm(target.client("ssm"), target.ssm_parameter_path)
    secret = _secret(args.secret)
    body = _read_body(args.body)
    extra = _extra_headers(args.header or [])
    import requests  # noqa: PLC0415 - after the cheap checks: a usage error needs no HTTP stack

    from dodo_cio_cli import sender  # noqa: PLC0415

    try:
        response = sender.send_webhook(
            body,
            url=args.url,
            secret=secret,
            webhook_id=args.webhook_id,
            timestamp=args.timestamp,
            headers=extra,
        )
    except requests.Timeout:
        print(f"dodo-cio send: no answer from {args.url} within {SEND_TIMEOUT:.0f} s", file=sys.stderr)
        return EXIT_USAGE
    except requests.RequestException as exc:
        print(f"dodo-cio send: cannot reach {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if "127.0.0.1" in args.url or "localhost" in args.url:
            print("  is `make run` running?", file=sys.stderr)
        return EXIT_USAGE
    print(f"HTTP {response.status_code} {response.reason}")
    if response.text:
        print(response.text)
    from dodo_cio.receiving.http_api import REPLAYED_HEADER  # noqa: PLC0415 - the handler's own contract

    if response.headers.get(REPLAYED_HEADER, "").lower() == "true":
        from dodo_cio_cli.operator import REPLAYED_NOTICE  # noqa: PLC0415

        print(REPLAYED_NOTICE.format(webhook_id=args.webhook_id or "?"))
    return EXIT_OK if 200 <= response.status_code < 300 else EXIT_HTTP_ERROR


def _cmd_event(args: argparse.Namespace) -> int:
    from dodo_cio_cli.apigw import signed_webhook_event  # noqa: PLC0415

    secret = _secret(args.secret)
    body = _read_body(args.body)
    event = signed_webhook_event(
        body, secret, timestamp=args.timestamp, webhook_id=args.webhook_id, force_base64=args.base64
    )
    print(json.dumps(event, indent=2, ensure_ascii=False))
    return EXIT_OK


NO_REGION: Final = (
    "no AWS region: pass --region, or set AWS_REGION (or a region in your AWS configuration, aws configure)"
)


def _aws(service: str, region: str | None) -> Any:
    import boto3  # noqa: PLC0415 - only the AWS-facing commands pay for it
    from botocore.exceptions import NoRegionError  # noqa: PLC0415

    client: Any = boto3.client  # one helper for every service the commands touch
    try:
        return client(service, region_name=region) if region else client(service)
    except NoRegionError:  # a traceback and exit 1 told the user nothing they could act on
        raise UsageError(NO_REGION) from None


def _outputs(args: argparse.Namespace, *keys: str) -> dict[str, str]:
    """Stack outputs when --stack is given, else nothing (the caller then needs explicit options)."""
    from dodo_cio_cli import operator  # noqa: PLC0415

    if not getattr(args, "stack", None):
        return {}
    return operator.resolve_stack_outputs(_aws("cloudformation", args.region), args.stack, required=keys)


def _local(args: argparse.Namespace) -> LocalTarget | None:
    """The running `make run` when --local or --local-url was given (found through its status page)."""
    if not (getattr(args, "local", False) or getattr(args, "local_url", None)):
        return None
    if getattr(args, "stack", None):
        raise UsageError("--local and --stack exclude each other")
    from dodo_cio_cli.local_target import discover, local_url  # noqa: PLC0415

    return discover(local_url(args.local_url))


def _kept_queues(args: argparse.Namespace) -> tuple[Any, str | None, str | None, int]:
    """(sqs, DLQ URL, quarantine URL, SQS wait) from --local, --stack or the explicit URLs."""
    target = _local(args)
    if target is not None:
        sqs = target.client("sqs")
        url: str | None = args.queue_url or target.dead_letter_queue_url
        quarantine_url = args.quarantine_url or target.quarantine_queue_url or None
    else:
        outputs = _outputs(args, "DeadLetterQueueUrl")
        url = args.queue_url or outputs.get("DeadLetterQueueUrl")
        # Optional: a stack deployed before quarantine has no such output.
        quarantine_url = args.quarantine_url or outputs.get("QuarantineQueueUrl")
        sqs = _aws("sqs", args.region) if url or quarantine_url else None
    if not url and not quarantine_url:
        raise UsageError("pass --stack NAME, --local, or --queue-url URL of the dead-letter queue")
    wait = 0 if target is not None else 1  # long polling only where short polls can miss messages (SQS)
    return sqs, url, quarantine_url, wait


def _cmd_dlq(args: argparse.Namespace) -> int:
    """The DLQ's parked deliveries and, when a quarantine queue is known, the quarantined webhooks."""
    if args.export:
        return _export(args)
    if args.force:
        raise UsageError("--force only applies to --export FILE")
    from dodo_cio_cli import operator, quarantine_ops  # noqa: PLC0415

    sqs, url, quarantine_url, wait = _kept_queues(args)
    limit = DLQ_LIMIT if args.limit is None else args.limit
    dead = operator.list_dead_letters(sqs, url, limit=limit, wait_seconds=wait) if url else []
    kept = (
        quarantine_ops.list_quarantined(sqs, quarantine_url, limit=limit, wait_seconds=wait) if quarantine_url else None
    )
    if args.json:
        print(quarantine_ops.listing_json(dead, kept or []))
    elif kept is None:
        print(operator.format_dead_letters(dead, limit=limit))
    else:
        if url:
            print("Dead-lettered deliveries (dead-letter queue):")
            print(operator.format_dead_letters(dead, limit=limit))
            print()
        print("Quarantined webhooks (quarantine queue):")
        print(quarantine_ops.format_quarantined(kept, limit=limit))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    """`dlq --export FILE`: every message of both queues, whole, to a 0600 file; the queues keep them."""
    from dodo_cio_cli import archive  # noqa: PLC0415

    if args.json or args.limit is not None:
        raise UsageError("--export writes every message; leave out --json and --limit")
    path = Path(args.export)
    archive.refuse_existing(path, force=args.force)  # before any queue is read
    sqs, url, quarantine_url, wait = _kept_queues(args)
    report = archive.export(
        sqs, path, {"dead_letter": url, "quarantine": quarantine_url}, force=args.force, wait_seconds=wait
    )
    print(archive.export_summary(report, path))
    warnings = archive.export_warnings(report)
    for warning in warnings:
        print(f"dodo-cio dlq: {warning}", file=sys.stderr)
    return EXIT_HTTP_ERROR if any(item.short for item in report) else EXIT_OK


def _cmd_restore(args: argparse.Namespace) -> int:
    """Each line of an export back onto its queue as a new message; exit 1 when any line was not restored."""
    from dodo_cio_cli import archive  # noqa: PLC0415

    path = Path(args.file)
    lines = archive.read_lines(path)  # an unreadable file fails before anything is looked up
    sqs, url, quarantine_url, wait = _kept_queues(args)
    if not args.dry_run:
        print(f"restoring {path} to the queues each message came from")
    results = archive.restore(
        sqs,
        lines,
        {"dead_letter": url, "quarantine": quarantine_url},
        dry_run=args.dry_run,
        on_result=lambda result: print(archive.format_restored(result), flush=True),
        wait_seconds=wait,
    )
    print(archive.restore_summary(results, dry_run=args.dry_run))
    return EXIT_HTTP_ERROR if any(r.outcome in archive.NOT_RESTORED for r in results) else EXIT_OK


def _cmd_redrive(args: argparse.Namespace) -> int:
    from dodo_cio_cli import operator  # noqa: PLC0415

    target = _local(args)
    if target is not None:
        return _redrive_locally(args, target)
    outputs = _outputs(args, "DeadLetterQueueArn", "RetryQueueArn")
    dlq_arn = args.dlq_arn or outputs.get("DeadLetterQueueArn")
    if not dlq_arn:
        raise UsageError("pass --stack NAME or --dlq-arn ARN")
    sqs = _aws("sqs", args.region)
    if args.status:
        print(operator.format_redrive_status(operator.redrive_status(sqs, dlq_arn)))
        return EXIT_OK
    if args.cancel:
        left = operator.cancel_redrive(sqs, args.cancel)
        print(f"cancelled; {left if left is not None else 'an unknown number of'} message(s) were already moved")
        return EXIT_OK
    # Always name the retry queue: the retry function sends its dead letters itself, so SQS cannot
    # infer their source queue on its own.
    destination = args.to_arn or outputs.get("RetryQueueArn")
    if not destination:
        raise UsageError("pass --stack NAME or --to-arn ARN of the retry queue")
    handle = operator.start_redrive(sqs, dlq_arn, destination_arn=destination, rate=args.rate)
    print(f"redrive started (task {handle}); check progress with: dodo-cio redrive --status")
    return EXIT_OK


def _redrive_locally(args: argparse.Namespace, target: LocalTarget) -> int:
    """moto has no StartMessageMoveTask: move the DLQ's messages to the retry queue one by one."""
    from dodo_cio_cli import local_target, operator  # noqa: PLC0415

    if args.status or args.cancel:
        raise UsageError("--status and --cancel need SQS message move tasks, which the local run does not have")
    rate = operator._validate_rate(args.rate) if args.rate is not None else None
    source = (args.dlq_arn and _queue_url_of(target, args.dlq_arn)) or target.dead_letter_queue_url
    destination = (args.to_arn and _queue_url_of(target, args.to_arn)) or target.retry_queue_url
    moved = local_target.move_messages(target.client("sqs"), source, destination, rate=rate)
    print(
        f"moved {moved} message(s) from {source.rsplit('/', 1)[-1]} to {destination.rsplit('/', 1)[-1]} "
        "by receive/send/delete: the local run's moto has no StartMessageMoveTask "
        "(against AWS, redrive starts an SQS message move task)"
    )
    return EXIT_OK


def _queue_url_of(target: LocalTarget, arn: str) -> str:
    for url, known in (
        (target.dead_letter_queue_url, target.dead_letter_queue_arn),
        (target.retry_queue_url, target.retry_queue_arn),
    ):
        if arn == known:
            return url
    raise UsageError(f"{arn} is not a queue of the local run; leave out --dlq-arn and --to-arn with --local")


def _cmd_replay(args: argparse.Namespace) -> int:
    from dodo_cio_cli import operator  # noqa: PLC0415

    body = _read_body(args.body)
    target = _local(args)
    if target is not None:
        # The local run's own secret, from its SSM: $DODO_WEBHOOK_SECRET may be a deployment's.
        secret = args.secret or operator.read_secret_from_ssm(target.client("ssm"), target.ssm_parameter_path)
        answer = operator.replay(
            body, url=args.url or target.webhook_url, secret=_secret(secret), webhook_id=args.webhook_id
        )
        return _replay_answer(answer, args.webhook_id)
    outputs = _outputs(args, "WebhookUrl")
    url = args.url or outputs.get("WebhookUrl") or DEFAULT_URL
    secret = args.secret or os.environ.get("DODO_WEBHOOK_SECRET", "")
    if not secret and (args.ssm_path or args.stack):
        path = (
            args.ssm_path
            or operator.resolve_stack_parameters(
                _aws("cloudformation", args.region), args.stack, required=("SsmParameterPath",)
            )["SsmParameterPath"]
        )
        secret = operator.read_secret_from_ssm(_aws("ssm", args.region), path)
    secret = _secret(secret)
    return _replay_answer(operator.replay(body, url=url, secret=secret, webhook_id=args.webhook_id), args.webhook_id)


def _replay_answer(answer: ReplayAnswer, webhook_id: str | None) -> int:
    from dodo_cio_cli.operator import REPLAYED_NOTICE  # noqa: PLC0415

    print(f"HTTP {answer.status}")
    if answer.text:
        print(answer.text)
    if answer.replayed:
        print(REPLAYED_NOTICE.format(webhook_id=webhook_id or "?"))
    return EXIT_OK if 200 <= answer.status < 300 else EXIT_HTTP_ERROR


def _cmd_reconcile(args: argparse.Namespace) -> int:
    import datetime  # noqa: PLC0415

    from dodo_cio.state.table import StateTable  # noqa: PLC0415
    from dodo_cio_cli import operator, reconcile  # noqa: PLC0415
    from dodo_cio_cli.backfill_source import BackfillError  # noqa: PLC0415

    until = args.until or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    for name, value in (("--since", args.since), ("--until", until)):
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"{name} must be a date like 2026-11-01, not {value!r}") from None
    if until < args.since:
        raise UsageError(f"--until {until} is before --since {args.since}")
    target = _local(args)
    api_key = os.environ.get(args.api_key_env, "").strip()
    if target is not None:
        # The local run's stand-in for Dodo's API, unless told otherwise.
        args.base_url = args.base_url or target.deployment.get("dodo_api_url") or None
        api_key = api_key or target.deployment.get("dodo_api_key", "")
        dynamodb, sqs, table = target.client("dynamodb"), target.client("sqs"), args.state_table or target.state_table
        queues = {"retry queue": target.retry_queue_url, "dead-letter queue": target.dead_letter_queue_url}
        queues["quarantine"] = target.quarantine_queue_url
    else:
        outputs = _outputs(args, "StateTableName")
        table = args.state_table or outputs.get("StateTableName", "")
        if not table:
            raise UsageError("pass --stack NAME, --local, or --state-table NAME")
        dynamodb, sqs = _aws("dynamodb", args.region), _aws("sqs", args.region)
        queues = {
            "retry queue": outputs.get("RetryQueueUrl", ""),
            "dead-letter queue": outputs.get("DeadLetterQueueUrl", ""),
        }
        queues["quarantine"] = outputs.get("QuarantineQueueUrl", "")
        if not api_key and args.stack:
            path = operator.resolve_stack_parameters(_aws("cloudformation", args.region), args.stack)
            name = f"{path.get('SsmParameterPath', '').rstrip('/')}/dodo-api-key"
            with contextlib.suppress(Exception):
                api_key = _aws("ssm", args.region).get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    if not api_key:
        raise UsageError(
            f"no Dodo Payments API key: set ${args.api_key_env} (or store <path>/dodo-api-key with --stack)"
        )
    state = StateTable(table, lambda: dynamodb)
    try:
        lister = reconcile.SdkLister(api_key, environment=args.environment, base_url=args.base_url)
        try:
            objects = [o for f in reconcile.FAMILIES for o in reconcile.list_family(lister, f, args.since, until)]
        finally:
            lister.close()
    except BackfillError as exc:
        print(f"dodo-cio reconcile: {exc}", file=sys.stderr)
        return exc.code
    queued = reconcile.queued_objects(sqs, {k: v for k, v in queues.items() if v})
    report = reconcile.reconcile(objects, state.read_receipts, queued, since=args.since, until=until)
    print(report.to_json() if args.json else report.format())
    if args.fix and report.findings:
        return _reconcile_fix(args, report, api_key, target)
    return EXIT_OK if report.ok else EXIT_HTTP_ERROR


def _reconcile_fix(args: argparse.Namespace, report: Any, api_key: str, target: LocalTarget | None) -> int:
    from dodo_cio_cli import operator, reconcile  # noqa: PLC0415

    if target is not None:
        url = args.url or target.webhook_url
        secret = operator.read_secret_from_ssm(target.client("ssm"), target.ssm_parameter_path)
    else:
        url = args.url or _outputs(args, "WebhookUrl").get("WebhookUrl", "")
        secret = os.environ.get("DODO_WEBHOOK_SECRET", "")
        if not secret and args.stack:
            path = operator.resolve_stack_parameters(_aws("cloudformation", args.region), args.stack)
            secret = operator.read_secret_from_ssm(_aws("ssm", args.region), path.get("SsmParameterPath", ""))
    if not url:
        raise UsageError("--fix needs the webhook endpoint: --stack, --local or --url")
    secret = _secret(secret)
    lister = reconcile.SdkLister(api_key, environment=args.environment, base_url=args.base_url)
    try:
        done = reconcile.fix(
            report, lister, lambda body, wid: tuple(operator.replay(body, url=url, secret=secret, webhook_id=wid))
        )
    finally:
        lister.close()
    for finding, outcome in done:
        print(f"  sent {finding.event_type} {finding.object_id}: {outcome}")
    sent_ok = all(outcome.startswith("HTTP 2") for _, outcome in done)
    stuck = any(f.state == "stuck" for f in report.findings)
    return EXIT_OK if sent_ok and not stuck else EXIT_HTTP_ERROR


def _cmd_trace(args: argparse.Namespace) -> int:
    from dodo_cio_cli import operator, trace  # noqa: PLC0415

    if not args.subject.strip():
        raise UsageError("give the id to trace: a customer_id, payment_id, subscription_id, webhook_id or email")
    if not args.since > 0:
        raise UsageError(f"--since must be a positive number of days, not {args.since:g}")
    target = _local(args)
    if target is not None:
        sources = trace.Sources(
            dynamodb=target.client("dynamodb"),
            sqs=target.client("sqs"),
            table=target.state_table or None,
            identifier=target.deployment.get("identifier") or "customer_id",
            ingest_function=target.ingest_function,
            queues={
                "retry queue": target.retry_queue_url,
                "dead-letter queue": target.dead_letter_queue_url,
                "quarantine": target.quarantine_queue_url,
            },
            log_lines=target.log_lines(),
        )
        found = trace.trace(args.subject.strip(), sources, since_days=args.since)
    else:
        if not args.stack:
            raise UsageError("pass --stack NAME (or --local for a running `make run`)")
        cfn = _aws("cloudformation", args.region)
        stack = operator.resolve_stack(cfn, args.stack, outputs=("StateTableName", "IngestFunctionName"))
        outputs, parameters = stack.outputs, stack.parameters
        sources = trace.Sources(
            dynamodb=_aws("dynamodb", args.region),
            sqs=_aws("sqs", args.region),
            table=outputs["StateTableName"],
            identifier=parameters.get("CustomerioIdentifier") or "customer_id",
            ingest_function=outputs["IngestFunctionName"],
            queues={
                "retry queue": outputs.get("RetryQueueUrl", ""),
                "dead-letter queue": outputs.get("DeadLetterQueueUrl", ""),
                "quarantine": outputs.get("QuarantineQueueUrl", ""),
            },
            logs=_aws("logs", args.region),
            log_groups={
                "ingest log": f"/aws/lambda/{args.stack}/IngestFunction",
                "retry log": f"/aws/lambda/{args.stack}/RetryFunction",
            },
        )
        found = trace.trace(args.subject.strip(), sources, since_days=args.since)
    print(found.to_json() if args.json else found.format())
    return EXIT_OK if found.entries else EXIT_HTTP_ERROR


def _cmd_reprocess(args: argparse.Namespace) -> int:
    """Quarantined webhooks through the deployed ingest function; exit 1 when any stayed on the queue."""
    from dodo_cio_cli import quarantine_ops  # noqa: PLC0415

    target = _local(args)
    if target is not None:
        sqs, lam = target.client("sqs"), target.client("lambda")
        url = args.queue_url or target.quarantine_queue_url
        function = args.function or target.ingest_function
    else:
        outputs = _outputs(args, "QuarantineQueueUrl", "IngestFunctionName")
        url = args.queue_url or outputs.get("QuarantineQueueUrl", "")
        function = args.function or outputs.get("IngestFunctionName", "")
        if not url or not function:
            raise UsageError("pass --stack NAME, --local, or both --queue-url URL and --function NAME")
        sqs, lam = _aws("sqs", args.region), _aws("lambda", args.region)
    if not url:
        raise UsageError("the local run has no quarantine queue; restart `make run` with this version")
    if not args.dry_run:
        print(f"reprocessing quarantined webhooks from {url.rsplit('/', 1)[-1]} through {function}")
    results = quarantine_ops.reprocess(
        sqs,
        lam,
        url,
        function,
        limit=args.limit,
        dry_run=args.dry_run,
        on_result=lambda result: print(quarantine_ops.format_result(result), flush=True),
        wait_seconds=0 if target is not None else 1,
    )
    print(quarantine_ops.summary(results, limit=args.limit))
    return EXIT_HTTP_ERROR if any(not r.deleted and r.outcome != "dry_run" for r in results) else EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from dodo_cio_cli import api_choice, check, operator  # noqa: PLC0415

    target = _local(args)
    if target is not None:
        return _check_local(args, target)
    parameters: dict[str, str] = {}
    outputs: dict[str, str] | None = None
    if args.stack:
        cfn = _aws("cloudformation", args.region)
        stack = operator.resolve_stack(cfn, args.stack, parameters=("SsmParameterPath",))
        parameters, outputs = stack.parameters, stack.outputs
    ssm_path = args.ssm_path or parameters.get("SsmParameterPath")
    if not ssm_path:
        raise UsageError("pass --stack NAME or --ssm-path PATH (e.g. /dodo-customerio)")
    if not ssm_path.startswith("/"):
        raise UsageError(f"--ssm-path must start with '/', like /dodo-customerio, not {ssm_path!r}")
    region = (args.region_cio or parameters.get("CustomerioRegion") or "us").lower()
    try:
        api = api_choice.choose_api(args.api, parameters, stack=bool(args.stack))
        deployed = api_choice.choose_api(None, parameters, stack=True) if args.stack else api
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    track_url = args.track_url or parameters.get("CustomerioTrackUrl") or None
    pipelines_url = args.pipelines_url or parameters.get(api_choice.PIPELINES_URL_PARAMETER) or None
    identifier, contact_fields = _identity_settings(args, parameters)
    findings = check.run_checks(
        ssm=_aws("ssm", args.region),
        ssm_path=ssm_path.rstrip("/"),
        region=region,
        track_url=track_url,
        sqs=_aws("sqs", args.region) if outputs is not None else None,
        outputs=outputs,
        stack=args.stack or "",
        api=api,
        pipelines_url=pipelines_url,
        identifier=identifier,
        contact_fields=contact_fields,
    )
    if args.json:
        print(check.findings_json(findings))
    else:
        # --api may differ from the stack's: checking a Pipelines key before switching to it.
        where = f"stack {args.stack}, " if args.stack else ""
        differs = f" (the stack delivers with {deployed})" if deployed != api else ""
        url = pipelines_url if api == "pipelines" else track_url
        at_url = f", URL {url}" if url else ""
        header = f"checking {where}SSM path {ssm_path}, Customer.io region {region}, {api} API{differs}{at_url}"
        print(check.format_report(findings, header=header))
    return check.exit_code(findings)


def _check_local(args: argparse.Namespace, target: LocalTarget) -> int:
    """`check --local`: the same checks against what `make run` emulates and delivers to."""
    from dodo_cio_cli import check  # noqa: PLC0415

    deployment = target.deployment
    api = (args.api or deployment.get("customerio_api") or "track").lower()
    track_url = args.track_url or deployment.get("track_url") or None
    pipelines_url = args.pipelines_url or deployment.get("pipelines_url") or None
    region = (args.region_cio or deployment.get("customerio_region") or "us").lower()
    findings = check.run_checks(
        ssm=target.client("ssm"),
        ssm_path=target.ssm_parameter_path.rstrip("/"),
        region=region,
        track_url=track_url,
        sqs=target.client("sqs"),
        outputs={"RetryQueueUrl": target.retry_queue_url, "DeadLetterQueueUrl": target.dead_letter_queue_url},
        stack="",
        api=api,
        pipelines_url=pipelines_url,
        identifier=args.identifier or deployment.get("identifier") or "customer_id",
        contact_fields=args.contact_fields or deployment.get("contact_fields") or "auto",
    )
    if args.json:
        print(check.findings_json(findings))
    else:
        url = pipelines_url if api == "pipelines" else track_url
        where = f"the local run at {target.base_url}, SSM path {target.ssm_parameter_path}"
        header = f"checking {where}, {api} API, URL {url}"
        print(check.format_report(findings, header=header))
    return check.exit_code(findings)


def _identity_settings(args: argparse.Namespace, parameters: dict[str, str]) -> tuple[str, str]:
    """`check`'s identifier strategy and contact-fields owner: the option, the stack's parameter, the environment."""
    from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, MappingConfigError  # noqa: PLC0415

    def pick(option: str | None, parameter: str, variable: str, default: str) -> str:
        value = option or parameters.get(parameter) or os.environ.get(variable, "")
        return value.strip() or default

    identifier = pick(args.identifier, "CustomerioIdentifier", "CUSTOMERIO_IDENTIFIER", "customer_id")
    contact_fields = pick(args.contact_fields, "CustomerioContactFields", "CUSTOMERIO_CONTACT_FIELDS", "auto").lower()
    try:
        MappingConfig(identifier=IdentifierStrategy.parse(identifier), contact_fields=contact_fields)
    except MappingConfigError as exc:
        raise UsageError(str(exc)) from None
    return identifier, contact_fields


def _cmd_setup(args: argparse.Namespace) -> int:
    """`dodo-cio setup`: the wiring; what it does is in setup_command.py."""
    import getpass  # noqa: PLC0415

    from dodo_cio.configuration.settings import DEFAULT_INGEST_SHARE, DEFAULT_RATE_LIMIT_RPS  # noqa: PLC0415
    from dodo_cio_cli import api_choice, operator, setup_command  # noqa: PLC0415
    from dodo_cio_cli.backfill_source import sdk_client  # noqa: PLC0415

    if args.rate_limit is not None and args.rate_limit < 1:
        raise UsageError(f"--rate-limit must be a positive number of webhooks a second, not {args.rate_limit}")
    target = _local(args)
    if target is not None:
        found = target.deployment
        settings = {
            "CustomerioApi": found.get("customerio_api", ""),
            "CustomerioRequestsPerSecond": found.get("customerio_requests_per_second", ""),
            "CustomerioIngestShare": found.get("customerio_ingest_share", ""),
            "CustomerioIdentifier": found.get("identifier", ""),
            "CustomerioContactFields": found.get("contact_fields", ""),
        }
        where, webhook_url = f"the local run at {target.base_url}", target.webhook_url
        ssm_path, ssm = target.ssm_parameter_path, target.client("ssm")
        base_url = args.base_url or found.get("dodo_api_url") or None
        default_key = found.get("dodo_api_key", "")
        check_argv = ["check", "--local-url", target.base_url]
    else:
        if not args.stack:
            raise UsageError("pass --stack NAME (or --local for a running `make run`)")
        cfn = _aws("cloudformation", args.region)
        stack = operator.resolve_stack(cfn, args.stack, parameters=("SsmParameterPath",), outputs=("WebhookUrl",))
        settings, webhook_url = stack.parameters, stack.outputs["WebhookUrl"]
        where, ssm_path, ssm = f"stack {args.stack}", settings["SsmParameterPath"], _aws("ssm", args.region)
        base_url, default_key = args.base_url, ""
        check_argv = ["check", "--stack", args.stack, *(["--region", args.region] if args.region else [])]
    environment = args.environment or settings.get("DodoApiMode") or "live_mode"

    def number(name: str, default: float) -> float:
        try:
            return float(settings.get(name) or default)
        except ValueError:
            return default

    deployment = setup_command.Deployment(
        where=where,
        webhook_url=args.url or webhook_url,
        ssm_path=ssm_path,
        api=api_choice.choose_api(None, settings, stack=True),
        rate_limit=args.rate_limit
        or setup_command.fitting_rate_limit(
            number("CustomerioRequestsPerSecond", DEFAULT_RATE_LIMIT_RPS),
            number("CustomerioIngestShare", DEFAULT_INGEST_SHARE),
            number("ApiThrottlingRateLimit", 0) or None,
        ),
        identifier=settings.get("CustomerioIdentifier") or "customer_id",
        contact_fields=settings.get("CustomerioContactFields") or "auto",
        default_dodo_api_key=default_key,
    )

    def probe(body: bytes, secret: str) -> int:
        import requests  # noqa: PLC0415

        from dodo_cio_cli import sender  # noqa: PLC0415

        try:
            return int(sender.send_webhook(body, url=deployment.webhook_url, secret=secret).status_code)
        except requests.RequestException:
            return 0

    setup = setup_command.Setup(
        deployment,
        store=setup_command.ParameterStore(ssm, ssm_path),
        dodo=lambda key: sdk_client(key, environment=environment, base_url=base_url),
        env=os.environ,
        prompt=getpass.getpass if sys.stdin.isatty() else None,
        check=lambda: _cmd_check(_parser().parse_args(check_argv)),
        probe=probe,
        dry_run=args.dry_run,
        api_key_env=args.api_key_env,
    )
    import dodopayments  # noqa: PLC0415

    try:
        return setup.run()
    except setup_command.SetupError as exc:
        raise UsageError(str(exc)) from None
    except (dodopayments.AuthenticationError, dodopayments.PermissionDeniedError) as exc:
        raise UsageError(
            f"Dodo Payments rejected the API key (HTTP {exc.status_code}); check it, and that it is a "
            f"{environment} key (--environment)"
        ) from None
    except dodopayments.APIStatusError as exc:
        print(f"dodo-cio setup: Dodo Payments answered HTTP {exc.status_code}: {exc.message}", file=sys.stderr)
        return EXIT_HTTP_ERROR
    except dodopayments.APIConnectionError as exc:
        raise UsageError(f"cannot reach Dodo Payments ({type(exc).__name__}); check --base-url / the network") from None


def _cmd_backfill(args: argparse.Namespace) -> int:
    from dodo_cio_cli import backfill_command  # noqa: PLC0415

    return backfill_command.command(args, _aws)


def _args_check(p: argparse.ArgumentParser) -> None:
    from dodo_cio_cli import check as check_module  # noqa: PLC0415 - its options live beside its code

    check_module.add_arguments(p)
    local_options(p, "a running `make run`: its emulated SSM and queues, and the Customer.io it delivers to")


def _args_backfill(p: argparse.ArgumentParser) -> None:
    from dodo_cio_cli import backfill_command  # noqa: PLC0415 - stdlib and dodo_cio only at import time

    backfill_command.add_arguments(p)


def _args_setup(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    options.add(p, "dry_run", help={"dry_run": "read everything and say what would change; change nothing"})
    p.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="webhooks a second Dodo may send (default: CustomerioRequestsPerSecond x CustomerioIngestShare, "
        "at most ApiThrottlingRateLimit)",
    )
    options.add(
        p,
        "url",
        "environment",
        "base_url",
        "api_key_env",
        help={
            "url": "webhook endpoint to register (default: the stack's WebhookUrl, or --local's)",
            "environment": "Dodo API (default: the stack's DodoApiMode)",
            "api_key_env": "environment variable holding the Dodo API key (default %(default)s; else SSM "
            "<path>/dodo-api-key, else asked)",
        },
        environment=None,
    )


def _args_trace(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    p.add_argument("subject", metavar="ID", help="customer_id, payment_id, subscription_id, webhook_id or email")
    p.add_argument(
        "--since", type=float, default=7, metavar="DAYS", help="how far back the log query goes (default %(default)s)"
    )
    options.add(p, "json")


def _args_reconcile(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    p.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="first day, UTC")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="last day, UTC (default: today)")
    options.add(p, "state_table", "environment", "base_url", "api_key_env", "json")
    p.add_argument(
        "--fix",
        action="store_true",
        help="send each missing object, fetched whole from Dodo, through the bridge's endpoint as its webhook "
        "(signed now, with a webhook id derived from the object: a second --fix is answered, not counted again)",
    )
    options.add(p, "url", help={"url": "webhook endpoint for --fix (default: the stack's WebhookUrl, or --local's)"})


def _args_dlq(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    options.add(p, "queue_url", "quarantine_url")
    p.add_argument("--limit", type=int, help=f"at most this many messages (default {DLQ_LIMIT})")
    options.add(p, "json")
    p.add_argument(
        "--export",
        metavar="FILE",
        help="instead of listing, write every message of both queues whole (body, attributes, queue), one JSON "
        "object per line, to FILE (created mode 0600: it holds customer emails); the messages stay queued",
    )
    p.add_argument("--force", action="store_true", help="with --export: overwrite FILE if it exists")


def _args_restore(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a file written by dodo-cio dlq --export")
    aws_options(p)
    options.add(
        p,
        "queue_url",
        "quarantine_url",
        "dry_run",
        help={"dry_run": "check every line and say what would be sent; send nothing"},
    )


def _args_redrive(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    p.add_argument("--dlq-arn", help="dead-letter queue ARN (instead of --stack)")
    p.add_argument("--to-arn", help="retry queue ARN (instead of --stack)")
    p.add_argument("--rate", type=int, help="messages per second, 1-500 (default: as fast as SQS allows)")
    p.add_argument("--status", action="store_true", help="show running and recent redrives instead")
    p.add_argument("--cancel", metavar="TASK_HANDLE", help="cancel a running p")


def _args_replay(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    p.add_argument("body", metavar="BODY_FILE", help="Dodo webhook JSON body, or - for stdin")
    p.add_argument("--url", help=f"webhook endpoint (default: the stack's WebhookUrl, else {DEFAULT_URL})")
    options.add(
        p,
        "webhook_id",
        "secret",
        "ssm_path",
        help={
            "webhook_id": "the original webhook-id (keeps the event id derived from it)",
            "secret": "webhook secret (default: $DODO_WEBHOOK_SECRET, else read from SSM; --local: its SSM)",
        },
    )


def _args_reprocess(p: argparse.ArgumentParser) -> None:
    aws_options(p)
    p.add_argument("--queue-url", help="quarantine queue URL (instead of --stack)")
    p.add_argument("--function", help="ingest function name or ARN (instead of --stack)")
    p.add_argument("--limit", type=int, default=100, help="at most this many messages (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list what would be sent; invoke and delete nothing")


def _args_send(p: argparse.ArgumentParser) -> None:
    p.add_argument("body", metavar="BODY_FILE", help="Dodo webhook JSON body, or - for stdin")
    p.add_argument("--url", default=DEFAULT_URL, help="webhook endpoint (default %(default)s)")
    options.add(p, "secret", "webhook_id", "timestamp")
    p.add_argument(
        "--header",
        action="append",
        metavar="NAME:VALUE",
        help="extra or overriding request header (repeatable)",
    )
    local_options(p, "the local run's webhook URL and its webhook secret (no --secret needed)")


def _args_event(p: argparse.ArgumentParser) -> None:
    p.add_argument("body", metavar="BODY_FILE", help="Dodo webhook JSON body, or - for stdin")
    options.add(p, "secret", "timestamp", "webhook_id")
    p.add_argument(
        "--base64", action="store_true", help="base64-encode the body (isBase64Encoded), as for binary bodies"
    )


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line help, description, what runs it and which options it takes."""

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]


# In the order `dodo-cio --help` lists them.
COMMANDS: Final = (
    Command(
        "send",
        "sign a Dodo webhook body and POST it",
        "Sign BODY_FILE like Dodo does (Standard Webhooks) and POST it. Exit 0 on 2xx, "
        "1 on another HTTP answer, 2 on usage or connection errors.",
        _cmd_send,
        _args_send,
    ),
    Command(
        "event",
        "print an API Gateway HTTP API v2 event for `sam local invoke -e`",
        "Print an API Gateway HTTP API (payload 2.0) event carrying BODY_FILE, freshly "
        "signed. Signatures are valid for 5 minutes around --timestamp, so regenerate stored events "
        "before invoking: dodo-cio event events/dodo/payment.succeeded.json --secret whsec_... "
        "> /tmp/ev.json",
        _cmd_event,
        _args_event,
    ),
    Command(
        "setup",
        "register the bridge with Dodo and store its secrets in SSM, then check and prove it (re-runnable)",
        "Creates (or updates only what differs in) the Dodo webhook endpoint for the stack's WebhookUrl: "
        "the event types the mapping sends, and a rate limit that fits the Customer.io budget. Stores its "
        "signing secret and the Customer.io keys of the stack's API (from CUSTOMERIO_SITE_ID, CUSTOMERIO_API_KEY "
        "or CUSTOMERIO_PIPELINES_API_KEY, else kept from SSM, else asked without echo) as SecureStrings under the "
        "stack's SsmParameterPath, and the Dodo API key too when the identifier strategy needs it. Then runs "
        "`dodo-cio check` and sends one signed payout.created, which the bridge verifies and acknowledges "
        "without touching Customer.io. Never prints a secret. Exit 0 when all is set and proven, 1 when the "
        "check or the test webhook failed, 2 on usage, credential or AWS errors.",
        _cmd_setup,
        _args_setup,
    ),
    Command(
        "dlq",
        "list the dead-letter queue and the quarantined webhooks, with their reasons (never emails)",
        "Peek at dead-lettered deliveries (type, customer id, kind, reason, age) and at "
        "quarantined webhooks (signed by Dodo but unreadable to this version: webhook id, type, "
        "received time, validation error) without consuming them. Listing briefly hides each "
        "message and bumps its receive count, which is harmless on both queues. With --export FILE, "
        "write the messages themselves, whole, to FILE instead, to keep them past SQS's 14 days "
        "(dodo-cio restore FILE sends them back); exit 1 when SQS counted more messages than were written.",
        _cmd_dlq,
        _args_dlq,
    ),
    Command(
        "restore",
        "send the messages of a `dlq --export` file back onto their queues (fresh 14 days)",
        "Read FILE (written by dodo-cio dlq --export) and send each message back to the queue it "
        "came from, as a new message with its body and message attributes unchanged, so redrive and reprocess "
        "apply to it again. Every line is checked first: a line that is not an export line, whose body "
        "changed, or that does not read as a parked delivery / quarantined webhook is reported with its line "
        "number and not sent. A quarantined webhook signed more than 14 days and 5 minutes ago is not sent "
        "either (reprocess would refuse it); replay its body instead. A message already on its queue is "
        "skipped, so a restore can be run again. Exit 0 when every line was restored or skipped, 1 when some "
        "were not restored, 2 on usage or AWS errors.",
        _cmd_restore,
        _args_restore,
    ),
    Command(
        "redrive",
        "move dead-lettered deliveries back to the retry queue (after fixing the cause)",
        "Start an SQS message move task from the DLQ to the retry queue at a chosen rate "
        "(with --local: move them by receive/send/delete, as moto has no move tasks). "
        "Fix the cause first: a delivery past its retry horizon that fails again goes straight back.",
        _cmd_redrive,
        _args_redrive,
    ),
    Command(
        "replay",
        "send a saved Dodo webhook body through the bridge again (signed now)",
        "Sign BODY_FILE now and POST it to the bridge, through the same path as a Dodo "
        "delivery. The bridge maps and delivers it with the Customer.io API it is deployed with "
        "(CustomerioApi: track or pipelines), so replay works the same for both and takes no --api. "
        "Pass the original --webhook-id: the event keeps the id derived from it (Track's event id, which "
        "Customer.io documents as deduplicated; Pipelines' messageId, for which its spec documents no "
        "deduplication). Exit 0 on 2xx, 1 on another HTTP answer, 2 on usage or connection errors.",
        _cmd_replay,
        _args_replay,
    ),
    Command(
        "reprocess",
        "put quarantined webhooks back through the ingest function (after an upgrade)",
        "Receive quarantined webhooks and invoke the ingest function directly with each "
        "(lambda:InvokeFunction, RequestResponse). The function verifies the kept signature against "
        "the current webhook secret(s), without the 5-minute window, and runs the current mapping. "
        "A message is deleted only when the function answers 2xx; a 422 (still unreadable), 401 "
        "(signature no longer verifies) or 409/5xx (try later) leaves it on the queue. Exit 0 when "
        "none stayed, 1 when some did, 2 on usage or AWS errors.",
        _cmd_reprocess,
        _args_reprocess,
    ),
    Command(
        "trace",
        "everything the bridge knows about a customer, payment, subscription, webhook or email, in time order",
        "Why didn't she get the email? Reads the state table (the customer's directory entry, when "
        "each piece of their profile was written, their commercial summary; a payment's customer; a webhook id's "
        "answer), the retry, dead-letter and quarantine queues (peeked, left in place) and, on AWS, both "
        "functions' log lines through CloudWatch Logs Insights, and prints what it finds in time order. An email "
        "is matched against queued ops only: the bridge never logs one. Exit 0 when something was found, 1 "
        "when nothing was, 2 on usage or AWS errors.",
        _cmd_trace,
        _args_trace,
    ),
    Command(
        "reconcile",
        "compare what Dodo holds for a period with what reached the bridge; exit 1 if anything is missing",
        "Lists Dodo's payments, refunds, disputes and subscriptions created in --since..--until "
        "(the SDK's list calls) and checks each against the bridge's receipts in the state table (kept "
        "ReceiptRetentionDays): missing when the webhook its state implies never arrived, stuck when it waits on "
        "the retry queue or was dead-lettered or quarantined. Exit 0 when nothing is missing or stuck, 1 "
        "otherwise, 2 on usage or credential errors.",
        _cmd_reconcile,
        _args_reconcile,
    ),
    Command(
        "check",
        "verify a deployment's configuration: SSM secrets, Customer.io credentials and region, queues",
        "Check that the SSM parameters exist and decrypt, the webhook secret is well-formed, the "
        "Customer.io credentials of the chosen API (--api, else the stack's CustomerioApi) are accepted and "
        "belong to the configured region and, with --stack, that the queues exist and the dead-letter queue is "
        "empty. Track: the site id and API key, by GET /api/v1/accounts/region. Pipelines: only the key in "
        "<path>/customerio-pipelines-api-key, by POST /batch with an empty batch in strict mode, which carries "
        "no call and so creates nothing (a made-up key must then be refused, or the check says it cannot tell). "
        "Prints ok/FAIL per check with a hint. Exit 0 when all pass, 1 on any FAIL, 2 on usage errors or when "
        "your AWS credentials cannot read what is checked.",
        _cmd_check,
        _args_check,
    ),
    Command(
        "backfill",
        "send existing Dodo customers and live subscriptions to Customer.io (identify; resumable)",
        "Read customers and subscriptions from the Dodo Payments API, map them with the bridge's "
        "mapping (identify only unless --events) and send them with the bridge's client for its Customer.io API "
        "(--api, else the stack's CustomerioApi): /api/v2/batch requests to Track, or strict-mode calls to "
        "Pipelines, within that API's limits. Progress is saved after each page in --state; run the same "
        "command again to resume. Try "
        "--dry-run first. Exit 0 when everything was delivered, 1 when some objects were rejected or the run "
        "stopped early (rerun to resume), 2 on usage or credential errors.",
        _cmd_backfill,
        _args_backfill,
    ),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dodo-cio", description="Developer tools for the Dodo Payments -> Customer.io bridge."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(p)
        p.set_defaults(func=command.run)
    return parser


def local_options(p: argparse.ArgumentParser, what: str) -> None:
    """--local and --local-url, worded for what the command uses of the local run."""
    options.add(p, "local", "local_url", help={"local": f"use {what}"})


def aws_options(p: argparse.ArgumentParser) -> None:
    options.aws_target(p)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    from dodo_cio_cli.aws_calls import OperatorError  # noqa: PLC0415 - stdlib + boto3 types only

    try:
        code: int = args.func(args)
    except (UsageError, OperatorError) as exc:
        print(f"dodo-cio {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
