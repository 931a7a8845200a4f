"""`sgledger users add|list|disable`: local accounts of the web workspace.

For the single-machine default, where the partnership has no identity provider. The password is
read from standard input (prompted twice, hidden, on a terminal; one line from a pipe), never
from the command line, where other users of the server could see it in the process list.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

import click

from sgledger.cli.context import AppContext, UserError, pass_app, print_json
from web.roles import ROLES, WebRole

if TYPE_CHECKING:
    from web.accounts import Accounts


@click.group()
def users() -> None:
    """Local accounts for `sgledger serve` (leads, designated leads, auditors)."""


def _accounts(app: AppContext) -> Accounts:
    """The ledger's schema first: on a fresh database, tables created by the accounts alone
    would make the ledger take it for an unversioned old release and skip creating its own."""
    from web.accounts import Accounts  # here, not at import: every `sgledger` command imports this

    app.ledger  # noqa: B018  (opening the ledger creates or checks its schema)
    return Accounts(app.settings.database_url)


@users.command("add")
@click.argument("email")
@click.option("--agency", help="The lead's agency id (e.g. gp/L85001): whose children they see.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="lead | designated-lead | auditor.")
@pass_app
def add(app: AppContext, email: str, agency: str | None, role: str) -> None:
    """Create an account for EMAIL. The password is read from stdin (at least 12 characters)."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    from web.accounts import AccountError

    accounts = _accounts(app)
    try:
        row = accounts.add_user(email, agency, cast(WebRole, role), password)
    except AccountError as exc:
        raise UserError(str(exc)) from exc
    finally:
        accounts.close()
    click.echo(f"created {row.email} ({row.role}{', ' + row.agency if row.agency else ''})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Every local account, its role, agency and whether it is disabled or locked."""
    accounts = _accounts(app)
    try:
        rows = [
            {
                "email": u.email,
                "role": u.role,
                "agency": u.agency,
                "disabled": u.disabled,
                "locked_until": u.locked_until.isoformat() if u.locked_until else None,
            }
            for u in accounts.users()
        ]
    finally:
        accounts.close()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        state = (
            "disabled"
            if r["disabled"]
            else (f"locked until {r['locked_until']}" if r["locked_until"] else "active")
        )
        click.echo(f"{r['email']:<40} {r['role']:<16} {r['agency'] or '-':<28} {state}")
    if not rows:
        click.echo("no accounts; create one with `sgledger users add EMAIL --role ...`")


@users.command("disable")
@click.argument("email")
@pass_app
def disable(app: AppContext, email: str) -> None:
    """Disable EMAIL's account and end its sessions at once."""
    from web.accounts import AccountError

    accounts = _accounts(app)
    try:
        accounts.disable(email)
    except AccountError as exc:
        raise UserError(str(exc)) from exc
    finally:
        accounts.close()
    click.echo(f"disabled {email}")
