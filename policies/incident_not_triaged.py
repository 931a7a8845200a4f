"""incident-not-triaged: an incident with children present is not triaged within a working day.

Child Charlie 2.4 (table): incident 3 was "not referred to DAT (DAT suspended ... due to
staffing/capacity issues)"; section 5: "two domestic abuse incidents were not considered by DAT,
one because the incident was not referred and the other because the DAT did not operate over
the Christmas holiday period".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_from, late, timelines
from policies.view import ChildView


class IncidentNotTriaged(Policy):
    id = "incident-not-triaged"
    version = 1
    severity = Severity.MEDIUM
    title = "Incident with children present not triaged within one working day"
    source = "CSPR Child Charlie 2.4, 5 (DAT not running over Christmas)"
    explanation = (
        "The daily triage meeting was the only place Charlie's incidents were shared with other "
        "agencies; when it was suspended, or did not meet over Christmas, incidents were not "
        "considered at all. Every incident with children present needs a triage decision within "
        "one working day, bank holidays notwithstanding. Medium: the incident is known to police, but "
        "no agency has yet weighed what it means for the child."
    )
    action = "Triage the incident (DAT, MASH or equivalent) and record the outcome."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        # A triage counts whenever it was recorded (even before the incident reached the ledger).
        triaged = timelines(view.of_type("incident.triaged"), lambda t: t.data["incident_ref"])
        for incident in view.of_type("incident.reported"):
            if not incident.data.get("children_present"):
                continue
            ref = incident.data["incident_ref"]
            due = due_after_working_days(incident.recordedtime, 1)
            gap = late(first_from(triaged, ref), due)
            if gap is None:
                continue
            yield Finding(
                key=incident.id,
                due=due,
                evidence=(incident.id,),
                concerns=(incident.source,),  # the reporting force owns getting it triaged
                detail=f"incident {ref} not triaged within one working day",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
