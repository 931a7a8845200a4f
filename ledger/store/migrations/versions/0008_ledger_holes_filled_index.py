"""Index the chain holes by when they were filled: open holes are found without a scan.

Every projector batch reads the holes still open (``filled_at IS NULL``) and its partnership
flags read those filled at the batch's time. An agency's chain spans every child-keyed
partition, so holes are noticed and filled all the time in normal operation and the table grows
with the ledger; without this index both reads scanned all of it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ledger_holes_filled", "ledger_holes", ["filled_at"])


def downgrade() -> None:
    op.drop_index("ledger_holes_filled", table_name="ledger_holes")
