"""`sgledger child show|list`: the one view per child that no single agency had."""

from __future__ import annotations

import click
from rich.table import Table

from producers.service import child_target
from sgledger.cli.access import record_access
from sgledger.cli.context import AppContext, UserError, console, pass_app, print_json
from sgledger.render import render_child
from sgledger.settings import shown
from views.queries import child_view, list_children


@click.group()
def child() -> None:
    """Per-child views across all agencies."""


@child.command("show")
@click.argument("child_id")
@click.option("--json", "as_json", is_flag=True, help="Print the view as one JSON object.")
@click.option("--reason", help="Why you are looking (recorded with your name in the ledger).")
@pass_app
def show(app: AppContext, child_id: str, as_json: bool, reason: str | None) -> None:
    """Show CHILD_ID: people and roles, GP practices and school, agencies involved, the
    chronology across agencies (by event time, with recorded time and source) and open flags.

    Every look is recorded as a signed access event in the ledger (`sgledger audit access`)."""
    with app.ledger.read() as session:
        view = child_view(session, child_id)
    if view is None:
        raise UserError(f"no events about child {child_id!r} in {shown(app.settings.database_url)}")
    record_access(app, "child show", child_target(child_id), reason)
    if as_json:
        print_json(view)
    else:
        render_child(console, view)


@child.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--reason", help="Why you are looking (recorded with your name in the ledger).")
@pass_app
def list_(app: AppContext, as_json: bool, reason: str | None) -> None:
    """List children with events, their event counts and open flags.

    Which children the partnership holds records about is itself sensitive: the look is recorded
    (against the partnership, `audit access PARTNERSHIP_ID`)."""
    record_access(app, "child list", "children:all", reason)
    with app.ledger.read() as session:
        rows = list_children(session)
    if as_json:
        print_json(rows)
        return
    table = Table("child", "dob", "events", "last recorded", "open flags")
    for row in rows:
        table.add_row(
            row["child"], row["dob"] or "", str(row["events"]), row["last_recorded"], str(row["open_flags"])
        )
    console.print(table if rows else "No children yet.")
