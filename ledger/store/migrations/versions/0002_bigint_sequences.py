"""Chain positions are BIGINT: a sequence may be any JSON-exact integer (up to 2**53 - 1).

PostgreSQL's INTEGER stops at 2**31 - 1, and an event with a larger (valid) sequence made the
INSERT fail and the whole batch with it (issue 9). SQLite stores INTEGER and BIGINT alike
(64-bit), so only PostgreSQL is altered: copying SQLite tables would change nothing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Integer

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    ("ledger_accepted", "sequence", False),
    ("ledger_quarantine", "sequence", True),
    ("ledger_holes", "first_missing", False),
    ("ledger_holes", "last_missing", False),
    ("ledger_equivocations", "sequence", False),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=BigInteger(), existing_type=Integer(), existing_nullable=nullable
        )


def downgrade() -> None:
    """Fails (as it should) if a sequence beyond 2**31 - 1 was stored meanwhile."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=Integer(), existing_type=BigInteger(), existing_nullable=nullable
        )
