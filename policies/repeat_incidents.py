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

Version 3 (issue 13): the pattern is looked for in the order the incidents were *recorded*, and
the flag is keyed on the incident whose recording completed it. Version 2 took windows of three
incidents consecutive in the order they *happened* and keyed the flag on the latest of the three:
an incident reported late (it happened before incidents already recorded) re-cut every window,
so the flag raised when the pattern became known was found later under another key. Live, that
flag was resolved "by the data changing" and a new one raised; a replay of the same ledger never
raised the first, so live and replay differed. For a lead it is the same pattern, known since
the same moment, and it must stay the same flag. Now a flag depends only on what had been
recorded when it was raised: the three are the incident just recorded and the two most recently
recorded before it that span at most 365 days with it (the latest three: a response since the
first of them answers), counting only incidents recorded after the response that resolved the
previous flag. What was known at a moment never changes later, so the same ledger raises the
same flags whether it is evaluated once (a replay) or after every event (live), in any order of
delivery within a batch; only corrections and withdrawals, which change what was known, move
them (docs/notes/rule-evaluation.md, "Flags that stay the same flag").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from policies.base import Finding, Policy, Severity
from policies.facts import Timeline, domestic_abuse_incidents, recorded_key
from policies.view import ChildView, Event

WINDOW = timedelta(days=365)


class RepeatIncidents(Policy):
    id = "repeat-incidents"
    version = 3
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
        incidents = sorted(domestic_abuse_incidents(view.of_type("incident.reported")), key=recorded_key)
        responses = Timeline(
            e for e in view.of_type("referral.made", "assessment.completed") if _is_response(e)
        )
        closed: dict[str, datetime] = {}
        for closure in view.of_type("referral.closed"):
            ref = closure.data["referral_ref"]
            closed[ref] = min(closed.get(ref, closure.recordedtime), closure.recordedtime)
        after = None  # incidents recorded by a response that resolved a flag start no new one
        counted: list[Event] = []  # the incidents recorded since then, in recorded order
        for latest in incidents:
            if after is not None and latest.recordedtime <= after:
                continue
            window = _latest_three(counted, latest)
            counted.append(latest)
            if window is None:
                continue
            # The pattern is known now, when the last of the three is recorded.
            since, known = window[0].recordedtime, latest.recordedtime
            if any(_open_at(r, closed, known) for r in responses.between(since, known)):
                continue
            response = responses.first_from(known)
            in_time = sorted(window, key=lambda e: e.sort_key)
            yield Finding(
                key=latest.id,
                due=known,
                evidence=tuple(e.id for e in in_time),
                concerns=tuple(sorted({e.source for e in window})),  # the forces that saw the pattern
                detail="incidents "
                + ", ".join(str(e.data.get("incident_ref")) for e in in_time)
                + " within 365 days",
                resolved_by=response.id if response else None,
                resolved_at=response.recordedtime if response else None,
            )
            if response is None:
                return
            after, counted = response.recordedtime, []


def _latest_three(earlier: list[Event], latest: Event) -> tuple[Event, Event, Event] | None:
    """``latest`` and the two most recently recorded of ``earlier`` (in recorded order) whose
    times span at most WINDOW with it, in recorded order; None if no two do."""
    for i in range(len(earlier) - 1, 0, -1):
        second = earlier[i]
        low, high = min(second.time, latest.time), max(second.time, latest.time)
        if high - low > WINDOW:
            continue
        for first in reversed(earlier[:i]):
            if max(high, first.time) - min(low, first.time) <= WINDOW:
                return first, second, latest
    return None


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
