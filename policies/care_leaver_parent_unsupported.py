"""care-leaver-parent-unsupported: a young care leaver is a parent and leaving care is not told.

Family A recommendation 8: "professionals in all partner agencies are aware of the
responsibilities for and services available to care leavers"; good practice: "Support is
available to care leavers until the age of 25".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_after, parent_figures
from policies.view import ChildView, Event

SUPPORT_AGE_LIMIT = 25


class CareLeaverParentUnsupported(Policy):
    id = "care-leaver-parent-unsupported"
    version = 1
    severity = Severity.MEDIUM
    title = "Parent is a care leaver (25 or under) and leaving care services were not told"
    source = "CSPR Family A recommendation 8"
    explanation = (
        "Family A's mother was a care leaver; support is available to care leavers until 25, but "
        "only if the leaving care service knows. Within ten working days of the first incident or "
        "referral about the child, a leaving care service should be notified."
    )
    action = "Notify the leaving care service (notification.sent to a leaving-care/ agency)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        events = view.effective()
        triggers = sorted(
            (e for e in events if e.type in ("incident.reported", "referral.made")),
            key=lambda e: e.recordedtime,
        )
        if not triggers:
            return
        notified = [
            e
            for e in events
            if e.type == "notification.sent" and agency_kind(str(e.data["to"])) == "leaving-care"
        ]
        for person in sorted(parent_figures(events)):
            status = _latest_status(events, person)
            if status is None or status.data.get("care_leaver") is not True:
                continue
            if not isinstance(status.data.get("age"), int) or status.data["age"] > SUPPORT_AGE_LIMIT:
                continue
            start = max(triggers[0], status, key=lambda e: e.recordedtime)
            due = due_after_working_days(start.recordedtime, 10)
            if any(n.recordedtime < due for n in notified):
                continue
            late = first_after(notified, due)
            yield Finding(
                key=person,
                due=due,
                evidence=(triggers[0].id, status.id),
                concerns=(triggers[0].source,),
                detail=f"{person} is a care leaver aged {status.data['age']}; no leaving care service told",
                resolved_by=late.id if late else None,
                resolved_at=late.recordedtime if late else None,
            )


def _latest_status(events: tuple[Event, ...], person: str) -> Event | None:
    statuses = [e for e in events if e.type == "person.status" and e.data["person"] == person]
    return max(statuses, key=lambda e: (e.recordedtime, e.id)) if statuses else None
