"""repeat-incidents: a third domestic-abuse incident within a year, still treated one at a time.

Child Charlie 1.4-1.5: five incidents were reported in the baby's 16 weeks of life and "the
Police were the only agency that were aware of all five". Section 5, practice learning 1: "The
response of all partner agencies ... was 'incident' led ... the pattern of perpetrator behaviour
[must be] understood".

A response is a referral to children's social care or MARAC, or a child and family assessment,
recorded between the first incident of the three and the moment all three were known. Version 2:
a referral closed before the pattern existed (all three incidents known) does not answer it; it
was closed on the strength of fewer incidents, which is the incident-led response the review
describes. A referral counts only if it was still open when the pattern was known.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from policies.base import Finding, Policy, Severity
from policies.facts import Timeline, domestic_abuse_incidents
from policies.view import ChildView, Event

WINDOW = timedelta(days=365)


class RepeatIncidents(Policy):
    id = "repeat-incidents"
    version = 2
    severity = Severity.HIGH
    title = "Three domestic-abuse incidents in a year with no referral or assessment"
    source = "CSPR Child Charlie 1.4, 5 (incident-led response)"
    explanation = (
        "Treating each incident on its own hid the pattern in Charlie's family: five incidents in "
        "sixteen weeks. From the third incident within 365 days, the child needs a referral to "
        "children's social care or MARAC, or a child and family assessment. High: a rising "
        "pattern of abuse is the risk the review found no single agency could see."
    )
    action = "Refer to children's social care or MARAC, or complete a child and family assessment."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        incidents = domestic_abuse_incidents(view.of_type("incident.reported"))  # time order
        responses = Timeline(
            e for e in view.of_type("referral.made", "assessment.completed") if _is_response(e)
        )
        closed: dict[str, datetime] = {}
        for closure in view.of_type("referral.closed"):
            ref = closure.data["referral_ref"]
            closed[ref] = min(closed.get(ref, closure.recordedtime), closure.recordedtime)
        after = None  # incidents before a response that resolved a flag start no new one
        for third_index in range(2, len(incidents)):
            first, third = incidents[third_index - 2], incidents[third_index]
            if after is not None and first.recordedtime <= after:
                continue
            if third.time - first.time > WINDOW:
                continue
            window = incidents[third_index - 2 : third_index + 1]
            # The pattern is known once all three are recorded (one may be recorded late).
            since = min(e.recordedtime for e in window)
            known = max(e.recordedtime for e in window)
            if any(_open_at(r, closed, known) for r in responses.between(since, known)):
                continue
            response = responses.first_from(known)
            yield Finding(
                key=third.id,
                due=known,
                evidence=tuple(e.id for e in window),
                concerns=tuple(sorted({e.source for e in window})),  # the forces that saw the pattern
                detail="incidents "
                + ", ".join(str(e.data.get("incident_ref")) for e in window)
                + " within 365 days",
                resolved_by=response.id if response else None,
                resolved_at=response.recordedtime if response else None,
            )
            if response is None:
                return
            after = response.recordedtime


def _open_at(response: Event, closed: dict[str, datetime], at: datetime) -> bool:
    """A referral answers a pattern only if it was not already closed when the pattern existed."""
    if response.type != "referral.made":
        return True
    closure = closed.get(response.data["referral_ref"])
    return closure is None or closure > at


def _is_response(event: Event) -> bool:
    if event.type == "referral.made":
        return str(event.data["to"]).startswith(("marac/", "csc/"))
    return event.type == "assessment.completed" and event.data.get("kind") == "child-and-family"
