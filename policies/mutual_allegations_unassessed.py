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

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import Timeline, domestic_abuse_incidents, due_after_working_days, late
from policies.view import CONCERN_ROLES, ChildView, Event

ASSESSMENTS = frozenset({"DASH", "child-and-family"})


class MutualAllegationsUnassessed(Policy):
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

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        assessments = Timeline(
            e for e in view.of_type("assessment.completed") if e.data["kind"] in ASSESSMENTS
        )
        for later, earlier in _triggers(domestic_abuse_incidents(view.of_type("incident.reported"))):
            # One gap per incident that completes the picture; the assessment must follow it.
            due = due_after_working_days(later.recordedtime, 10)
            gap = late(assessments.first_from(later.recordedtime), due)
            if gap is None:
                continue
            incidents = (later,) if earlier is None else (earlier, later)
            yield Finding(
                key=later.id,
                due=due,
                evidence=tuple(e.id for e in incidents),
                concerns=tuple(sorted({e.source for e in incidents})),
                detail="counter-allegations in incident(s) "
                + ", ".join(str(e.data["incident_ref"]) for e in incidents)
                + " not assessed",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )


def _roles(incident: Event) -> dict[str, set[str]]:
    """Person -> roles in the incident (one person may be both victim and counter-alleged)."""
    roles: dict[str, set[str]] = {}
    for party in incident.data.get("parties", ()):
        roles.setdefault(party["person"], set()).add(party["role"])
    return roles


def _triggers(incidents: list[Event]) -> Iterator[tuple[Event, Event | None]]:
    """Each incident that records a counter-allegation (with None), or that mirrors an earlier one
    (the same two people, victim and person of concern the other way round; with the earliest
    such incident). An incident is judged when it is recorded, so ordering is by recorded time."""
    # (victim, person of concern) -> the earliest incident with that pair: each incident is then
    # compared with the pairs seen before it, not with every earlier incident (issue 13).
    first_with: dict[tuple[str, str], Event] = {}
    for incident in sorted(incidents, key=lambda e: (e.recordedtime, e.id)):
        pairs = _pairs(_roles(incident))
        if any("counter-allegation" in r for r in _roles(incident).values()):
            yield incident, None
        else:
            mirrored = [first_with[(b, a)] for a, b in pairs if (b, a) in first_with]
            if mirrored:
                yield incident, min(mirrored, key=lambda e: (e.recordedtime, e.id))
        for pair in pairs:
            first_with.setdefault(pair, incident)


def _pairs(roles: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(victim, person of concern) pairs of two different people in one incident."""
    return [
        (a, b)
        for a, roles_a in roles.items()
        for b, roles_b in roles.items()
        if a != b and "victim" in roles_a and roles_b & CONCERN_ROLES
    ]
