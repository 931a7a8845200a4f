"""mutual-allegations-unassessed: claims and counter-claims with no assessment of who does what.

Family A, theme "Domestic Abuse": "Making assumptions about who is the victim and who is the
perpetrator in a family can lead to ineffective plans. When there are claims and counter claims
it is vital to unpick 'who does what to who'". Child Charlie 1.4: in one incident "both parents
made allegations against each other".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import domestic_abuse_incidents, due_after_working_days, first_after
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
        events = view.effective()
        trigger = _first_trigger(domestic_abuse_incidents(events))
        if trigger is None:
            return
        later, earlier = trigger
        due = due_after_working_days(later.recordedtime, 10)
        assessments = [
            e
            for e in events
            if e.type == "assessment.completed"
            and e.data["kind"] in ASSESSMENTS
            and e.recordedtime >= later.recordedtime
        ]
        if any(a.recordedtime < due for a in assessments):
            return
        late = first_after(assessments, due)
        refs = ", ".join(str(e.data.get("incident_ref")) for e in (earlier, later) if e is not None)
        yield Finding(
            key=later.id,
            due=due,
            evidence=tuple(e.id for e in (earlier, later) if e is not None),
            concerns=tuple(sorted({e.source for e in (earlier, later) if e is not None})),
            detail=f"counter-allegations in incident(s) {refs} not assessed",
            resolved_by=late.id if late else None,
            resolved_at=late.recordedtime if late else None,
        )


def _roles(incident: Event) -> dict[str, str]:
    return {p["person"]: p["role"] for p in incident.data.get("parties", ())}


def _first_trigger(incidents: list[Event]) -> tuple[Event, Event | None] | None:
    """(the incident that completes the picture, the earlier one it mirrors or None)."""
    ordered = sorted(incidents, key=lambda e: (e.recordedtime, e.id))
    for index, incident in enumerate(ordered):
        roles = _roles(incident)
        if "counter-allegation" in roles.values():
            return incident, None
        for earlier in ordered[:index]:
            before = _roles(earlier)
            for a, role_a in roles.items():
                for b, role_b in roles.items():
                    if (
                        role_a == "victim"
                        and role_b in CONCERN_ROLES
                        and before.get(b) == "victim"
                        and before.get(a) in CONCERN_ROLES
                    ):
                        return incident, earlier
    return None
