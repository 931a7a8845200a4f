"""Who may read a child's record: the "legitimate relationship" rule of the NHS Spine.

A lead sees a child's record when their agency is involved with the child: it recorded something
about the child, was notified about the child, or was sent a referral, a triage outcome or a
MARAC plan about the child. Being named only in a flag (e.g. the father's GP practice that was
never told) is not a relationship: that lead sees the flag, and opening the record is a
"break glass" read with a reason. Answered from the view tables (``view_agencies``) and the
ledger index of the child's events, never from a list a person could edit.
"""

from __future__ import annotations

import json

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ledger.store.models import AcceptedEvent
from views.models import AgencyRow

# Event types whose data sends the child's case to other agencies, and the field naming them.
SENT_TO = {"referral.made": "to", "incident.triaged": "referred_to", "marac.plan.shared": "to"}


def has_relationship(session: Session, agency: str, child: str) -> bool:
    """True when ``agency`` recorded, was notified about, or was sent a referral or plan about
    ``child``."""
    involved = session.scalar(select(exists().where(AgencyRow.child == child, AgencyRow.agency == agency)))
    if involved:
        return True
    for event_type, envelope in session.execute(
        select(AcceptedEvent.type, AcceptedEvent.envelope).where(
            AcceptedEvent.subject == child, AcceptedEvent.type.in_(tuple(SENT_TO))
        )
    ):
        sent = json.loads(envelope)["data"].get(SENT_TO[event_type])
        if agency == sent or (isinstance(sent, list) and agency in sent):
            return True
    return False
