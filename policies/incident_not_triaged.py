"""incident-not-triaged: an incident with children present is not triaged within a working day.

Child Charlie 2.4 (table): incident 3 was "not referred to DAT (DAT suspended ... due to
staffing/capacity issues)"; section 5: "two domestic abuse incidents were not considered by DAT,
one because the incident was not referred and the other because the DAT did not operate over
the Christmas holiday period".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    Anchors,
    Timeline,
    due_after_working_days,
    extend_timelines,
    first_from,
    late,
    timelines,
)
from policies.view import ChildView, Event


class IncidentNotTriaged(FoldingPolicy):
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

    def start(self, view: ChildView) -> Fold:
        # A triage counts whenever it was recorded (even before the incident reached the ledger).
        triaged = timelines(view.of_type("incident.triaged"), _ref)
        anchors = Anchors()
        for incident in view.of_type("incident.reported"):
            if incident.data.get("children_present"):
                anchors.judge(incident, _judge(incident, triaged))
        anchors.context = triaged
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """An incident is judged by its triages alone: judge new incidents, and those of the
        references new triages name."""
        anchors: Anchors = fold.state
        triages = [e for e in added if e.type == "incident.triaged"]
        extend_timelines(anchors.context, triages, _ref)
        new = [e for e in added if e.type == "incident.reported" and e.data.get("children_present")]
        for incident in [*anchors.called(str(_ref(t)) for t in triages), *new]:
            anchors.judge(incident, _judge(incident, anchors.context))
        return anchors.fold()


def _ref(triage: Event) -> Hashable:
    return triage.data["incident_ref"]


def _judge(incident: Event, triaged: dict[Hashable, Timeline]) -> Iterator[Finding]:
    ref = incident.data["incident_ref"]
    due = due_after_working_days(incident.recordedtime, 1)
    gap = late(first_from(triaged, ref), due)
    if gap is None:
        return
    yield Finding(
        key=incident.id,
        due=due,
        evidence=(incident.id,),
        concerns=(incident.source,),  # the reporting force owns getting it triaged
        detail=f"incident {ref} not triaged within one working day",
        resolved_by=gap.resolved_by,
        resolved_at=gap.resolved_at,
    )
