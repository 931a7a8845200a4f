"""``view_children.stamp``: a per-child write stamp, so a projector may trust its memory of
the rows it last wrote for a child instead of reading them back every batch; and an index on
``ledger_accepted (subject, position)``, so it reads a child's new events with one seek.

Issue 13: at 500 prior events, reading a child's ~500 stored flag rows every batch, to compare a
new evaluation with them, was the largest single cost of a live event. Every write of a child's
view and flag rows now sets a new random stamp; a process keeps what it wrote under that stamp
and compares in memory while the stored stamp is still its own (views.projection.ChildRows).
Existing rows get 0, which no write sets: the first write after the upgrade reads as before.

The projector reads only a child's events after the last position it read; with the index on
``(subject, time)`` alone, SQLite found them by visiting every row of the child (O(its history)
per batch, in C but growing). Building the index on an existing ledger reads the table once.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("view_children", sa.Column("stamp", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ledger_accepted_subject_position", "ledger_accepted", ["subject", "position"])


def downgrade() -> None:
    op.drop_index("ledger_accepted_subject_position", table_name="ledger_accepted")
    with op.batch_alter_table("view_children") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("stamp")
