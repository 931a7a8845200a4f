"""repeat-incidents: a third domestic-abuse incident within a year, still treated one at a time.

Child Charlie 1.4-1.5: five incidents were reported in the baby's 16 weeks of life and "the
Police were the only agency that were aware of all five". Section 5, practice learning 1: "The
response of all partner agencies ... was 'incident' led ... the pattern of perpetrator behaviour
[must be] understood".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from policies.base import Finding, Policy, Severity
from policies.facts import domestic_abuse_incidents, first_after
from policies.view import ChildView, Event

WINDOW = timedelta(days=365)


class RepeatIncidents(Policy):
    id = "repeat-incidents"
    version = 1
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
        events = view.effective()
        incidents = sorted(domestic_abuse_incidents(events), key=lambda e: (e.time, e.recordedtime, e.id))
        responses = [e for e in events if _is_response(e)]
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
            if any(since <= r.recordedtime <= known for r in responses):
                continue
            response = first_after(responses, known)
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


def _is_response(event: Event) -> bool:
    if event.type == "referral.made":
        return str(event.data["to"]).startswith(("marac/", "csc/"))
    return event.type == "assessment.completed" and event.data.get("kind") == "child-and-family"
