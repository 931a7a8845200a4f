"""Index view_people by person: a child's household (issue 14, sibling rules) is found by asking
which other children's views name one of its parent figures (views.queries.households_in), once
per touched child per batch; without the index that is a scan of every child's people.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("view_people_person", "view_people", ["person"])


def downgrade() -> None:
    op.drop_index("view_people_person", table_name="view_people")
