"""Human-readable output (rich). JSON output is the same data, printed by the commands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.timeutil import parse_time
from views.flag_ids import short_flag_id
from views.summaries import readable_time, summarise

if TYPE_CHECKING:  # the demo's mail path (Kafka, SMTP) is not needed to render anything else
    from sgledger.demo_mail import DemoMail

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def render_child(console: Console, view: Mapping[str, Any]) -> None:
    console.rule(f"[bold]Child {view['child']}[/bold]")
    console.print(
        f"Date of birth: {view['dob'] or 'unknown'}    "
        f"GP practice(s): {', '.join(view['gp_practices']) or 'none recorded'}    "
        f"School(s): {', '.join(view['schools']) or 'none recorded'}"
    )
    people = Table("person", "roles", "lives with child", "PR", "GP practice(s)", "status", title="People")
    for p in view["people"]:
        status = [k for k in ("care_leaver", "substance_misuse", "mental_health") if p[k]]
        people.add_row(
            p["person"],
            ", ".join(p["roles"]),
            _yn(p["lives_with_child"]),
            _yn(p["parental_responsibility"]),
            ", ".join(p["gp_practices"]),
            ", ".join(status),
        )
    console.print(people)
    agencies = Table("agency", "aware since (London)", "via", title="Agencies involved")
    for a in view["agencies"]:
        agencies.add_row(a["agency"], readable_time(parse_time(a["aware_since"])), a["via"])
    console.print(agencies)
    # the same sentences as the chronology export and the web timeline (views.summaries)
    chronology = Table(title="Chronology (all agencies), London time")
    chronology.add_column("when", no_wrap=True)
    chronology.add_column("agency", no_wrap=True)
    chronology.add_column("what happened", ratio=1)
    for e in view["chronology"]:
        when = readable_time(parse_time(e["time"]))
        recorded = readable_time(parse_time(e["recordedtime"]))
        said = summarise(e["type"], e["source"], e["data"], subject=view["child"])
        chronology.add_row(
            when + (f"\n(recorded {recorded})" if recorded != when else ""), e["source"], escape(said)
        )
    console.print(chronology)
    render_flags(console, view["open_flags"], title="Open flags")


def render_flags(console: Console, flags: Sequence[Mapping[str, Any]], title: str) -> None:
    """One row per flag that tells it apart from the others of its rule ("which": the incident,
    agency or plan, from the flag's detail); the lesson, expected action and evidence are one
    `flags explain` away, so that the list stays readable in an 80-column terminal (for the same
    reason one child is named once, in the title, rather than on every row)."""
    if not flags:
        console.print(f"[green]{title}: none[/green]")
        return
    children = {f["child"] or "(partnership)" for f in flags}
    one_child = children.pop() if len(children) == 1 else None  # then named once, in the title
    table = Table(
        title=title + (f", child {one_child}" if one_child else ""),
        caption="sgledger flags explain FLAG: the lesson, what is expected, the evidence",
    )
    for name in ("flag", "severity"):  # identifiers: never truncated or wrapped
        table.add_column(name, no_wrap=True)
    table.add_column("rule", overflow="fold")
    if one_child is None:
        table.add_column("child", no_wrap=True)
    table.add_column("due (London)")
    table.add_column("which", ratio=1)
    for f in flags:
        style = SEVERITY_STYLE.get(f["severity"], "")
        child = [] if one_child else [f["child"] or "(partnership)"]
        table.add_row(
            short_flag_id(f["id"]),
            f"[{style}]{f['severity']}[/{style}]",
            f["rule"],
            *child,
            readable_time(parse_time(f["due"])),
            escape(str(f.get("detail") or "")),
        )
    console.print(table)


def render_mail(console: Console, mail: DemoMail, *, full: bool) -> None:
    report = mail.report
    console.rule(f"[bold]Emails to safeguarding leads ({len(mail.received)})[/bold]")
    console.print(
        f"{mail.changes} flag change(s) on the gap-flags topic; {report.sent} message(s) sent to the "
        f"local SMTP server {mail.sink}, {report.deferred} deferred, {report.failed} failed."
    )
    table = Table(title="Received by the local SMTP server")
    table.add_column("to", no_wrap=True)
    table.add_column("subject", ratio=1)
    for received in mail.received:
        message = received.message
        table.add_row(", ".join(received.recipients), escape(str(message["Subject"])))
    console.print(table)
    if not full:
        console.print("[dim]sgledger demo --print-emails shows every message in full.[/dim]")
        return
    for received in mail.received:
        message = received.message
        console.rule(str(message["Message-ID"]))
        for header in ("From", "To", "Date", "Subject"):
            console.print(f"{header}: {message[header]}", markup=False, highlight=False)
        console.print(f"Content-Type: {message.get_content_type()} (text and HTML)", markup=False)
        console.print()
        console.print(received.text(), markup=False, highlight=False)


def _yn(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")
