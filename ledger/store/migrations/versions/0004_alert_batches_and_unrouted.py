"""The alerter records which mail carried each (flag change, recipient), and keeps unrouted changes.

``alert_mail_changes``: several changes about one child now go to a lead in ONE message, so the
mail table's own (change, recipient) key no longer says what each lead was sent; this table does,
and keeps each (change, recipient) mailed once across replays. ``alert_unrouted``: flag changes no
lead was routed for (sent to the partnership's fallback address), listed by `alerts pending
--unrouted` and resent by `alerts resend` (issue 12, no silent drops).

Created only where the alerter has run (``alert_mail`` exists): in a database it never used, the
alerter creates all of its tables together when it first starts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, String, Text, inspect

from ledger.store.types import UTCTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _tables() -> set[str]:
    return set(inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    tables = _tables()
    if "alert_mail" not in tables:
        return
    if "alert_mail_changes" not in tables:
        op.create_table(
            "alert_mail_changes",
            Column("change_id", String(64), primary_key=True),
            Column("recipient", String(320), primary_key=True),
            Column("mail_key", String(64), nullable=False),
        )
    if "alert_unrouted" not in tables:
        op.create_table(
            "alert_unrouted",
            Column("change_id", String(64), primary_key=True),
            Column("flag_id", String(36), nullable=False),
            Column("child", String(128), nullable=True),
            Column("rule", String(100), nullable=False),
            Column("concerns", Text(), nullable=False),
            Column("changed_at", UTCTime(), nullable=False),
            Column("change", Text(), nullable=False),
        )
        op.create_index("ix_alert_unrouted_changed_at", "alert_unrouted", ["changed_at"])


def downgrade() -> None:
    tables = _tables()
    if "alert_unrouted" in tables:
        op.drop_index("ix_alert_unrouted_changed_at", table_name="alert_unrouted")
        op.drop_table("alert_unrouted")
    if "alert_mail_changes" in tables:
        op.drop_table("alert_mail_changes")
