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

from dataclasses import replace
from datetime import datetime, timedelta

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import Timeline, domestic_abuse_incidents
from policies.view import ChildView, Event

WINDOW = timedelta(days=365)


class RepeatIncidents(FoldingPolicy):
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

    def start(self, view: ChildView) -> Fold:
        walk = _Walk()
        found: list[Finding] = []
        events = [
            *domestic_abuse_incidents(view.of_type("incident.reported")),
            *view.of_type("referral.made", "assessment.completed", "referral.closed"),
        ]
        for event in sorted(events, key=_walk_order):
            walk.step(event, found)
        return Fold(found, walk)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """Events recorded after everything walked so far: the walk goes on from where it was
        (what a flag says depends only on what was recorded by then; a flag waiting for a
        response is resolved by the first response that comes)."""
        for event in sorted(added, key=_walk_order):
            if event.type != "incident.reported" or event.data.get("domestic_abuse") is True:
                fold.state.step(event, fold.findings)
        return fold


def _walk_order(event: Event) -> tuple[datetime, int, str]:
    """Recorded order; at one recorded time, responses and closures before incidents: a response
    recorded with the third incident answers it (and a closure with it ends the response)."""
    return (event.recordedtime, event.type == "incident.reported", event.id)


class _Walk:
    """The incidents, responses and closures so far, walked in ``_walk_order``: a flag is raised
    at the incident that completes a pattern nothing answered, and waits for the first response
    recorded at or after it; incidents recorded up to that response start no new pattern."""

    def __init__(self) -> None:
        self.responses = Timeline(())
        self.closed: dict[str, datetime] = {}  # referral_ref -> its first closure
        self.after: datetime | None = None  # when the last resolving response was recorded
        self.counted: list[Event] = []  # the incidents recorded since then, in recorded order
        self.waiting: int | None = None  # index of the flag no response has resolved yet

    def step(self, event: Event, found: list[Finding]) -> None:
        if event.type == "referral.closed":
            ref, at = event.data["referral_ref"], event.recordedtime
            self.closed[ref] = min(self.closed.get(ref, at), at)
        elif event.type != "incident.reported":
            if not _is_response(event):
                return
            self.responses.append(event)
            if self.waiting is not None:
                found[self.waiting] = replace(
                    found[self.waiting], resolved_by=event.id, resolved_at=event.recordedtime
                )
                self.after, self.counted, self.waiting = event.recordedtime, [], None
        elif self.waiting is None and (self.after is None or event.recordedtime > self.after):
            self._incident(event, found)

    def _incident(self, latest: Event, found: list[Finding]) -> None:
        window = _latest_three(self.counted, latest)
        self.counted.append(latest)
        if window is None:
            return
        # The pattern is known now, when the last of the three is recorded.
        since, known = window[0].recordedtime, latest.recordedtime
        if any(_open_at(r, self.closed, known) for r in self.responses.between(since, known)):
            return
        response = self.responses.first_from(known)  # recorded with it (ties are walked first)
        in_time = sorted(window, key=lambda e: e.sort_key)
        found.append(
            Finding(
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
        )
        if response is None:
            self.waiting = len(found) - 1
        else:
            self.after, self.counted = response.recordedtime, []


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
