"""`sgledger db upgrade|current`: the partnership database's schema revision."""

from __future__ import annotations

import click
from sqlalchemy import create_engine

from consumers.alerter.store import AlertBase
from ledger.store import schema
from ledger.store.ledger import Ledger, normalise_url
from sgledger.cli.context import AppContext, console, pass_app


@click.group()
def db() -> None:
    """The database schema: services refuse a database another release made; upgrade it once,
    with the services stopped (or from the deployment's init job)."""


def _revision(url: str) -> str | None:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return schema.current_revision(connection)
    finally:
        engine.dispose()


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Print the database's revision and the one this release needs."""
    found = _revision(app.settings.database_url)
    console.print(f"database: {found or '(empty)'}    this release: {schema.head_revision()}")


@db.command()
@pass_app
def upgrade(app: AppContext) -> None:
    """Migrate the database to this release's revision (a fresh database is simply created)."""
    app.settings.ensure_data_dir()
    found = _revision(app.settings.database_url)
    if found is not None and found != schema.head_revision():
        from web.accounts import AccountsBase  # the web workspace's tables share the database

        ledger = Ledger(app.settings.database_url, check_schema=False)
        before, after = ledger.upgrade_schema([AlertBase.metadata, AccountsBase.metadata])
        console.print(f"upgraded {before} -> {after}")
        return
    Ledger(app.settings.database_url)  # creates a fresh database, or confirms a current one
    console.print(f"database is at {schema.head_revision()}, as this release needs")
