"""The schema of release 0.1.0 (created with create_all, before migrations existed).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: a 0.1.0 database already has these tables; it is only stamped."""


def downgrade() -> None:
    """The first revision: nothing before it."""
