"""under-five-not-notified-to-health-visiting: a domestic-abuse incident with a child under five,
and health visiting not told.

Child Charlie 2.6: "The Police already had an arrangement to share information about domestic
abuse incidents involving children under five with PHN". Operation Encompass tells schools; a
child under five is usually at no school, so health visiting is the universal service that sees
the child, and (Table 1, PHN) must hear of "new needs/risks ... shared by another agency".

For each domestic-abuse incident in the view of a child under five on the London day the incident
happened (age from the ``child.registered`` date of birth; a child whose dob is not recorded is
not judged), a notification to a ``phn/`` agency naming the incident must be recorded within one
working day of the incident's recording. A later one resolves the flag. Concerns: the agency that
recorded the incident.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from ledger.vocabulary import agency_kind
from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.calendar import london_day
from policies.facts import (
    Anchors,
    age_on,
    child_dob,
    domestic_abuse_incidents,
    due_after_working_days,
    earliest,
    late,
)
from policies.view import ChildView, Event

UNDER = 5


class UnderFiveNotNotifiedToHealthVisiting(FoldingPolicy):
    id = "under-five-not-notified-to-health-visiting"
    version = 1
    severity = Severity.HIGH
    title = "Domestic-abuse incident with a child under five not notified to health visiting"
    source = "CSPR Child Charlie 2.6; Table 1 (Public Health Nursing)"
    explanation = (
        "Charlie was a baby: no school would hear of his incidents through Operation Encompass. "
        "For a child under five, health visiting is the service that sees the child at home, and "
        "it must be told of a domestic-abuse incident within one working day. High: a baby "
        "cannot tell anyone, and the health visitor may be the only professional in the home."
    )
    action = "Notify health visiting (notification.sent to the phn/ agency, naming the incident)."

    def start(self, view: ChildView) -> Fold:
        anchors = Anchors()
        anchors.context = child_dob(view.of_type("child.registered"))
        for incident in domestic_abuse_incidents(view.of_type("incident.reported")):
            anchors.judge(incident, _judge(view, incident, anchors.context))
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """An incident is judged by the child's date of birth and the notifications naming it:
        judge new incidents and those new notifications name (a new registration: start afresh)."""
        anchors: Anchors = fold.state
        if any(e.type == "child.registered" for e in added):
            return None
        new = domestic_abuse_incidents(e for e in added if e.type == "incident.reported")
        for incident in [*anchors.about(e for e in added if e.type == "notification.sent"), *new]:
            anchors.judge(incident, _judge(view, incident, anchors.context))
        return anchors.fold()


def _judge(view: ChildView, incident: Event, dob: date | None) -> Iterator[Finding]:
    if dob is None or age_on(dob, london_day(incident.time)) >= UNDER:
        return
    told = (n for n in view.notifications_about(incident) if agency_kind(str(n.data["to"])) == "phn")
    due = due_after_working_days(incident.recordedtime, 1)
    gap = late(earliest(told), due)
    if gap is None:
        return
    yield Finding(
        key=incident.id,
        due=due,
        evidence=(incident.id,),
        concerns=(incident.source,),
        detail=f"health visiting not told of incident {incident.data.get('incident_ref')} (under 5)",
        resolved_by=gap.resolved_by,
        resolved_at=gap.resolved_at,
    )
