"""The flags a safeguarding lead answers for, a page at a time, soonest due and most severe first.

Read through ``flag_concerns`` (one row per flag and agency it concerns, kept by the projector
beside the flags): "this agency's flags on this tab, by due time" is one ordered index range
whatever the number of flags, and each page then reads only its own flags' payloads. A
designated lead's list is the partnership's own rows (``EVERY_AGENCY``), so it is as cheap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from views.models import EVERY_AGENCY, FlagConcernRow, FlagRow

Tab = Literal["open", "acknowledged", "resolved"]
TABS: tuple[Tab, ...] = ("open", "acknowledged", "resolved")


def flag_tab(flag: Mapping[str, Any]) -> Tab:
    """An acknowledged flag is still open (it is closed by a later event or a dismissal); the
    tabs separate the ones nobody has answered yet from those a lead has."""
    if flag["status"] != "open":
        return "resolved"
    return "acknowledged" if flag.get("acknowledged_by") else "open"


def flags_page(
    session: Session, agency: str | None, tab: Tab, *, offset: int = 0, limit: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """Flags on ``tab`` concerning ``agency`` (None: every flag), and whether more follow."""
    concern = FlagConcernRow
    severity = case({"high": 0, "medium": 1}, value=concern.severity, else_=2)
    # The page's flag ids first (index order, then the offset skips index entries only), then
    # the payloads of those flags alone.
    ids = (
        select(concern.flag_id, concern.due, severity.label("rank"), concern.rule)
        .where(concern.agency == (EVERY_AGENCY if agency is None else agency), concern.tab == tab)
        .order_by(concern.due, severity, concern.rule, concern.flag_id)
        .offset(offset)
        .limit(limit + 1)
        .subquery()
    )
    query = (
        select(FlagRow.payload)
        .join(ids, ids.c.flag_id == FlagRow.id)
        .order_by(ids.c.due, ids.c.rank, ids.c.rule, ids.c.flag_id)
    )
    rows = [json.loads(payload) for payload in session.scalars(query)]
    return rows[:limit], len(rows) > limit
