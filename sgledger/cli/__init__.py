"""`sgledger`: one command group per job, like click's own examples.

Errors a user can fix (bad arguments, missing keys, unreachable broker) end in one clear line and
a non-zero exit, never a traceback; `--debug` shows the traceback for developers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.private_files import NotPrivate
from sgledger.cli.alerts import alerts
from sgledger.cli.audit import audit
from sgledger.cli.child import child
from sgledger.cli.context import AppContext, UserError
from sgledger.cli.db import db
from sgledger.cli.doctor import doctor
from sgledger.cli.flags import flags
from sgledger.cli.gateway import gateway
from sgledger.cli.keys import agency, keys
from sgledger.cli.publish import project, publish, relay
from sgledger.cli.quarantine import quarantine
from sgledger.cli.scenario import demo, scenario
from sgledger.cli.topics import topics
from sgledger.cli.witness import witness
from sgledger.observe.logs import configure as configure_logging
from sgledger.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "SGLEDGER"})
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="State directory (SQLite files, keys). Default: the user's data dir.",
)
@click.option(
    "--database-url", help="Ledger/views database (SQLAlchemy URL). Default: SQLite in the data dir."
)
@click.option("--outbox-url", help="Producer outbox database. Default: SQLite in the data dir.")
@click.option(
    "--keys-dir", type=click.Path(path_type=Path), help="Key store directory. Default: DATA_DIR/keys."
)
@click.option("--bootstrap-servers", help="Kafka bootstrap servers. Without it the embedded broker is used.")
@click.option("--topic-prefix", help="Kafka topic prefix (default: safeguarding).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line (for log collectors; services log each batch).",
)
@click.version_option(package_name="safeguarding-ledger")
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path | None,
    database_url: str | None,
    outbox_url: str | None,
    keys_dir: Path | None,
    bootstrap_servers: str | None,
    topic_prefix: str | None,
    debug: bool,
    log_format: str,
) -> None:
    """Safeguarding ledger: signed multi-agency events, per-child views and gap flags.

    Agencies publish signed events; the projector verifies them into an append-only ledger,
    builds one view per child and raises gap flags from the lessons of safeguarding reviews.
    Try `sgledger demo` for a whole story end to end on this machine.
    """
    configure_logging(json_lines=log_format == "json", debug=debug)
    settings = Settings.resolve(data_dir, database_url, outbox_url, keys_dir, bootstrap_servers, topic_prefix)
    ctx.obj = AppContext(settings=settings, debug=debug)


for command in (
    keys,
    agency,
    publish,
    relay,
    project,
    child,
    flags,
    quarantine,
    scenario,
    demo,
    audit,
    alerts,
    gateway,
    topics,
    doctor,
    db,
    witness,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except NotPrivate as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(UserError.exit_code)
    except Exception as exc:
        if "--debug" in sys.argv:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)
