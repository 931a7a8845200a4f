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

Version 3: the school is judged as the partnership knew it, not as the history ends. Version 2
dropped the finding when a leaving date was recorded later (even one back-dated before the
incident), so a live projector kept a flag resolved "by the data changing" that a replay never
raised (issue 13). Now a school is owed over the spells in which it was, as far as anyone had
recorded, the child's school at the incident and the child had not left it since
(``policies.facts.school_spells``). A leaving recorded before the school day the notice was due
means there was never a gap; recorded after it, the gap stands and the leaving resolves it (the
child is no longer there to be met by someone who knows, and the school no longer has a reason to
hold the information), unless the school was told first. A leaving date after the incident ends
the duty the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.calendar import next_school_day_start
from policies.facts import Spell, first_gap, school_spells
from policies.view import ChildView


class SchoolNotNotified(Policy):
    id = "school-not-notified"
    version = 3
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
        if not enrolments:
            return
        schools: dict[datetime, dict[Hashable, list[Spell]]] = {}  # by incident time
        for incident in view.of_type("incident.reported"):
            if incident.data.get("children_present") is not True:
                continue
            school_day = next_school_day_start(incident.recordedtime)

            def due_of(spell: Spell, school_day: datetime = school_day) -> datetime:
                return max(school_day, spell.start)

            if incident.time not in schools:
                schools[incident.time] = school_spells(enrolments, incident.time)
            for school, owed in sorted(schools[incident.time].items()):
                told = view.notifications_about(incident, to=str(school))  # in recorded order
                gap = first_gap(owed, due_of, told[0] if told else None)
                if gap is None:
                    continue
                _, due, late = gap
                yield Finding(
                    key=f"{incident.id}|{school}",
                    due=due,
                    evidence=(incident.id,),
                    concerns=(incident.source,),
                    detail=(
                        f"{school} not told of incident {incident.data.get('incident_ref')} "
                        "before the school day"
                    ),
                    resolved_by=late.resolved_by,
                    resolved_at=late.resolved_at,
                )
