"""`dodo-cio check`: is this deployment configured so that webhooks can reach Customer.io?

Each check gives one `Finding`: `ok`, `FAIL` (the deployment has a problem; exit 1), `WARN` (it
works, with a gap worth closing; exit 0) or `skip` (could not be checked because an earlier check
failed), with a one-line reason and a hint saying what to do. A finding that failed because *your*
AWS credentials may not read something (access denied, KMS) is marked `access_error`: the exit
code is then 2, since the deployment itself may be fine. Nothing printed or returned holds a
secret: the webhook secret is reported as a count, the Customer.io credentials not at all.

Checks, in order:
  1. the SSM parameters the deployment reads exist, are SecureString, decrypt and are not empty:
     the webhook secret, and the chosen API's credentials (`CustomerioApi`, see
     `dodo_cio_cli.api_choice`): Track's site id and API key, or the Pipelines API key alone;
  2. the webhook secret is well-formed (`whsec_` + base64; several allowed during a rotation);
  3. Track: the site id and API key are accepted by `GET /api/v1/accounts/region`, and the
     workspace's region is the configured one (a US workspace cannot use the EU host and an EU
     one must not rely on the US host's redirect, which drops the credentials).
     Pipelines: the key is accepted, proved by a request that creates nothing
     (`dodo_cio_cli.check_pipelines` says which and why);
  4. the optional Dodo API key: WARN when the identifier strategy needs it and none is stored
     (`dodo_cio_cli.check_dodo_api` says when and why);
  5. with `--stack`: the retry queue and the dead-letter queue exist, and the DLQ is empty.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final

from dodo_cio.configuration.settings import CREDENTIAL_NAMES, PIPELINES_API_KEY_NAME, SECRET_NAMES
from dodo_cio.delivery.destination import PIPELINES, TRACK
from dodo_cio.delivery.track import TRACK_HOSTS, auth_header, track_base_url
from dodo_cio.receiving.signature import SECRET_PREFIX, parse_secrets
from dodo_cio_cli import options
from dodo_cio_cli.api_choice import add_api_options
from dodo_cio_cli.aws_calls import error_parts
from dodo_cio_cli.check_dodo_api import check_dodo_api_key
from dodo_cio_cli.check_pipelines import check_pipelines
from dodo_cio_cli.findings import (
    PROBE_TIMEOUT,
    Finding,
    check_parameters,
    exit_code,
    request_once,
    short_body,
    wrong_region,
)

if TYPE_CHECKING:
    import requests
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "REGION_PATH",
    "Finding",
    "RegionAnswer",
    "add_arguments",
    "check_customerio",
    "check_parameters",
    "check_queues",
    "check_webhook_secret",
    "exit_code",
    "findings_json",
    "format_report",
    "probe_region",
    "request_once",
    "run_checks",
    "short_body",
    "wrong_region",
]

REGION_PATH: Final = "/api/v1/accounts/region"
WEBHOOK_SECRET, SITE_ID, API_KEY = SECRET_NAMES


# -- SSM --------------------------------------------------------------------------------------------


def check_webhook_secret(value: str | None) -> Finding:
    """Well-formed webhook secret(s): reported as a count, never shown."""
    name = "webhook secret"
    if value is None:
        return Finding(name, "skip", "not readable from SSM (see above)")
    try:
        keys = parse_secrets(value)
    except ValueError as exc:  # names the position only, never the value
        return Finding(
            name,
            "FAIL",
            str(exc),
            "copy it again from Dodo's dashboard (Developer → Webhooks → your endpoint → Signing secret); "
            "it looks like whsec_ followed by base64; several may be listed separated by spaces",
        )
    parts = [p for p in value.replace(",", " ").split() if p]
    unprefixed = sum(1 for p in parts if not p.startswith(SECRET_PREFIX))
    count = f"{len(keys)} secret{'s' if len(keys) != 1 else ''}"
    reason = f"{count}, well-formed"
    if unprefixed:
        reason += f" ({unprefixed} without the {SECRET_PREFIX} prefix, accepted)"
    hint = (
        "several secrets are for a rotation window: remove the old one once Dodo signs with the new one"
        if len(keys) > 1
        else ""
    )
    return Finding(name, "ok", reason, hint)


# -- Customer.io ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegionAnswer:
    """What `GET /api/v1/accounts/region` said: status None when no answer arrived."""

    status: int | None
    region: str | None = None
    url: str | None = None
    location: str | None = None  # a redirect's target
    error: str = ""


def probe_region(
    base_url: str,
    site_id: str,
    api_key: str,
    *,
    session: requests.Session | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> RegionAnswer:
    """Ask Customer.io which region these Track credentials belong to (no redirects followed).

    A redirect is reported rather than followed: requests drops the Authorization header when a
    redirect changes host, which would turn a region mismatch into a misleading 401.
    """
    url = f"{base_url.rstrip('/')}{REGION_PATH}"
    headers = {"Authorization": auth_header(site_id, api_key), "User-Agent": "dodo-cio-tools (check)"}
    response, failure = request_once("get", url, headers, session=session, timeout=timeout)
    if response is None:
        return RegionAnswer(None, error=failure)
    status = int(response.status_code)
    if 300 <= status < 400:
        return RegionAnswer(status, location=str(response.headers.get("Location", "")))
    if status != 200:
        return RegionAnswer(status, error=short_body(response))
    try:
        doc = response.json()
    except ValueError:
        return RegionAnswer(status, error="the answer is not JSON")
    if not isinstance(doc, dict):
        return RegionAnswer(status, error="the answer is not a JSON object")
    region = doc.get("region")
    return RegionAnswer(
        status,
        region=str(region).lower() if isinstance(region, str) else None,
        url=str(doc["url"]) if isinstance(doc.get("url"), str) else None,
    )


def _region_of_host(location: str) -> str | None:
    for region, host in TRACK_HOSTS.items():
        if location.startswith(host):
            return region
    return None


def check_customerio(
    region: str,
    track_url: str | None,
    site_id: str | None,
    api_key: str | None,
    *,
    session: requests.Session | None = None,
    timeout: float = PROBE_TIMEOUT,
    probe: Callable[..., RegionAnswer] = probe_region,
) -> Finding:
    """The credentials work, against the configured host, for a workspace in the configured region."""
    name = "Customer.io credentials"
    try:
        base_url = track_base_url(region, track_url)
    except ValueError as exc:
        return Finding(name, "FAIL", str(exc), "set CustomerioRegion to us or eu")
    if not site_id or not api_key:
        return Finding(name, "skip", "site id or API key not readable from SSM (see above)")
    answer = probe(base_url, site_id, api_key, session=session, timeout=timeout)
    hint_creds = (
        "in Customer.io: Settings → Workspace settings → API and webhook credentials → Track API keys; "
        "put the Site ID into customerio-site-id and the API key into customerio-api-key"
    )
    if answer.status == 200:
        if answer.region is None:
            return Finding(name, "FAIL", f"{base_url}{REGION_PATH} answered without a region", "")
        if answer.region != region:
            return wrong_region(answer.region)
        return Finding(name, "ok", f"accepted by {base_url}; workspace region {answer.region}")
    if answer.status is not None and 300 <= answer.status < 400:
        moved_to = _region_of_host(answer.location or "")
        if moved_to and moved_to != region:
            return wrong_region(moved_to)
        return Finding(name, "FAIL", f"{base_url} redirects to {answer.location or '?'}", "check CustomerioTrackUrl")
    if answer.status in (401, 403):
        other = "eu" if region == "us" else "us"
        if not (track_url and track_url.strip()):
            # A workspace in the other region is rejected by this host; ask the other one.
            elsewhere = probe(TRACK_HOSTS[other], site_id, api_key, session=session, timeout=timeout)
            if elsewhere.status == 200 and elsewhere.region:
                return wrong_region(elsewhere.region)
        return Finding(
            name,
            "FAIL",
            f"Customer.io rejected the site id / API key (HTTP {answer.status})",
            hint_creds,
        )
    if answer.status is None:
        return Finding(name, "FAIL", answer.error, "check your network, or CustomerioTrackUrl if you set one")
    detail = f": {answer.error}" if answer.error else ""
    return Finding(
        name,
        "FAIL",
        f"{base_url}{REGION_PATH} answered HTTP {answer.status}{detail}",
        "try again in a minute; https://status.customer.io shows outages"
        if answer.status >= 500
        else "check CustomerioTrackUrl",
    )


# -- queues -----------------------------------------------------------------------------------------


def check_queues(sqs: SQSClient, outputs: Mapping[str, str], *, stack: str = "") -> list[Finding]:
    """The stack's retry queue and DLQ exist; the DLQ is empty (anything on it was not delivered)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    findings: list[Finding] = []
    stack_flag = f" --stack {stack}" if stack else ""
    for key, label in (("RetryQueueUrl", "retry queue"), ("DeadLetterQueueUrl", "dead-letter queue")):
        url = outputs.get(key)
        if not url:
            findings.append(Finding(label, "FAIL", f"the stack has no output {key}", "is the stack fully deployed?"))
            continue
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            ).get("Attributes", {})
        except ClientError as exc:
            code, message = error_parts(exc)
            code = code.removeprefix("AWS.SimpleQueueService.")
            if code in {"QueueDoesNotExist", "NonExistentQueue"}:
                findings.append(Finding(label, "FAIL", f"{url} does not exist", "redeploy the stack (sam deploy)"))
            else:
                findings.append(
                    Finding(label, "FAIL", f"cannot read it: {code}: {message}", "needs sqs:GetQueueAttributes", True)
                )
            continue
        except BotoCoreError as exc:
            findings.append(Finding(label, "FAIL", f"cannot read it: {exc}", "check your AWS configuration", True))
            continue
        waiting = sum(
            int(attributes.get(a, "0") or 0)
            for a in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
        if key == "DeadLetterQueueUrl" and waiting:
            findings.append(
                Finding(
                    label,
                    "FAIL",
                    f"{waiting} undelivered deliver{'ies' if waiting != 1 else 'y'} waiting",
                    f"see why: dodo-cio dlq{stack_flag}; after fixing the cause: dodo-cio redrive{stack_flag}",
                )
            )
        elif key == "DeadLetterQueueUrl":
            findings.append(Finding(label, "ok", "exists, empty"))
        else:
            findings.append(Finding(label, "ok", f"exists, {waiting} waiting for a retry"))
    return findings


# -- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add(
        parser,
        *options.STACK_SETTINGS,
        "region_cio",
        "track_url",
        help={
            "stack": "CloudFormation stack name: read the settings from its parameters and outputs",
            "region_cio": "Customer.io region (default: the stack's CustomerioRegion, else us)",
        },
    )
    add_api_options(parser)
    options.add(
        parser,
        "identifier",
        help={
            "identifier": "customer_id | email | metadata:<key>, to tell whether the Dodo API key is needed "
            "(default: the stack's CustomerioIdentifier, else $CUSTOMERIO_IDENTIFIER, else customer_id)"
        },
    )
    parser.add_argument(
        "--contact-fields",
        choices=("auto", "dodo", "app"),
        help="who owns the person's email (default: the stack's CustomerioContactFields, else "
        "$CUSTOMERIO_CONTACT_FIELDS, else auto)",
    )
    options.add(parser, "json")


# -- the whole run ----------------------------------------------------------------------------------


def run_checks(
    *,
    ssm: SSMClient,
    ssm_path: str,
    region: str,
    track_url: str | None,
    sqs: SQSClient | None = None,
    outputs: Mapping[str, str] | None = None,
    stack: str = "",
    session: requests.Session | None = None,
    timeout: float = PROBE_TIMEOUT,
    api: str = TRACK,
    pipelines_url: str | None = None,
    identifier: str = "customer_id",
    contact_fields: str = "auto",
) -> list[Finding]:
    """Every check, in order; later checks are skipped when what they need could not be read.

    `api` is the deployment's `CustomerioApi`: only its credentials are read and verified.
    `identifier` and `contact_fields` (`CustomerioIdentifier`, `CustomerioContactFields`) say
    whether the optional Dodo API key is needed.
    """

    findings, values = check_parameters(ssm, ssm_path, (WEBHOOK_SECRET, *CREDENTIAL_NAMES[api]))
    findings.append(check_webhook_secret(values.get(WEBHOOK_SECRET)))
    if api == PIPELINES:
        key = values.get(PIPELINES_API_KEY_NAME)
        findings.append(check_pipelines(region, pipelines_url, key, session=session, timeout=timeout))
    else:
        site_id, api_key = values.get(SITE_ID), values.get(API_KEY)
        findings.append(check_customerio(region, track_url, site_id, api_key, session=session, timeout=timeout))
    findings.append(check_dodo_api_key(ssm, ssm_path, identifier, contact_fields))
    if sqs is not None and outputs is not None:
        findings.extend(check_queues(sqs, outputs, stack=stack))
    return findings


def format_report(findings: Sequence[Finding], *, header: str = "") -> str:
    """`ok`/`FAIL`/`skip` lines with the reason, hints indented below, and a summary line."""
    width = max((len(f.name) for f in findings), default=0)
    lines = [header] if header else []
    for f in findings:
        lines.append(f"  {f.status:<4}  {f.name:<{width}}  {f.reason}".rstrip())
        if f.hint and f.status != "ok":
            lines.append(f"        {'':<{width}}  hint: {f.hint}")
        elif f.hint:
            lines.append(f"        {'':<{width}}  note: {f.hint}")
    failed = sum(1 for f in findings if f.status == "FAIL")
    skipped = sum(1 for f in findings if f.status == "skip")
    warned = sum(1 for f in findings if f.status == "WARN")
    if failed:
        summary = f"{failed} problem{'s' if failed != 1 else ''} found"
    else:
        summary = "all checks passed" if not skipped else "no problem found"
    if warned:
        summary += f", {warned} warning{'s' if warned != 1 else ''}"
    if skipped:
        summary += f", {skipped} check{'s' if skipped != 1 else ''} skipped"
    if any(f.access_error for f in findings):
        summary += " (some could not be checked with your AWS credentials)"
    lines.append(summary)
    return "\n".join(lines)


def findings_json(findings: Sequence[Finding]) -> str:
    return json.dumps({"ok": exit_code(findings) == 0, "checks": [asdict(f) for f in findings]}, indent=2)
