"""`dodo-cio check`: does this deployment's identifier strategy need the optional Dodo API key?

The key (`<path>/dodo-api-key`) lets the bridge look up a customer it has not seen in a webhook yet
(`dodo_cio.state.identity`). Whether a deployment needs it depends on the strategy:

* `email` and `metadata:<key>`: a webhook that names only the customer id (dunning, credits,
  license keys, abandoned checkouts, entitlements; a dispute names only its payment) cannot be
  addressed for a customer no earlier webhook named. Without the key it waits on the retry queue
  until one does, and a first-time customer's abandoned checkout then arrives after their first
  payment, renamed `abandoned_checkout.followed_by_payment`: no recovery email can go out.
* `customer_id`: every webhook is addressed by the id, but an abandoned checkout of a customer the
  bridge has not seen reaches a person without an email, unless the merchant's app owns the email
  (`CustomerioContactFields`), in which case the key is not needed.

A missing key is a warning, not a failure: the bridge works without it, with these gaps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from dodo_cio.configuration.settings import DODO_API_KEY_NAME
from dodo_cio.mapping.mapper import IdentifierStrategy, MappingConfig, wants_contact_email
from dodo_cio_cli.findings import Finding, check_parameters

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

_CHECKOUT_LATE: Final = (
    "a first-time customer's abandoned checkout then arrives after their first payment, as "
    "abandoned_checkout.followed_by_payment, so no recovery email can go out"
)


def needs_dodo_api_key(config: MappingConfig) -> str | None:
    """What goes missing without the key under this mapping, or None when nothing does."""
    strategy = config.identifier
    if strategy.kind in ("email", "metadata"):
        wanted = "email" if strategy.kind == "email" else f"metadata key {strategy.metadata_key!r}"
        return (
            f"under {strategy.text}, a webhook that names only a customer id (dunning, credits, license keys, "
            f"abandoned checkouts, entitlements, disputes) for a customer no earlier webhook named waits on the "
            f"retry queue (up to 7 days, then the DLQ) until a webhook brings their {wanted}; {_CHECKOUT_LATE}"
        )
    if wants_contact_email(config):
        return (
            "under customer_id, an abandoned checkout of a customer no earlier webhook named reaches a person "
            "without an email, so no recovery email can go out"
        )
    return None


def check_dodo_api_key(ssm: SSMClient, path: str, identifier: str, contact_fields: str = "auto") -> Finding:
    """One finding for `<path>/dodo-api-key`: stored, or WARN when the strategy needs it and it is not."""
    config = MappingConfig(identifier=IdentifierStrategy.parse(identifier), contact_fields=contact_fields)
    (finding,), values = check_parameters(ssm, path, (DODO_API_KEY_NAME,))
    name = f"{path.rstrip('/')}/{DODO_API_KEY_NAME}"
    if values.get(DODO_API_KEY_NAME) and finding.status == "ok":
        return Finding(
            finding.name,
            "ok",
            "SecureString, decrypts: customers not seen yet are looked up in Dodo's API",
            "the key's mode (live or test) must be the stack's DodoApiMode",
        )
    if finding.reason != "not found":
        return finding  # plaintext, empty, unreadable: as for every other parameter
    missing = needs_dodo_api_key(config)
    if missing is None:
        return Finding(
            finding.name,
            "ok",
            f"not stored; not needed under {config.identifier.text} with the email left to your app",
        )
    return Finding(
        finding.name,
        "WARN",
        f"not stored: {missing}",
        f"create an API key in Dodo's dashboard and store it: aws ssm put-parameter --type SecureString "
        f"--name {name} --value '…' (DodoApiMode must match its live or test mode); the bridge reads it "
        "within 5 minutes, no redeploy",
    )
