"""overnight-contact-unexplored: a baby's contact with a risky non-resident parent not explored.

Child Charlie 1.6: risk factors "co-sleeping with a heavily intoxicated adult"; 2.13: "Charlie
stayed overnight with father two nights per week and every other weekend"; section 5 practice
learning 3: "the importance of practitioners explicitly exploring overnight contact arrangements
for children under two years of age".

The clock starts at the later of two recorded facts: the parent figure's latest ``person.linked``
saying they do not live with the child, and the first sign of concern (a domestic-abuse incident
naming them as a person of concern, or the status from which they are known to misuse
substances). "Under 2" is the child's age (``child.registered`` dob) on the London calendar day
of that later fact. Due at the first instant after the 10th working day (1 ms after
``working_days_deadline``); an arrangement recorded after that resolves the flag. Concerns: the
agencies whose records make up the risk (the link and the concern).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.calendar import london_day
from policies.facts import (
    age_on,
    child_dob,
    domestic_abuse_incidents,
    due_after_working_days,
    earliest,
    late,
    latest_links,
    parent_figures,
)
from policies.person_status import person_statuses
from policies.view import CONCERN_ROLES, ChildView, Event


class OvernightContactUnexplored(Policy):
    id = "overnight-contact-unexplored"
    version = 1
    severity = Severity.HIGH
    title = "Contact arrangements with a non-resident parent of concern not explored (child under 2)"
    source = "CSPR Child Charlie 1.6, 5 (practice learning 3)"
    explanation = (
        "Nobody asked where Charlie slept when he was with his father, who drank heavily; he "
        "stayed overnight twice a week. For a child under two, contact with a parent figure who "
        "lives elsewhere and is a person of concern or misuses substances must be explored and "
        "recorded within ten working days."
    )
    action = (
        "Explore and record the contact arrangements, including overnight stays "
        "(contact-arrangement.recorded)."
    )

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        dob = child_dob(view.of_type("child.registered"))
        if dob is None:
            return
        arrangements = view.of_type("contact-arrangement.recorded")
        links = latest_links(view.of_type("person.linked"))
        incidents = domestic_abuse_incidents(view.of_type("incident.reported"))
        statuses = view.of_type("person.status")
        for person in sorted(parent_figures(view.of_type("child.registered", "person.linked"))):
            link = links.get(person)
            if link is None or link.data.get("lives_with_child") is not False:
                continue
            concern = _first_concern(incidents, statuses, person)
            if concern is None:
                continue
            start = max(link, concern, key=lambda e: e.recordedtime)
            if age_on(dob, london_day(start.recordedtime)) >= 2:
                continue
            due = due_after_working_days(start.recordedtime, 10)
            gap = late(earliest(a for a in arrangements if a.data["person"] == person), due)
            if gap is None:
                continue
            yield Finding(
                key=person,
                due=due,
                evidence=(link.id, concern.id),
                concerns=tuple(sorted({link.source, concern.source})),
                detail=f"no contact arrangement recorded for {person}, who does not live with the child",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )


def _first_concern(incidents: Sequence[Event], statuses: Sequence[Event], person: str) -> Event | None:
    """The first domestic-abuse incident naming the person of concern, or the status from which
    the person is known to misuse substances (if no later status says they no longer do)."""
    facts = [
        e
        for e in incidents
        if any(p["person"] == person and p["role"] in CONCERN_ROLES for p in e.data.get("parties", ()))
    ]
    misuse_since: Event | None = None
    for status in person_statuses(statuses, person):
        misuse = status.data.get("substance_misuse")
        if misuse is True and misuse_since is None:
            misuse_since = status
        elif misuse is False:
            misuse_since = None
    if misuse_since is not None:
        facts.append(misuse_since)
    return min(facts, key=lambda e: (e.recordedtime, e.id)) if facts else None
