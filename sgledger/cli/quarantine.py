"""`sgledger quarantine list|show|readmit`: everything refused, why, and a way back in."""

from __future__ import annotations

import json

import click
from rich.table import Table
from sqlalchemy import select

from consumers.projector.applier import Applier
from ledger.store.models import QuarantineEntry
from producers.service import child_target
from sgledger.cli.access import record_access
from sgledger.cli.context import AppContext, UserError, console, pass_app, print_json

REASON = click.option("--reason", help="Why you are looking (recorded with your name in the ledger).")


def _summary(e: QuarantineEntry) -> dict[str, object]:
    return {
        "id": e.id,
        "status": e.status,
        "reason": e.reason,
        "detail": e.detail,
        "received_at": e.received_at.isoformat(),
        "event_id": e.event_id,
        "source": e.source,
        "sequence": e.sequence,
        "type": e.type,
        "subject": e.subject,
        "origin": e.origin,
        "bytes": len(e.raw),
        "resolution": e.resolution,
    }


@click.group()
def quarantine() -> None:
    """Messages that were not applied (malformed, unsigned, wrongly signed, replayed...)."""


@quarantine.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include readmitted entries.")
@click.option("--json", "as_json", is_flag=True)
@REASON
@pass_app
def list_(app: AppContext, include_resolved: bool, as_json: bool, reason: str | None) -> None:
    """Quarantined and held messages with the reason a person can act on.

    Refused messages are about children too: the look is recorded (against the partnership)."""
    record_access(app, "quarantine list", "quarantine:all", reason)
    with app.ledger.read() as session:
        query = select(QuarantineEntry).order_by(QuarantineEntry.id)
        if not include_resolved:
            query = query.where(QuarantineEntry.status.in_(("held", "quarantined")))
        rows = [_summary(e) for e in session.scalars(query)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("[green]Quarantine is empty.[/green]")
        return
    table = Table("id", "status", "reason", "source", "seq", "type", "detail", title="Quarantine")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["status"]),
            str(r["reason"]),
            str(r["source"] or ""),
            str(r["sequence"] or ""),
            str(r["type"] or ""),
            str(r["detail"]),
        )
    console.print(table)


@quarantine.command("show")
@click.argument("entry_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@REASON
@pass_app
def show(app: AppContext, entry_id: int, as_json: bool, reason: str | None) -> None:
    """One entry, with the message as received (pretty-printed if it is JSON).

    The message may hold a child's data: the look is recorded against the child it names (or,
    if it names none, against the partnership)."""
    with app.ledger.read() as session:
        entry = session.get(QuarantineEntry, entry_id)
        if entry is None:
            raise UserError(f"no quarantine entry {entry_id}")
        summary, raw = _summary(entry), entry.raw
    subject = summary["subject"]
    target = child_target(subject) if isinstance(subject, str) and subject else f"quarantine:{entry_id}"
    record_access(app, "quarantine show", target, reason)
    try:
        body: object = json.loads(raw)
    except ValueError:
        body = raw[:2000].decode("utf-8", errors="replace")
    if as_json:
        print_json({**summary, "message": body})
        return
    for key, value in summary.items():
        console.print(f"[bold]{key}[/bold]: {value}")
    console.print("[bold]message[/bold]:")
    click.echo(json.dumps(body, indent=2) if not isinstance(body, str) else body)


@quarantine.command("readmit")
@click.argument("entry_id", type=int)
@pass_app
def readmit(app: AppContext, entry_id: int) -> None:
    """Re-verify ENTRY_ID now (e.g. after its key was registered); accepted if it passes."""
    applier = Applier(app.ledger, app.root_key())
    try:
        entry = applier.readmit(entry_id)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc).strip("'\"")) from exc
    if entry.status == "readmitted":
        click.echo(f"entry {entry_id}: {entry.resolution}")
    else:
        raise UserError(f"entry {entry_id} still refused: {entry.reason}: {entry.detail}")
