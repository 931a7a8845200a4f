"""school-not-notified: the child's school not told of an incident before the next school day.

Operation Encompass: police tell a child's school of a domestic-abuse incident before the start of
the next school day, so the child is met by someone who knows. Child Charlie section 5: "Schools
raised issues of consent and whether they could legitimately respond to notifications".

Schools are those the child was enrolled at (``school.enrolled`` time) by the incident's time
and had not left (``school.left`` time) by then: the *current* school. Version 2: version 1 kept
flagging a school the child had left, asking police to share incident information with a school
that no longer has the child (a false alarm and a data-protection problem).
Due at 09:00 London time on the first working day after the calendar day the incident was
recorded (``next_school_day_start``), or when the enrolment was recorded if the partnership
learned of the school only later; a notification recorded before then is in time, one after it
resolves the flag. One flag per (incident, school). Concerns: the police force that recorded
the incident (Operation Encompass is its duty).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.calendar import next_school_day_start
from policies.facts import late
from policies.view import ChildView, Event


class SchoolNotNotified(Policy):
    id = "school-not-notified"
    version = 2
    severity = Severity.MEDIUM
    title = "School not told of an incident before the next school day"
    source = "Operation Encompass; CSPR Child Charlie 5 (schools)"
    explanation = (
        "A child who witnessed an incident at night arrives at school the next morning; Operation "
        "Encompass exists so that a trusted adult there already knows. The child's school must be "
        "told before 09:00 on the next school day."
    )
    action = "Notify the school (notification.sent naming the incident) through Operation Encompass."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        enrolments = view.of_type("school.enrolled", "school.left")
        for incident in view.of_type("incident.reported"):
            if incident.data.get("children_present") is not True:
                continue
            for school, enrolled in sorted(current_schools(enrolments, incident.time).items()):
                due = max(next_school_day_start(incident.recordedtime), enrolled)
                told = view.notifications_about(incident, to=school)  # in recorded order
                gap = late(told[0] if told else None, due)
                if gap is None:
                    continue
                yield Finding(
                    key=f"{incident.id}|{school}",
                    due=due,
                    evidence=(incident.id,),
                    concerns=(incident.source,),
                    detail=(
                        f"{school} not told of incident {incident.data.get('incident_ref')} "
                        "before the school day"
                    ),
                    resolved_by=gap.resolved_by,
                    resolved_at=gap.resolved_at,
                )


def current_schools(enrolments: Sequence[Event], at: datetime) -> dict[str, datetime]:
    """School agency id -> when the partnership learned of the enrolment, for the schools the
    child was on the roll of at ``at``: enrolled by then (event time) and not left since.

    ``enrolments`` are the effective ``school.enrolled`` and ``school.left`` in time order; a
    later enrolment at a school the child left opens it again. An enrolment the partnership
    learned of only later still counts, from when it was recorded.
    """
    schools: dict[str, datetime] = {}
    for event in enrolments:
        if event.time > at:
            break
        school = f"school/{event.data['school']}"
        if event.type == "school.left":
            schools.pop(school, None)
        else:
            schools[school] = min(schools.get(school, event.recordedtime), event.recordedtime)
    return schools
