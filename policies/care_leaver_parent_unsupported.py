"""care-leaver-parent-unsupported: a young care leaver is a parent and leaving care is not told.

Family A recommendation 8: "professionals in all partner agencies are aware of the
responsibilities for and services available to care leavers"; good practice: "Support is
available to care leavers until the age of 25".

Person status is folded across ``person.status`` events (latest value of each field), so the
clock starts when both "care leaver" and "25 or under" are known, or at the first incident or
referral about the child if later; due at the first instant after the 10th working day (1 ms
after ``working_days_deadline``). Any notification to a ``leaving-care/`` agency about the child
before then counts. Concerns: the agency that first brought the child to the partnership's
attention (it holds the relationship with the family).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_after, parent_figures
from policies.person_status import person_statuses
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
            key=lambda e: (e.recordedtime, e.id),
        )
        if not triggers:
            return
        notified = [
            e
            for e in events
            if e.type == "notification.sent" and agency_kind(str(e.data["to"])) == "leaving-care"
        ]
        for person in sorted(parent_figures(events)):
            status = _qualifying_status(events, person)
            if status is None:
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
                detail=f"parent figure {person} is a care leaver aged 25 or under; leaving care not told",
                resolved_by=late.id if late else None,
                resolved_at=late.recordedtime if late else None,
            )


def _qualifying_status(events: tuple[Event, ...], person: str) -> Event | None:
    """The status event from which the person is known to be a care leaver aged 25 or under, if
    they still are (a later status saying otherwise, e.g. an age over 25, ends the rule)."""
    fields: dict[str, Any] = {}
    since: Event | None = None
    for event in person_statuses(events, person):
        fields.update(event.data)
        if not _qualifies(fields):
            since = None
        elif since is None:
            since = event
    return since


def _qualifies(fields: dict[str, Any]) -> bool:
    age = fields.get("age")
    return fields.get("care_leaver") is True and isinstance(age, int) and age <= SUPPORT_AGE_LIMIT
