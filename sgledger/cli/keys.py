"""`sgledger keys init` and `sgledger agency add|revoke|list`: who may sign what.

Agency keys are registered by root-signed `agency.key.registered` events in the ledger, so an
auditor can check every signature from the partnership root public key alone. The partnership's
own services sign with a service key (`partnership/service`) registered the same way, so the
root private key is needed only here, to register and revoke, and can otherwise stay offline.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from datetime import time as dt_time

import click

from ledger.keystore import KeystoreError, KeyValidity
from ledger.signing import key_id, public_key_text
from ledger.timeutil import format_time, parse_time
from ledger.vocabulary import AGENCY_KINDS, SERVICE_AGENCY, did_you_mean
from sgledger.cli.context import AppContext, UserError, console, pass_app
from sgledger.cli.publishing import publish_root_event


@click.group()
def keys() -> None:
    """The partnership root key."""


@keys.command("init")
@click.option(
    "--partnership",
    default="partnership/local",
    show_default=True,
    help="The partnership's agency id; key registrations are signed by its root key.",
)
@click.option(
    "--no-service-key",
    is_flag=True,
    help=f"Do not create and register the service key ({SERVICE_AGENCY}) here; register it later "
    f"with `sgledger agency add {SERVICE_AGENCY}`.",
)
@pass_app
def init(app: AppContext, partnership: str, no_service_key: bool) -> None:
    """Create the partnership root key (private key 0600 in the key store) and register the
    service key that signs reads, flag decisions and tree heads.

    Move `root.key` offline afterwards: it is needed only to register or revoke keys."""
    if not partnership.startswith("partnership/") or partnership == SERVICE_AGENCY:
        raise UserError(f"--partnership must look like partnership/<name> (and not {SERVICE_AGENCY})")
    try:
        info = app.keystore.init_root(partnership)
    except KeystoreError as exc:
        raise UserError(str(exc)) from exc
    console.print(f"root key {info.kid} for {partnership} created in {app.settings.keys_dir}")
    console.print(f"auditors verify from: {app.settings.keys_dir / 'root.pub.json'}")
    if not no_service_key:
        _register(app, SERVICE_AGENCY)


@click.group()
def agency() -> None:
    """Agency signing keys (and the partnership's service keys)."""


@agency.command("add")
@click.argument("agency_id")
@click.option(
    "--valid-from",
    help="Make the key valid from this earlier date or time (RFC 3339, or YYYY-MM-DD = midnight UTC), "
    "for loading historical records; the root key attests it. Default: from now.",
)
@pass_app
def add(app: AppContext, agency_id: str, valid_from: str | None) -> None:
    """Create AGENCY_ID's signing key and register it with a root-signed ledger event.

    AGENCY_ID is kind/local-id (e.g. police/avon-somerset, gp/L85001), or partnership/<name> for
    one of the partnership's own services (partnership/service signs reads and flag decisions)."""
    # The key store refuses a malformed id (ledger.identifiers) before it writes anything, so a
    # refused name leaves no key file behind.
    if agency_id == app.root_key().partnership:
        raise UserError(f"{agency_id} is the partnership itself: its root key exists already")
    _register(app, agency_id, _valid_from(valid_from))


def _register(app: AppContext, agency_id: str, since: datetime | None = None) -> None:
    """Create and register the key; what the root attested (valid from) is kept beside the key
    so the producer refuses, before signing, events the partnership would quarantine."""
    try:
        key = app.keystore.create_agency_key(agency_id)
    except KeystoreError as exc:
        kind = agency_id.split("/", 1)[0]
        hint = "" if kind in AGENCY_KINDS else did_you_mean(kind, AGENCY_KINDS)
        raise UserError(f"{exc}{hint}") from exc
    public = key.public_key()
    data = {"agency": agency_id, "kid": key_id(public), "public_key": public_key_text(public)}
    if since is not None:
        data["valid_from"] = format_time(since)
    event, result = publish_root_event(app, "agency.key.registered", agency_id, data)
    app.keystore.record_validity(
        agency_id, KeyValidity(parse_time(data.get("valid_from") or event["recordedtime"]))
    )
    console.print(f"{agency_id}: key {key_id(public)} registered ({result})")


def _valid_from(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        since = (
            datetime.combine(date.fromisoformat(value), dt_time(0), UTC)
            if len(value) == 10
            else parse_time(value)
        )
    except ValueError as exc:
        raise UserError(f"--valid-from: not a date (YYYY-MM-DD) or an RFC 3339 time: {value!r}") from exc
    if since > datetime.now(UTC):
        raise UserError(
            "--valid-from must not be in the future: a key is valid from its registration at the latest"
        )
    return since


@agency.command("revoke")
@click.argument("agency_id")
@click.option("--reason", required=True, help="Why (e.g. key compromised).")
@pass_app
def revoke(app: AppContext, agency_id: str, reason: str) -> None:
    """Revoke AGENCY_ID's current key from now on; its later events will be quarantined."""
    try:
        key = app.keystore.agency_private_key(agency_id)
    except KeystoreError as exc:
        raise UserError(str(exc)) from exc
    kid = key_id(key.public_key())
    event, result = publish_root_event(
        app, "agency.key.revoked", agency_id, {"agency": agency_id, "kid": kid, "reason": reason}
    )
    validity = app.keystore.key_validity(agency_id)
    if validity is not None:
        revoked = replace(validity, revoked_from=parse_time(event["recordedtime"]))
        app.keystore.record_validity(agency_id, revoked)
    console.print(f"{agency_id}: key {kid} revoked ({result})")


@agency.command("list")
@pass_app
def list_(app: AppContext) -> None:
    """Agencies with a signing key in this key store."""
    for agency_id in app.keystore.agencies():
        console.print(agency_id)
