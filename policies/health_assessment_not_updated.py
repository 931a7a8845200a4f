"""health-assessment-not-updated: health visiting told of an incident, family health needs
assessment not updated.

Child Charlie section 4, Table 1 (Somerset Public Health Nursing): "PHNs to: (i) Update the
Family Health Needs Assessment (FHNA) at every core contact and when new needs/risks are
identified by PHN or shared by another agency. (ii) Use the risk and protective factors tool to
analyse the child/family's needs".

A notification to a health visiting (``phn/``) agency whose ``about`` names an incident in the
child's view is a risk "shared by another agency": that agency should complete an FHNA
(``assessment.completed`` with kind ``FHNA``) recorded at or after the notification, within ten
working days. A later FHNA resolves the flag. One flag per notification. Concerns: the notified
agency.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_from, incident_names, late, timelines
from policies.view import ChildView

WORKING_DAYS = 10


class HealthAssessmentNotUpdated(Policy):
    id = "health-assessment-not-updated"
    version = 1
    severity = Severity.MEDIUM
    title = "Health visiting told of an incident, family health needs assessment not updated"
    source = "CSPR Child Charlie 4 (Table 1, Public Health Nursing (i), (ii))"
    explanation = (
        "Public health nursing received police reports of Charlie's incidents, but the family's "
        "health needs assessment did not change with them. When health visiting is told of an "
        "incident, it should update the family health needs assessment within ten working days. "
        "Medium: contact may be happening, but without the risk in the assessment."
    )
    action = "Update the family health needs assessment (assessment.completed, kind FHNA)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        incidents = incident_names(view.of_type("incident.reported"))
        assessments = timelines(
            (a for a in view.of_type("assessment.completed") if a.data["kind"] == "FHNA"), lambda a: a.source
        )
        for notification in view.of_type("notification.sent"):
            phn = str(notification.data["to"])
            if agency_kind(phn) != "phn" or incidents.isdisjoint(notification.data["about"]):
                continue
            due = due_after_working_days(notification.recordedtime, WORKING_DAYS)
            gap = late(first_from(assessments, phn, notification.recordedtime), due)
            if gap is None:
                continue
            yield Finding(
                key=notification.id,
                due=due,
                evidence=(notification.id,),
                concerns=(phn,),
                detail=f"{phn} told of {', '.join(map(str, notification.data['about']))}; FHNA not updated",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
