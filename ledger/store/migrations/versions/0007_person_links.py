"""The household index: which children name which person as a parent figure (``person_links``).

Households used to be looked up in ``view_people``, which each child's projection writes; once
child projection runs in shards (docs/stages.md), a shard must not depend on rows another shard
writes at its own pace. Intake now writes this index with each accepted event; the upgrade fills
it from the events already accepted (only ``child.registered`` and ``person.linked`` name
parent figures: ``policies.facts.roles``), with the same function intake uses.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json

from alembic import op
from sqlalchemy import Column, String, column, select, table
from sqlalchemy.orm import Session

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LINK_TYPES = ("child.registered", "person.linked")


def upgrade() -> None:
    from views.projection import record_links  # the models and the code of this release

    op.create_table(
        "person_links",
        Column("person", String(128), primary_key=True),
        Column("child", String(128), primary_key=True),
    )
    op.create_index("person_links_child", "person_links", ["child"])
    accepted = table("ledger_accepted", column("position"), column("type"), column("envelope"))
    session = Session(bind=op.get_bind())
    query = select(accepted.c.envelope).where(accepted.c.type.in_(LINK_TYPES)).order_by(accepted.c.position)
    record_links(session, (json.loads(envelope) for envelope in session.scalars(query)))


def downgrade() -> None:
    op.drop_index("person_links_child", table_name="person_links")
    op.drop_table("person_links")
