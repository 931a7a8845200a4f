"""The flags a safeguarding lead answers for, a page at a time, soonest due and most severe first.

The filters run in SQL so a page costs the same with a hundred flags or a million: status by
column; the agency by the quoted agency id in the stored flag (``concerns`` is a JSON list in
the payload, so ``"gp/L1"`` cannot match ``"gp/L10"``); acknowledged or not by the payload's
``acknowledged_by``. Each row is then checked exactly in Python, so a coincidence in another
field of the payload can shorten a page but never show a flag that does not concern the agency.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from views.models import FlagRow

Tab = Literal["open", "acknowledged", "resolved"]
TABS: tuple[Tab, ...] = ("open", "acknowledged", "resolved")
# As json.dumps writes it in FlagRow.payload, with or without the default separators' spaces.
NOT_ACKNOWLEDGED = ('"acknowledged_by": null', '"acknowledged_by":null')


def flag_tab(flag: dict[str, Any]) -> Tab:
    """An acknowledged flag is still open (it is closed by a later event or a dismissal); the
    tabs separate the ones nobody has answered yet from those a lead has."""
    if flag["status"] != "open":
        return "resolved"
    return "acknowledged" if flag.get("acknowledged_by") else "open"


def flags_page(
    session: Session, agency: str | None, tab: Tab, *, offset: int = 0, limit: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """Flags on ``tab`` concerning ``agency`` (None: every flag), and whether more follow."""
    query = select(FlagRow.payload)
    if tab == "resolved":
        query = query.where(FlagRow.status.in_(("resolved", "dismissed")))
    else:
        query = query.where(FlagRow.status == "open")
        unanswered = or_(*(FlagRow.payload.contains(text) for text in NOT_ACKNOWLEDGED))
        query = query.where(unanswered if tab == "open" else ~unanswered)
    if agency is not None:
        query = query.where(FlagRow.payload.contains(json.dumps(agency)))
    severity = case({"high": 0, "medium": 1}, value=FlagRow.severity, else_=2)
    query = query.order_by(FlagRow.due, severity, FlagRow.rule, FlagRow.id).offset(offset).limit(limit + 1)
    rows = [json.loads(payload) for payload in session.scalars(query)]
    more = len(rows) > limit
    found = [f for f in rows[:limit] if flag_tab(f) == tab and (agency is None or agency in f["concerns"])]
    return found, more
