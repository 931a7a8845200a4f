"""`sgledger scenario run` and `sgledger demo`: a story end to end through the real path."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sgledger.cli.context import AppContext, UserError, console, parse_as_of, pass_app, print_json
from sgledger.pipeline import Pipeline
from sgledger.render import render_child, render_flags, render_mail
from sgledger.scenario_runner import ScenarioResult, run_scenario
from sgledger.scenariofile import ScenarioError, load_scenario
from sgledger.settings import Settings
from transport.broker import EMBEDDED_EXTRA_HINT

if TYPE_CHECKING:
    from sgledger.demo_mail import DemoMail

DEMO_SCENARIO = "cspr-child-charlie.json"


@click.group()
def scenario() -> None:
    """Scenario files (DESIGN.md format)."""


@scenario.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-of", help="Print flags open at this RFC 3339 time. Default: just after the last event.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: as_of, flags, children, expectations."
)
@click.option("--keep", is_flag=True, help="Keep the fresh state directory afterwards (its path is printed).")
@click.pass_context
def run(ctx: click.Context, file: Path, as_of: str | None, as_json: bool, keep: bool) -> None:
    """Register the agencies, sign and publish FILE's events in order, wait for the projector,
    print the open flags and the child views, and check the file's expectations (exit 1 if any
    fails). Runs in a fresh state directory unless --data-dir was given."""
    app: AppContext = ctx.obj
    try:
        story = load_scenario(file)
    except ScenarioError as exc:
        raise UserError(str(exc)) from exc
    when = parse_as_of(as_of) if as_of else None
    given = ctx.find_root().params.get("data_dir") is not None
    workdir = None if given else Path(tempfile.mkdtemp(prefix="sgledger-scenario-"))
    settings = (
        app.settings
        if workdir is None
        else Settings.resolve(
            workdir, bootstrap_servers=app.settings.bootstrap_servers, topic_prefix=_prefix(app, story.name)
        )
    )
    try:
        result = run_scenario(story, settings, as_of=when, progress=_progress(as_json))
    finally:
        if workdir is not None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _print(result, as_json)
    if keep and workdir is not None:
        click.echo(f"state kept in {workdir} (sgledger --data-dir {workdir} child list)", err=True)
    if not result.passed:
        raise SystemExit(1)


def _prefix(app: AppContext, name: str) -> str:
    """On a shared Kafka, a throwaway scenario must not mix with the partnership's topics."""
    if app.settings.embedded:
        return app.settings.topic_prefix
    return f"scenario-{name}-{uuid.uuid4().hex[:8]}"


def _progress(quiet: bool) -> Callable[[str], None]:
    def report(message: str) -> None:
        if not quiet:
            console.print(f"[dim]… {message}[/dim]")

    return report


def _print(result: ScenarioResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_json())
        return
    console.rule(f"[bold]Scenario {result.scenario.name}[/bold]")
    console.print(result.scenario.description)
    for view in result.children.values():
        render_child(console, view)
    render_flags(
        console, [f.to_json() for f in result.flags], title=f"Flags open as of {result.as_of.isoformat()}"
    )
    for expectation in result.expectations:
        mark = "[green]PASS[/green]" if not expectation.failures else "[red]FAIL[/red]"
        console.print(f"{mark} expectations as of {expectation.as_of.isoformat()}")
        for failure in expectation.failures:
            console.print(f"    {failure}")


@click.command()
@click.option("--print-emails", is_flag=True, help="Also print every email in full (headers and text part).")
@pass_app
def demo(app: AppContext, print_emails: bool) -> None:
    """Run the bundled Child Charlie story end to end on this machine: embedded broker, SQLite,
    signed events, projector, per-child view and flags, then the alerter, which emails each flag
    change to the agencies' safeguarding leads through a local SMTP server the demo starts
    (nothing leaves the machine). State is kept in DATA_DIR/demo (recreated on each run) so you
    can explore it afterwards."""
    try:  # the loopback SMTP server (aiosmtpd) is in the optional [embedded] extra
        from sgledger.demo_mail import send_demo_mail
    except ModuleNotFoundError as exc:
        raise UserError(f"the demo needs {exc.name}, which is not installed: {EMBEDDED_EXTRA_HINT}") from exc
    demo_dir = app.settings.data_dir / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    settings = Settings.resolve(
        demo_dir, bootstrap_servers=app.settings.bootstrap_servers, topic_prefix=_prefix(app, "demo")
    )
    with resources.as_file(resources.files("sgledger") / "scenarios" / DEMO_SCENARIO) as path:
        story = load_scenario(path)
    sent: list[DemoMail] = []

    def alert(pipeline: Pipeline) -> None:
        _progress(False)("emailing the flag changes to the safeguarding leads (local SMTP sink)")
        sent.append(send_demo_mail(pipeline))

    result = run_scenario(story, settings, progress=_progress(False), while_up=alert)
    _print(result, as_json=False)
    render_mail(console, sent[0], full=print_emails)
    console.print(
        f"\nState kept in {demo_dir}. Explore it with:\n"
        f"  sgledger --data-dir {demo_dir} child list\n"
        f"  sgledger --data-dir {demo_dir} flags list --all\n"
        f"  sgledger --data-dir {demo_dir} alerts pending --all"
    )
    if not result.passed or sent[0].report.failed:
        raise SystemExit(1)
