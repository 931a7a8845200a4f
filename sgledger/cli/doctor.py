"""`sgledger doctor`: is this deployment healthy, and if not, what to fix."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.table import Table

from sgledger.cli.context import AppContext, console, pass_app, print_json
from sgledger.doctor import (
    Check,
    check_database,
    check_kafka,
    check_keys,
    check_service_registration,
    check_smtp,
    check_variables,
)
from transport.kafka import KafkaSettings

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@click.command()
@click.option(
    "--config",
    "routing_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The partnership routing file: also check that its SMTP relay accepts a session.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON array.")
@pass_app
def doctor(app: AppContext, routing_file: Path | None, as_json: bool) -> None:
    """Check the deployment these settings point at: keys, database schema, Kafka (broker,
    topics, partition counts, replication) and, with --config, the SMTP relay.

    Only reads; exits 1 if any check fails, with the fix beside it."""
    settings = app.settings
    checks: list[Check] = [
        *check_keys(settings.keys_dir),
        *check_database(settings.database_url),
        *check_service_registration(settings.keys_dir, settings.database_url),
    ]
    if settings.embedded:
        checks.append(Check("broker", "ok", "embedded (started by each command; nothing to check)"))
    else:
        kafka = KafkaSettings.from_env(
            bootstrap_servers=settings.bootstrap_servers, topic_prefix=settings.topic_prefix
        )
        checks += check_variables(os.environ)
        checks += check_kafka(kafka)
    if routing_file is not None:
        checks += check_smtp(routing_file, os.environ.get)
    if as_json:
        print_json([check.__dict__ for check in checks])
    else:
        table = Table("check", "", "detail", "fix")
        for check in checks:
            style = STYLE[check.status]
            table.add_row(check.name, f"[{style}]{check.status}[/{style}]", check.detail, check.fix)
        console.print(table)
    if any(check.status == "fail" for check in checks):
        raise SystemExit(1)
