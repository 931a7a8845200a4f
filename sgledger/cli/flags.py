"""`sgledger flags list|explain|ack|dismiss`: gap flags, and people's decisions about them.

Acknowledging and dismissing are signed partnership events in the ledger, not edits to a table:
an auditor can see who decided what, and a replay reaches the same flag states.
"""

from __future__ import annotations

import json
from typing import Literal

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.store.models import AcceptedEvent
from producers.service import Actor, child_target
from sgledger.cli.access import record_access
from sgledger.cli.context import AppContext, UserError, console, parse_as_of, pass_app, print_json
from sgledger.cli.publishing import deliver_stored, service_producer
from sgledger.render import render_flags
from views.flag_ids import FlagIdError, resolve_flag_id
from views.models import FlagChangeRow, FlagRow
from views.queries import flags_as_of
from views.summaries import readable_time


@click.group()
def flags() -> None:
    """Gap flags: list, explain, acknowledge, dismiss."""


@flags.command("list")
@click.option("--child", "child_id", help="Only this child.")
@click.option("--agency", help="Only flags for this agency (e.g. police/avon-somerset).")
@click.option("--rule", help="Only this rule id (e.g. gp-not-notified).")
@click.option("--as-of", help="RFC 3339 time; flags open then, from what was recorded by then. Default: now.")
@click.option("--all", "include_closed", is_flag=True, help="Also resolved and dismissed flags.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--reason", help="Why you are looking (recorded with your name in the ledger).")
@pass_app
def list_(
    app: AppContext,
    child_id: str | None,
    agency: str | None,
    rule: str | None,
    as_of: str | None,
    include_closed: bool,
    as_json: bool,
    reason: str | None,
) -> None:
    """Flags open as of a time (recomputed from the ledger, so any past date is exact).

    The look is recorded as a signed access event: against the child with --child, else
    against the partnership."""
    when = parse_as_of(as_of)
    target = child_target(child_id) if child_id else f"flags:{agency or rule or 'all'}"
    record_access(app, "flags list", target, reason)
    found = [
        f.to_json()
        for f in flags_as_of(app.ledger, app.root_key(), when, child=child_id)
        if (include_closed or f.is_open)
        and (rule is None or f.rule == rule)
        and (agency is None or agency in f.concerns)
    ]
    if as_json:
        print_json({"as_of": when.isoformat(), "flags": found})
    else:
        render_flags(
            console,
            found,
            title=f"Flags {'raised' if include_closed else 'open'} as of {readable_time(when)} London",
        )


@flags.command("explain")
@click.argument("flag_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--reason", help="Why you are looking (recorded with your name in the ledger).")
@pass_app
def explain(app: AppContext, flag_id: str, as_json: bool, reason: str | None) -> None:
    """Why FLAG_ID was raised: the lesson, the evidence events and its lifecycle.

    FLAG_ID may be abbreviated to its first digits (8 are shown by `flags list`), like git. The
    evidence is part of a child's record: the look is recorded (`audit access CHILD`)."""
    with app.ledger.read() as session:
        flag_id = _resolve(session, flag_id)
        child = session.scalar(select(FlagRow.child).where(FlagRow.id == flag_id))
    # recorded before the evidence is read, so that the look is on record even if showing fails
    record_access(app, "flags explain", child_target(child) if child else f"flag:{flag_id}", reason)
    with app.ledger.read() as session:
        row = session.get(FlagRow, flag_id)
        assert row is not None  # resolved just now, in this transaction
        flag = json.loads(row.payload)
        evidence = [
            {
                "id": e.event_id,
                "source": e.source,
                "type": e.type,
                "time": e.time.isoformat(),
                "recordedtime": e.recordedtime.isoformat(),
            }
            for e in session.scalars(
                select(AcceptedEvent).where(AcceptedEvent.event_id.in_(flag["evidence"]))
            )
        ]
        history = [
            {"change": c.change, "at": c.changed_at.isoformat()}
            for c in session.scalars(
                select(FlagChangeRow).where(FlagChangeRow.flag_id == flag_id).order_by(FlagChangeRow.id)
            )
        ]
    if as_json:
        print_json({"flag": flag, "evidence": evidence, "history": history})
        return
    console.rule(f"[bold]{flag['title']}[/bold] ({flag['rule']} v{flag['version']}, {flag['severity']})")
    console.print(
        f"Child: {flag['child'] or '(partnership-wide)'}    Status: {flag['status']}    Due: {flag['due']}"
    )
    console.print(f"\n[bold]Why[/bold] ({flag['source']}): {flag['explanation']}")
    console.print(f"\n[bold]Expected[/bold]: {flag['action']}")
    if flag.get("detail"):
        console.print(f"\n[bold]Here[/bold]: {flag['detail']}")
    console.print("\n[bold]Evidence[/bold]")
    for e in sorted(evidence, key=lambda e: e["time"]):
        console.print(f"  {e['time']}  {e['source']:<28} {e['type']:<24} {e['id']}")
    console.print("\n[bold]History[/bold]")
    for h in history:
        console.print(f"  {h['at']}  {h['change']}")


def _resolve(session: Session, given: str) -> str:
    try:
        return resolve_flag_id(session, given)
    except FlagIdError as exc:
        raise UserError(str(exc)) from exc


def _decide(
    app: AppContext,
    flag_id: str,
    decision: Literal["flag.acknowledged", "flag.dismissed"],
    reason: str | None,
) -> None:
    """Signed by the service key on behalf of the operating-system account running the command:
    the person deciding is who is signed in, not a name typed on the command line."""
    with app.ledger.read() as session:
        flag_id = _resolve(session, flag_id)
        row = session.get(FlagRow, flag_id)
        assert row is not None  # resolved just now, in this transaction
        child, evidence = row.child, json.loads(row.payload)["evidence"]
    actor = Actor.operating_system_user()
    event = service_producer(app).decide_flag(actor, decision, flag_id, child, reason, evidence)
    click.echo(f"{decision} {flag_id} by {actor.id}: {deliver_stored(app, event)}")


@flags.command("ack")
@click.argument("flag_id")
@click.option("--reason", help="Optional note.")
@pass_app
def ack(app: AppContext, flag_id: str, reason: str | None) -> None:
    """Acknowledge FLAG_ID (it stays open until resolved): a signed partnership event naming you."""
    _decide(app, flag_id, "flag.acknowledged", reason)


@flags.command("dismiss")
@click.argument("flag_id")
@click.option("--reason", required=True, help="Why the flag does not need action.")
@pass_app
def dismiss(app: AppContext, flag_id: str, reason: str) -> None:
    """Dismiss FLAG_ID with a reason; it reopens if new evidence arrives."""
    _decide(app, flag_id, "flag.dismissed", reason)
