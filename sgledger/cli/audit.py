"""`sgledger audit ...`: verify the history, prove inclusion and consistency, publish tree heads,
replay views as of a time, compare databases, export the chronology, list who looked.

Commands that show a child's record or rebuild the partnership's views record the access first
(`access.recorded`, signed by the partnership), so that the look is on record even if the
command then fails.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from consumers.auditor.checkpoints import checkpoint_files
from consumers.auditor.chronology import build_chronology
from consumers.auditor.chronology_formats import BINARY_FORMATS, FORMATS, PdfUnavailable, render
from consumers.auditor.diff import diff
from consumers.auditor.findings import Finding
from consumers.auditor.replay import replay
from consumers.auditor.tree_heads import (
    UnknownEvent,
    consistency,
    current_head,
    latest_head,
    prove,
)
from consumers.auditor.verify import KeptCheckpoints, verify
from consumers.auditor.views import check_views
from ledger.merkle import ProofError
from ledger.notes import NoteError, VerifierKey
from ledger.timeutil import format_time
from producers.service import child_target
from sgledger.cli.access import record_access
from sgledger.cli.checkpoints import checkpoint, cosigned, log_keys, witness_request
from sgledger.cli.context import AppContext, UserError, console, parse_as_of, pass_app, print_json
from sgledger.cli.publishing import deliver_stored, service_producer
from sgledger.settings import shown
from views.access_log import list_access

# Below this many events a progress bar would only flicker.
PROGRESS_FROM = 20_000
REASON = click.option("--reason", help="Why you are looking (recorded with the access).")


@click.group()
def audit() -> None:
    """Verify the ledger from the root key alone, prove, replay, and export chronologies."""


@audit.command("verify")
@click.option("--from-kafka", is_flag=True, help="Also read the topics from offset 0 and compare.")
@click.option(
    "--checkpoints",
    "checkpoints_path",
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint file, or a directory of *.checkpoint files (e.g. a witness's cosigned/ "
    "folder), kept outside the database: the ledger and the quarantine must extend each of them.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="A witness's cosignature verifier key (repeatable): every checkpoint must then carry "
    "--quorum valid cosignatures among them.",
)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many of the --witness keys must have cosigned each checkpoint.",
)
@click.option(
    "--log-key",
    "log_key_texts",
    multiple=True,
    metavar="VKEY",
    help="A log verifier key you hold yourself (`audit log-keys` output), trusted beside the "
    "partnership/log keys registered in the ledger (repeatable).",
)
@click.option(
    "--views",
    is_flag=True,
    help="Also rebuild every view and flag from the ledger (a replay, recorded as an access) and "
    "report each stored row that differs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary and every finding as JSON.")
@click.option("--workers", type=int, help="Worker processes (default: all cores).")
@REASON
@pass_app
def verify_(
    app: AppContext,
    from_kafka: bool,
    checkpoints_path: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int,
    log_key_texts: tuple[str, ...],
    views: bool,
    as_json: bool,
    workers: int | None,
    reason: str | None,
) -> None:
    """Check every key registration, signature, chain, tree head and stored row; exit 1 on any finding.

    With --checkpoints, also what only copies held outside the database can show: a deleted tree
    head, a truncated tail, a deleted quarantine entry, a rewritten history. With --views, also
    edited or deleted view and flag rows."""
    kept = None
    if checkpoints_path is not None:
        try:
            witnesses = [VerifierKey.parse(k) for k in witness_keys]
            log_keys = [VerifierKey.parse(k) for k in log_key_texts]
        except NoteError as exc:
            raise UserError(f"--witness/--log-key: {exc}") from exc
        kept = KeptCheckpoints(checkpoint_files(checkpoints_path), witnesses, quorum, log_keys)
        if not kept.paths:
            raise UserError(f"--checkpoints: no *.checkpoint file in {checkpoints_path}")
    elif witness_keys or log_key_texts:
        raise UserError("--witness and --log-key need --checkpoints")
    view_findings: list[Finding] = []
    if views:
        record_access(app, "audit verify --views", "all children's views and flags", reason)
        with tempfile.TemporaryDirectory(prefix="sgledger-views-") as scratch:
            view_findings = check_views(app.ledger, app.root_key(), app.settings.database_url, Path(scratch))
    kafka = None
    if from_kafka:
        kafka = app.cluster(
            "--from-kafka needs a Kafka cluster (--bootstrap-servers): the embedded broker keeps no history"
        )
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("verify", total=None)

        def progress(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bar.update(task, completed=done, total=total)

        report = verify(
            app.ledger, app.root_key(), kafka=kafka, workers=workers, progress=progress, checkpoints=kept
        )
    report.findings.extend(view_findings)
    if as_json:
        print_json({**report.summary(), "findings": [f.to_json() for f in report.findings]})
    else:
        summary = report.summary()
        console.print(
            f"{summary['events']:,} events from {summary['sources']} sources, "
            f"{summary['key_events']} key events, {summary['tree_heads']} tree heads"
            + (f", {summary['topic_messages']:,} topic messages" if report.topic_messages is not None else "")
            + (f", {report.checkpoints} checkpoints" if report.checkpoints is not None else "")
            + (", views recomputed" if views else "")
            + f" in {summary['seconds']} s"
        )
        for finding in report.findings[:50]:
            console.print(f"[red]{escape(str(finding))}[/red]", markup=True, highlight=False)
        if len(report.findings) > 50:
            console.print(f"... and {len(report.findings) - 50} more (use --json for all)")
        console.print("[green]clean[/green]" if report.ok else f"[red]{len(report.findings)} findings[/red]")
    if not report.ok:
        raise SystemExit(1)


@audit.command("tree-head")
@click.option("--every", type=float, help="Keep publishing every SECONDS (an operator's service).")
@pass_app
def tree_head(app: AppContext, every: float | None) -> None:
    """Publish the current Merkle tree head as a ledger.tree-head event signed by the service key."""
    while True:
        head = current_head(app.ledger)
        latest = latest_head(app.ledger)
        if latest is not None and head["tree_size"] <= latest["tree_size"] + 1:
            click.echo(f"nothing new since the head at size {latest['tree_size']}")
        else:
            outcome = deliver_stored(app, service_producer(app).tree_head(head))
            click.echo(f"tree head size {head['tree_size']} root {head['root_hash']}: {outcome}")
        if every is None:
            return
        time.sleep(every)


@audit.command("prove")
@click.argument("event_id")
@pass_app
def prove_(app: AppContext, event_id: str) -> None:
    """Inclusion proof of EVENT_ID against the latest published tree head (RFC 9162)."""
    try:
        print_json(prove(app.ledger, event_id))
    except UnknownEvent as exc:
        raise UserError(str(exc)) from exc


@audit.command("consistency")
@click.argument("old_size", type=int)
@click.argument("new_size", type=int)
@pass_app
def consistency_(app: AppContext, old_size: int, new_size: int) -> None:
    """Proof that the first NEW_SIZE events extend the first OLD_SIZE unchanged (RFC 9162)."""
    try:
        print_json(consistency(app.ledger, old_size, new_size))
    except ProofError as exc:
        raise UserError(str(exc)) from exc


@audit.command("replay")
@click.option("--as-of", "as_of", required=True, help="RFC 3339 time: rebuild views as they stood then.")
@click.option("--into", "into_url", required=True, help="Empty database (SQLAlchemy URL) to rebuild into.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes evaluating children (default: one per core into PostgreSQL; one into SQLite,"
    " whose write-ahead log two would let grow with the replay).",
)
@REASON
@pass_app
def replay_(app: AppContext, as_of: str, into_url: str, workers: int | None, reason: str | None) -> None:
    """Rebuild per-child views and flags from the events recorded by --as-of, into another database.

    Signatures are not checked again (they were on the way in; `audit verify` re-checks them)."""
    when = parse_as_of(as_of)
    into = shown(into_url)  # never a password in the ledger or the output
    record_access(app, "audit replay", f"ledger as of {format_time(when)} into {into}", reason)
    ledger, root = app.ledger, app.root_key()
    try:
        result = replay(ledger, root, when, into_url, workers=workers)
    except ValueError as exc:
        raise UserError(f"{into}: {exc}") from exc
    click.echo(
        f"replayed {result.events} events as of {format_time(when)} (signatures not re-checked: "
        f"`audit verify` does that): {result.children} children, into {into}"
    )
    if result.failed:
        raise UserError(f"{result.failed} children could not be evaluated (see the log): no views for them")


@audit.command("diff")
@click.argument("url_a")
@click.argument("url_b", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def diff_(app: AppContext, url_a: str, url_b: str | None, as_json: bool) -> None:
    """Compare derived views and flags of URL_A and URL_B (default: the live database).

    Exit status 1 when they differ."""
    differences = diff(url_a, url_b or app.settings.database_url)
    if as_json:
        print_json(differences)
    else:
        for d in differences:
            click.echo(f"{d['table']} {d['key']}: A={d['a']} B={d['b']}")
        click.echo("identical" if not differences else f"{len(differences)} differences")
    if differences:
        raise SystemExit(1)


@audit.command("chronology")
@click.argument("child")
@click.option("--as-of", "as_of", help="RFC 3339 time (default: now).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), required=True,
    help="html: one self-contained file to print (A4); pdf: the same laid out by WeasyPrint "
    "(needs --output); csv: one row per event; md: Markdown for working papers.",
)  # fmt: skip
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@REASON
@pass_app
def chronology_(
    app: AppContext, child: str, as_of: str | None, fmt: str, output: Path | None, reason: str | None
) -> None:
    """The multi-agency chronology of CHILD for a review: each event in plain language with who
    knew of it and when, gap flags as spans (raised, then resolved or still open), notifications,
    and apart from them the record's own governance (keys, reads, flag decisions, tree head).

    The export is itself a read of the child's record: it is recorded (`audit access CHILD`)."""
    when = parse_as_of(as_of)
    if fmt in BINARY_FORMATS and output is None:
        raise UserError(f"--format {fmt} writes a binary file: give --output FILE.{fmt}")
    record_access(app, f"audit chronology --format {fmt}", child_target(child), reason)
    try:
        data = render(build_chronology(app.ledger, app.root_key(), child, when), fmt)
    except PdfUnavailable as exc:
        raise UserError(str(exc)) from exc
    if output is None:
        click.echo(data.decode(), nl=False)
    else:
        output.write_bytes(data)
        click.echo(f"wrote {output}", err=True)


@audit.command("access")
@click.argument("child")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def access(app: AppContext, child: str, as_json: bool) -> None:
    """Who looked at CHILD's record: when, what, and why."""
    rows = list_access(app.ledger, child)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['when']}  {row['who']}  {row['action']}  {row.get('reason', '(no reason given)')}")
    if not rows:
        click.echo(f"no recorded access to {child}")


for command in (checkpoint, log_keys, witness_request, cosigned):
    audit.add_command(command)
