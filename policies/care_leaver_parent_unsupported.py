"""care-leaver-parent-unsupported: a young care leaver is a parent and leaving care is not told.

Family A recommendation 8: "professionals in all partner agencies are aware of the
responsibilities for and services available to care leavers"; good practice: "Support is
available to care leavers until the age of 25".

Person status is folded across ``person.status`` events (latest value of each field), so the
clock starts when "care leaver" and an age are known, or at the first incident or referral about
the child if later; the person is owed support if they are under 25 on the London day the clock
starts (version 2: "until the age of 25" ends on the 25th birthday; version 1 also counted a
25-year-old, and read a once-recorded ``age`` that never moved on). Age is computed for that day:
from the person's ``dob`` where recorded, else from the latest recorded ``age`` plus the whole
years since it was recorded. That is the youngest the person can be (their birthday may fall just
after the age was recorded): when the partnership is unsure, support is not cut off on a guess.
Due at the first instant after the 10th working day (1 ms
after ``working_days_deadline``). Any notification to a ``leaving-care/`` agency about the child
before then counts. Concerns: the agency that first brought the child to the partnership's
attention (it holds the relationship with the family).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.calendar import london_day
from policies.facts import age_on, due_after_working_days, earliest, late, parent_figures
from policies.person_status import person_statuses
from policies.view import ChildView, Event

SUPPORT_AGE_LIMIT = 25


class CareLeaverParentUnsupported(Policy):
    id = "care-leaver-parent-unsupported"
    version = 2
    severity = Severity.MEDIUM
    title = "Parent is a care leaver (under 25) and leaving care services were not told"
    source = "CSPR Family A recommendation 8"
    explanation = (
        "Family A's mother was a care leaver; support is available to care leavers until 25, but "
        "only if the leaving care service knows. Within ten working days of the first incident or "
        "referral about the child, a leaving care service should be notified."
    )
    action = "Notify the leaving care service (notification.sent to a leaving-care/ agency)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        trigger = earliest(view.of_type("incident.reported", "referral.made"))
        if trigger is None:
            return
        notified = earliest(
            e for e in view.of_type("notification.sent") if agency_kind(str(e.data["to"])) == "leaving-care"
        )
        statuses = view.of_type("person.status")
        for person in sorted(parent_figures(view.of_type("child.registered", "person.linked"))):
            status = _qualifying_status(statuses, person)
            if status is None:
                continue
            start = max(trigger, status, key=lambda e: e.recordedtime)
            age = _age(statuses, person, london_day(start.recordedtime))
            if age is None or age >= SUPPORT_AGE_LIMIT:
                continue
            due = due_after_working_days(start.recordedtime, 10)
            gap = late(notified, due)
            if gap is None:
                continue
            yield Finding(
                key=person,
                due=due,
                evidence=(trigger.id, status.id),
                concerns=(trigger.source,),
                detail=f"parent figure {person} is a care leaver aged {age}; leaving care not told",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )


def _qualifying_status(events: Sequence[Event], person: str) -> Event | None:
    """The status event from which the person is known to be a care leaver of known age, if they
    still are (a later status saying they are not a care leaver ends the rule)."""
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
    return fields.get("care_leaver") is True and ("dob" in fields or isinstance(fields.get("age"), int))


def _age(events: Sequence[Event], person: str, on: date) -> int | None:
    """The person's age on ``on``: from the latest recorded ``dob``, else from the latest recorded
    ``age`` plus whole years since (the youngest they can be); None if neither is known."""
    dob: date | None = None
    recorded_age: tuple[int, date] | None = None
    for status in person_statuses(events, person):
        if "dob" in status.data:
            dob = date.fromisoformat(status.data["dob"])
        if isinstance(status.data.get("age"), int):
            recorded_age = (status.data["age"], london_day(status.recordedtime))
    if dob is not None:
        return age_on(dob, on)
    if recorded_age is not None:
        age, since = recorded_age
        return age + age_on(since, on)
    return None
