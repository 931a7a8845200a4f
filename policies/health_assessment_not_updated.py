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

from policies.base import Fold, FoldingPolicy, Severity
from policies.facts import PhnNotified, first_from, incident_names, timelines
from policies.view import ChildView, Event

WORKING_DAYS = 10


class HealthAssessmentNotUpdated(FoldingPolicy):
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

    def start(self, view: ChildView) -> Fold:
        state = PhnNotified(
            incident_names(view.of_type("incident.reported")), WORKING_DAYS, "FHNA not updated"
        )
        assessments = timelines(
            (a for a in view.of_type("assessment.completed") if _fhna(a)), lambda a: a.source
        )
        for notification in view.of_type("notification.sent"):
            if state.counted(notification):
                phn = str(notification.data["to"])
                state.judge(notification, first_from(assessments, phn, notification.recordedtime))
        return state.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """A new notification has no assessment after it yet, and a new FHNA answers the
        notifications to its agency still unanswered (``PhnNotified.resume``)."""
        state: PhnNotified = fold.state
        return state.resume(added, _fhna)


def _fhna(event: Event) -> bool:
    return event.type == "assessment.completed" and event.data["kind"] == "FHNA"
