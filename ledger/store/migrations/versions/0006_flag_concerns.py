"""``flag_concerns``: which flags each agency answers for, indexed for My flags.

My flags matched the agency with LIKE on every flag's JSON payload and sorted all matches by due
time, so a page cost grew with the number of flags. This table (one row per flag and agency it
concerns, plus the partnership's row, see ``views.models.FlagConcernRow``) is created and
back-filled from the flags already held, with the same function the projector uses to keep it
(``views.flags.concern_rows``), so a migrated database equals one built from scratch.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from ledger.store.types import UTCTime
from views.flags import concern_rows

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PAGE = 5000


def upgrade() -> None:
    concerns = op.create_table(
        "flag_concerns",
        sa.Column("flag_id", sa.String(36), primary_key=True),
        sa.Column("agency", sa.String(200), primary_key=True),
        sa.Column("tab", sa.String(12), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("due", UTCTime(), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
    )
    op.create_index("flag_concerns_agency_tab_due", "flag_concerns", ["agency", "tab", "due"])
    flags = sa.table(
        "flags",
        sa.column("id", sa.String()),
        sa.column("rule", sa.String()),
        sa.column("severity", sa.String()),
        sa.column("status", sa.String()),
        sa.column("due", UTCTime()),
        sa.column("payload", sa.Text()),
    )
    bind = op.get_bind()
    last = ""
    while True:  # keyset pages: memory stays flat on millions of flags
        page = bind.execute(sa.select(flags).where(flags.c.id > last).order_by(flags.c.id).limit(PAGE)).all()
        if not page:
            break
        rows = [
            r
            for f in page
            for r in concern_rows(f.id, f.rule, f.severity, f.status, f.due, json.loads(f.payload))
        ]
        bind.execute(sa.insert(concerns), rows)
        last = page[-1].id


def downgrade() -> None:
    op.drop_index("flag_concerns_agency_tab_due", table_name="flag_concerns")
    op.drop_table("flag_concerns")
