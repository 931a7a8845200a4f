"""`sgledger`: one command group per job, like click's own examples.

Errors a user can fix (bad arguments, missing keys, unreachable broker) end in one clear line and
a non-zero exit, never a traceback; `--debug` shows the traceback for developers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.private_files import NotPrivate
from sgledger.cli.context import AppContext, UserError
from sgledger.cli.lazy import LazyGroup
from sgledger.observe.logs import configure as configure_logging
from sgledger.settings import Settings

# Each command's module is imported only when that command runs (sgledger/cli/lazy.py), so
# `sgledger --help` does not wait for SQLAlchemy, Kafka and cryptography to load.
COMMANDS = {
    "keys": "sgledger.cli.keys:keys",
    "agency": "sgledger.cli.keys:agency",
    "publish": "sgledger.cli.publish:publish",
    "relay": "sgledger.cli.publish:relay",
    "project": "sgledger.cli.publish:project",
    "child": "sgledger.cli.child:child",
    "flags": "sgledger.cli.flags:flags",
    "quarantine": "sgledger.cli.quarantine:quarantine",
    "scenario": "sgledger.cli.scenario:scenario",
    "demo": "sgledger.cli.scenario:demo",
    "audit": "sgledger.cli.audit:audit",
    "alerts": "sgledger.cli.alerts:alerts",
    "topics": "sgledger.cli.topics:topics",
    "doctor": "sgledger.cli.doctor:doctor",
    "db": "sgledger.cli.db:db",
    "witness": "sgledger.cli.witness:witness",
    "gateway": "sgledger.cli.gateway:gateway",
    "serve": "sgledger.cli.serve:serve",
    "users": "sgledger.cli.users:users",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "SGLEDGER"},
)
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
