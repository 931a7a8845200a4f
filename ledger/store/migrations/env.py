"""Alembic environment: always run programmatically (`sgledger db upgrade`, the tests) on a
connection the caller opened, inside the caller's transaction (ledger.store.schema.upgrade)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes["target_metadata"],
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=False,  # see ledger.store.schema.drift
)
context.run_migrations()
