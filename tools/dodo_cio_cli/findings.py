"""What every check shares: the finding it reports, the exit code they add up to, SSM parameters read
the same way for each, and one probe request against an outside API.

`check.py` runs the checks; `check_pipelines.py` (the Pipelines key) and `check_dodo_api.py` (the
optional Dodo API key) are checks of their own. All three build on this module and none on another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from dodo_cio.configuration.settings import SECRET_NAMES
from dodo_cio_cli.aws_calls import error_parts

if TYPE_CHECKING:
    import requests
    from mypy_boto3_ssm import SSMClient


PROBE_TIMEOUT: Final = 10.0


_ACCESS_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "InvalidKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "RequestThrottled",
        "ThrottlingException",
    }
)


Status = Literal["ok", "FAIL", "WARN", "skip"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict of one check, worded for the person at the terminal."""

    name: str
    status: Status
    reason: str
    hint: str = ""
    access_error: bool = False  # could not look (our credentials), rather than found a problem


def exit_code(findings: Sequence[Finding]) -> int:
    """2 when something could not be checked for lack of AWS access, else 1 on any FAIL, else 0."""
    if any(f.access_error for f in findings):
        return 2
    return 1 if any(f.status == "FAIL" for f in findings) else 0


def check_parameters(
    ssm: SSMClient, path: str, names: Sequence[str] = SECRET_NAMES
) -> tuple[list[Finding], dict[str, str]]:
    """One finding per SSM parameter in `names` (under `path`), and the decrypted usable values.

    Only the parameters the deployment reads are checked: a Pipelines deployment needs no Track
    site id or key, and a Track one no Pipelines key, so their absence is no finding.
    Read one at a time so that one missing or undecryptable parameter does not hide the others.
    Raises `OperatorError` (exit 2) when AWS cannot be reached at all (no credentials, no region).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - keep import cheap

    from dodo_cio_cli.aws_calls import OperatorError  # noqa: PLC0415

    base = path.rstrip("/")
    findings: list[Finding] = []
    values: dict[str, str] = {}
    for secret in names:
        name = f"{base}/{secret}"
        label = f"SSM {name}"
        put = f"aws ssm put-parameter --type SecureString --name {name} --value '…'"
        try:
            parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        except ClientError as exc:
            code, message = error_parts(exc)
            if code == "ParameterNotFound":
                findings.append(Finding(label, "FAIL", "not found", f"create it: {put}"))
            elif code in _ACCESS_CODES or code.startswith("KMS"):
                findings.append(
                    Finding(
                        label,
                        "FAIL",
                        f"cannot read or decrypt it with your AWS credentials ({code}: {message})".rstrip(": "),
                        "your credentials need ssm:GetParameter on it and kms:Decrypt on its key "
                        "(the functions' roles have their own)",
                        access_error=True,
                    )
                )
            else:
                findings.append(
                    Finding(label, "FAIL", f"{code or 'error'}: {message}", "check the path and region", True)
                )
            continue
        except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable
            raise OperatorError(f"reading SSM parameter {name} failed: {exc}") from None
        value = str(parameter.get("Value", ""))
        kind = str(parameter.get("Type", ""))
        if kind != "SecureString":
            findings.append(
                Finding(
                    label,
                    "FAIL",
                    f"is a {kind or 'non-SecureString'} parameter: readable by anyone with ssm:GetParameter, "
                    "unencrypted",
                    f"delete it and put it again as a SecureString: aws ssm delete-parameter --name {name} && {put}",
                )
            )
        elif not value.strip():
            findings.append(Finding(label, "FAIL", "is empty", f"put the value: {put} --overwrite"))
        else:
            findings.append(Finding(label, "ok", "SecureString, decrypts"))
        if value.strip():
            values[secret] = value.strip()
    return findings, values


def request_once(
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    session: requests.Session | None,
    timeout: float,
    data: bytes | None = None,
) -> tuple[Any, str]:
    """One probe request: (response, "") or (None, why no answer came).

    Redirects are not followed; the probes report them (see `probe_region` for why).
    """
    import requests  # noqa: PLC0415 - only the probes need HTTP

    client: Any = session if session is not None else requests
    extra = {"data": data} if data is not None else {}
    try:
        return getattr(client, method)(url, headers=headers, timeout=timeout, allow_redirects=False, **extra), ""
    except requests.Timeout:
        return None, f"no answer from {url} within {timeout:g} s"
    except requests.RequestException as exc:
        return None, f"cannot reach {url}: {type(exc).__name__}"


def short_body(response: Any) -> str:
    """The start of an answer's body, on one line: enough to recognise an error, short enough to print."""
    text = str(getattr(response, "text", "") or "").strip().replace("\n", " ")
    return text[:200]


def wrong_region(actual: str, name: str = "Customer.io credentials", what: str = "workspace") -> Finding:
    """The finding for credentials that belong to the other region: which setting to change."""
    return Finding(
        name,
        "FAIL",
        f"your {what} is in {actual}; set CustomerioRegion={actual}",
        f"sam deploy --parameter-overrides CustomerioRegion={actual} (or run sam deploy --guided again); "
        f"locally, CUSTOMERIO_REGION={actual}",
    )
