"""safety-plan-breached: contact with a person a safety plan says the child must not see.

Child Charlie 2.8: mother said "her intention was not to allow Charlie to have contact with
father" while a further incident had happened the day before; 2.11: "the health visitor advised
mother that Charlie should have no contact with father until a safety plan was implemented";
2.12-2.13: contact continued, including overnight stays.

A breach is judged against the version of each plan (by ``plan_ref``) in force when the incident
or contact happened (event time); it is due when both plan and breach are recorded. It is
resolved by a newer ``safety-plan.recorded`` with the same ``plan_ref`` made after the breach
(the plan revisited, whatever it now says); a revision recorded before the breach was known means
there was never a gap. Concerns: the plan's author and the agency that recorded the breach.

Version 2: the plan in force is the one the partnership knew of when the breach became known
(its due), not the one the history ends with. Version 1 took the latest version *by event time*
from all of the history, so a version recorded later but dated before the breach replaced the
plan a flag had been raised against: the finding vanished (a live projector kept it, resolved "by
the data changing", while a replay never raised it; issue 13). Now each version dated by the
breach is judged as of its own due: it was in force then unless a version dated after it had
been recorded by then (a newer plan dated by the breach is judged itself; one dated after the
breach means the plan was revisited before the breach was known: never a gap). A version
recorded after the due, whatever its date, is the plan being revisited: it resolves the finding.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from policies.base import Finding, Policy, Severity
from policies.facts import parties, recorded_key
from policies.view import ChildView, Event


class SafetyPlanBreached(Policy):
    id = "safety-plan-breached"
    version = 2
    severity = Severity.HIGH
    title = "Safety plan breached: contact with a person the plan excludes"
    source = "CSPR Child Charlie 2.8, 2.11-2.13"
    explanation = (
        "Charlie's safety plan was 'no contact with father'; agencies learned of contact, and of "
        "overnight stays, and did not explore the risk. When an incident with the child present "
        "names an excluded person, or a contact arrangement shows contact the plan forbids, the "
        "plan has failed and must be revisited."
    )
    action = "Review the safety plan with the family now and record the revised plan (same plan_ref)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        versions: dict[str, list[Event]] = {}  # plan_ref -> its versions in time order
        for plan in view.of_type("safety-plan.recorded"):
            versions.setdefault(plan.data["plan_ref"], []).append(plan)
        plans = {ref: _Versions(found) for ref, found in sorted(versions.items())}
        if not plans:
            # Nothing to breach: the incidents and arrangements are not read, so a child with no
            # plan is not judged again on each of them (issue 13: scanning every incident was
            # this rule's cost at 500 prior events); a plan's arrival is a change of what it read.
            return
        breaches = [
            e
            for e in view.of_type("incident.reported", "contact-arrangement.recorded")
            if e.type == "contact-arrangement.recorded" or e.data.get("children_present") is True
        ]
        for breach in breaches:
            for ref, plan_versions in plans.items():
                # The versions dated by the breach (event time): each is judged as of when the
                # breach would be known against it; versions dated after it revisit the plan.
                made = bisect_right(plan_versions.times, breach.time)
                for index in range(made):
                    plan = plan_versions.in_time_order[index]
                    # Known (due) once both the plan and the breach are recorded.
                    due = max(plan.recordedtime, breach.recordedtime)
                    revised = plan_versions.first_recorded_from[index + 1]
                    if revised is not None and revised.recordedtime <= due:
                        continue  # superseded, or revisited, by the time the breach was known
                    for term in plan.data["terms"]:
                        if not _breaches(term, breach):
                            continue
                        yield Finding(
                            key=f"{plan.id}|{breach.id}|{term['person']}",
                            due=due,
                            evidence=(plan.id, breach.id),
                            concerns=tuple(sorted({plan.source, breach.source})),
                            detail=(
                                f"plan {ref} ({term['contact']} for {term['person']}) "
                                f"breached by {breach.type} {breach.id}"
                            ),
                            resolved_by=revised.id if revised else None,
                            resolved_at=revised.recordedtime if revised else None,
                        )


class _Versions:
    """A plan's versions in time order, with, for each position, the first-recorded version
    from that position on (the first revision after a breach at that position) computed once:
    a breach is then judged in O(log n) instead of by scanning the plan's later versions."""

    def __init__(self, events: list[Event]) -> None:
        self.in_time_order = events
        self.times = [e.time for e in events]
        self.first_recorded_from: list[Event | None] = [None] * (len(events) + 1)
        for index in range(len(events) - 1, -1, -1):
            later = self.first_recorded_from[index + 1]
            event = events[index]
            self.first_recorded_from[index] = (
                event if later is None or recorded_key(event) < recorded_key(later) else later
            )


def _breaches(term: Mapping[str, Any], event: Event) -> bool:
    """``contact: none``: any incident naming the person, any arrangement with them;
    ``daytime-only``: an arrangement with them that includes overnight stays."""
    person, contact = term["person"], term["contact"]
    if contact == "none":
        if event.type == "incident.reported":
            return person in parties(event)
        return bool(event.data["person"] == person)
    if contact == "daytime-only":
        return (
            event.type == "contact-arrangement.recorded"
            and event.data["person"] == person
            and event.data.get("overnight") is True
        )
    return False
