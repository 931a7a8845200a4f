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
from policies.facts import due_after_working_days, first_after
from policies.view import ChildView, Event


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
        triaged: dict[str, list[Event]] = {}
        for triage in view.of_type("incident.triaged"):
            triaged.setdefault(triage.data["incident_ref"], []).append(triage)
        for incident in view.of_type("incident.reported"):
            if not incident.data.get("children_present"):
                continue
            ref = incident.data["incident_ref"]
            triages = triaged.get(ref, [])
            due = due_after_working_days(incident.recordedtime, 1)
            if any(t.recordedtime < due for t in triages):
                continue
            late = first_after(triages, due)
            yield Finding(
                key=incident.id,
                due=due,
                evidence=(incident.id,),
                concerns=(incident.source,),  # the reporting force owns getting it triaged
                detail=f"incident {ref} not triaged within one working day",
                resolved_by=late.id if late else None,
                resolved_at=late.recordedtime if late else None,
            )
