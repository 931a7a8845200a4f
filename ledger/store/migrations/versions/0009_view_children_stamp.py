"""``view_children.stamp``: a per-child write stamp, so a projector may trust its memory of
the rows it last wrote for a child instead of reading them back every batch.

Issue 13: at 500 prior events, reading a child's ~500 stored flag rows every batch, to compare a
new evaluation with them, was the largest single cost of a live event. Every write of a child's
view and flag rows now sets a new random stamp; a process keeps what it wrote under that stamp
and compares in memory while the stored stamp is still its own (views.projection.ChildRows).
Existing rows get 0, which no write sets: the first write after the upgrade reads as before.

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


def downgrade() -> None:
    with op.batch_alter_table("view_children") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("stamp")
