"""mutual-allegations-unassessed: claims and counter-claims with no assessment of who does what.

Family A, theme "Domestic Abuse": "Making assumptions about who is the victim and who is the
perpetrator in a family can lead to ineffective plans. When there are claims and counter claims
it is vital to unpick 'who does what to who'". Child Charlie 1.4: in one incident "both parents
made allegations against each other".

One gap per incident that completes a picture of counter-claims: an incident recording a
counter-allegation, or one where the same two people appear with victim and person of concern
the other way round from an earlier domestic-abuse incident. A DASH or child and family
assessment recorded at or after that incident must follow; due at the first instant after the
10th working day (1 ms after ``working_days_deadline``). Concerns: the agencies that recorded the
incidents.
"""

from __future__ import annotations

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    Anchors,
    Timeline,
    domestic_abuse_incidents,
    due_after_working_days,
    late,
    recorded_key,
)
from policies.view import CONCERN_ROLES, ChildView, Event

ASSESSMENTS = frozenset({"DASH", "child-and-family"})


class MutualAllegationsUnassessed(FoldingPolicy):
    id = "mutual-allegations-unassessed"
    version = 1
    severity = Severity.MEDIUM
    title = "Counter-allegations between adults with no assessment"
    source = "CSPR Family A: domestic abuse ('who does what to who')"
    explanation = (
        "In Family A assumptions about who was the victim led to ineffective plans; the father was "
        "later killed by the mother. When the same two adults are victim and person of concern in "
        "turn, or an incident records a counter-allegation, a DASH or child and family assessment "
        "must follow within ten working days."
    )
    action = "Complete a DASH or child and family assessment that unpicks who does what to whom."

    def start(self, view: ChildView) -> Fold:
        state = _State(
            Timeline(e for e in view.of_type("assessment.completed") if e.data["kind"] in ASSESSMENTS)
        )
        incidents = domestic_abuse_incidents(view.of_type("incident.reported"))
        for incident in sorted(incidents, key=recorded_key):
            state.incident(incident)
        return state.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """Incidents and assessments recorded after every earlier one: an incident is compared
        with those recorded before it, so new incidents only add triggers; a new assessment can
        only answer triggers that nothing has answered yet."""
        state: _State = fold.state
        assessments = [e for e in added if e.type == "assessment.completed" and e.data["kind"] in ASSESSMENTS]
        for assessment in assessments:
            state.assessments.append(assessment)
        for trigger in list(state.unanswered) if assessments else ():
            state.judge(trigger, state.anchors.context[trigger])
        for incident in domestic_abuse_incidents(e for e in added if e.type == "incident.reported"):
            state.incident(incident)
        return state.fold()


class _State:
    """The incidents walked in recorded order: the earliest incident with each (victim, person
    of concern) pair, the triggers judged, and those no assessment has answered yet."""

    def __init__(self, assessments: Timeline) -> None:
        self.assessments = assessments
        self.anchors = Anchors()
        self.anchors.context = {}  # trigger id -> (the trigger, the earlier incident it mirrors)
        # (victim, person of concern) -> the earliest incident with that pair: each incident is
        # then compared with the pairs seen before it, not with every earlier one (issue 13).
        self.first_with: dict[tuple[str, str], Event] = {}
        self.unanswered: dict[str, None] = {}  # ids of triggers with no assessment after them

    def fold(self) -> Fold:
        return Fold(self.anchors.fold().findings, self)

    def incident(self, incident: Event) -> None:
        """Each incident that records a counter-allegation (with None), or that mirrors an
        earlier one (the same two people, victim and person of concern the other way round;
        with the earliest such incident) is a trigger. An incident is judged when it is
        recorded, so incidents come in recorded order."""
        pairs = _pairs(_roles(incident))
        if any("counter-allegation" in r for r in _roles(incident).values()):
            self.judge(incident.id, (incident, None))
        else:
            mirrored = [self.first_with[(b, a)] for a, b in pairs if (b, a) in self.first_with]
            if mirrored:
                self.judge(incident.id, (incident, min(mirrored, key=recorded_key)))
        for pair in pairs:
            self.first_with.setdefault(pair, incident)

    def judge(self, trigger: str, found: tuple[Event, Event | None]) -> None:
        later, earlier = found
        self.anchors.context[trigger] = found
        # One gap per incident that completes the picture; the assessment must follow it.
        due = due_after_working_days(later.recordedtime, 10)
        answer = self.assessments.first_from(later.recordedtime)
        if answer is None:
            self.unanswered[trigger] = None
        else:
            self.unanswered.pop(trigger, None)
        gap = late(answer, due)
        incidents = (later,) if earlier is None else (earlier, later)
        self.anchors.judge(
            later,
            ()
            if gap is None
            else (
                Finding(
                    key=later.id,
                    due=due,
                    evidence=tuple(e.id for e in incidents),
                    concerns=tuple(sorted({e.source for e in incidents})),
                    detail="counter-allegations in incident(s) "
                    + ", ".join(str(e.data["incident_ref"]) for e in incidents)
                    + " not assessed",
                    resolved_by=gap.resolved_by,
                    resolved_at=gap.resolved_at,
                ),
            ),
        )


def _roles(incident: Event) -> dict[str, set[str]]:
    """Person -> roles in the incident (one person may be both victim and counter-alleged)."""
    roles: dict[str, set[str]] = {}
    for party in incident.data.get("parties", ()):
        roles.setdefault(party["person"], set()).add(party["role"])
    return roles


def _pairs(roles: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(victim, person of concern) pairs of two different people in one incident."""
    return [
        (a, b)
        for a, roles_a in roles.items()
        for b, roles_b in roles.items()
        if a != b and "victim" in roles_a and roles_b & CONCERN_ROLES
    ]
