"""overnight-contact-unexplored: a baby's contact with a risky non-resident parent not explored.

Child Charlie 1.6: risk factors "co-sleeping with a heavily intoxicated adult"; 2.13: "Charlie
stayed overnight with father two nights per week and every other weekend"; section 5 practice
learning 3: "the importance of practitioners explicitly exploring overnight contact arrangements
for children under two years of age".

The clock starts at the later of two recorded facts: the parent figure's latest ``person.linked``
saying they do not live with the child, and the first sign of concern (a domestic-abuse incident
naming them as a person of concern, or the status from which they are known to misuse
substances). "Under 2" is the child's age (``child.registered`` dob) on the London calendar day
of that later fact. Due at the first instant after the 10th working day (1 ms after
``working_days_deadline``); an arrangement recorded after that resolves the flag. Concerns: the
agencies whose records make up the risk (the link and the concern).

Version 2: the duty is judged as the partnership knew it over time, not as the history ends.
Version 1 read the person's *latest* link and status, so a later link (they moved in, or a
second "lives elsewhere" link that moved the clock) or a status saying they no longer misuse
substances dropped a finding already raised: a live projector kept it, resolved "by the data
changing", while a replay never raised it (issue 13). Now the records are walked in recorded
order (``policies.facts.spells``): the person is owed an exploration from the first moment all
of it held (a parent figure, last recorded as living elsewhere, a concern known, the child under
two that day) until one of it stops holding. A duty that stopped before the ten working days were
up was never a gap; one that stopped later leaves the gap standing, resolved by the record that
ended it (they now live with the child, or no concern remains: there is no contact arrangement
with a risky parent left to explore), or a registration giving a date of birth that makes the
child two or older that day, unless an arrangement was recorded first. Turning two alone ends
nothing: the calendar does not end a duty mid-way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import date
from typing import Any

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.calendar import london_day
from policies.facts import (
    Spell,
    age_on,
    due_after_working_days,
    earliest,
    first_gap,
    parent_figures,
    recorded,
    recorded_key,
    spells,
)
from policies.view import CONCERN_ROLES, ChildView, Event


class OvernightContactUnexplored(FoldingPolicy):
    id = "overnight-contact-unexplored"
    version = 2
    severity = Severity.HIGH
    title = "Contact arrangements with a non-resident parent of concern not explored (child under 2)"
    source = "CSPR Child Charlie 1.6, 5 (practice learning 3)"
    explanation = (
        "Nobody asked where Charlie slept when he was with his father, who drank heavily; he "
        "stayed overnight twice a week. For a child under two, contact with a parent figure who "
        "lives elsewhere and is a person of concern or misuses substances must be explored and "
        "recorded within ten working days."
    )
    action = (
        "Explore and record the contact arrangements, including overnight stays "
        "(contact-arrangement.recorded)."
    )

    def start(self, view: ChildView) -> Fold:
        arrangements: dict[str, Event] = {}  # person -> first-recorded arrangement
        for arrangement in sorted(view.of_type("contact-arrangement.recorded"), key=recorded_key):
            arrangements.setdefault(arrangement.data["person"], arrangement)
        concerns = _first_concerns(view.of_type("incident.reported"))
        first = {incident.id: incident for incident in concerns.values()}.values()  # each once
        walk = recorded(view.of_type("child.registered", "person.linked", "person.status"), first)
        state = _Kept(arrangements, set(concerns), spells(_steps(walk)))
        return Fold(list(state.judged()), state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Only a person's first incident of concern and first arrangement count: a new link,
        status or registration, or an incident naming someone of concern for the first time,
        starts afresh; a person's first arrangement re-judges the few persons owed."""
        state: _Kept = fold.state
        if any(e.type in ("child.registered", "person.linked", "person.status") for e in added):
            return None
        if not set(_first_concerns([e for e in added if e.type == "incident.reported"])) <= state.concerned:
            return None
        new = [
            e
            for e in added
            if e.type == "contact-arrangement.recorded" and e.data["person"] not in state.arrangements
        ]
        for arrangement in new:
            state.arrangements.setdefault(arrangement.data["person"], arrangement)
        return Fold(list(state.judged()), state) if new else fold


class _Kept:
    """Each person's first arrangement, who has been named of concern, and the spells owed."""

    def __init__(
        self, arrangements: dict[str, Event], concerned: set[str], owed: dict[Hashable, list[Spell]]
    ) -> None:
        self.arrangements, self.concerned, self.owed = arrangements, concerned, owed

    def judged(self) -> Iterator[Finding]:
        for person, owed in sorted(self.owed.items()):
            first = self.arrangements.get(str(person))
            gap = first_gap(owed, lambda spell: due_after_working_days(spell.start, 10), first)
            if gap is None:
                continue
            spell, due, late = gap
            link, concern = spell.payload
            yield Finding(
                key=str(person),
                due=due,
                evidence=(link.id, concern.id),
                concerns=tuple(sorted({link.source, concern.source})),
                detail=f"no contact arrangement recorded for {person}, who does not live with the child",
                resolved_by=late.resolved_by,
                resolved_at=late.resolved_at,
            )


def _first_concerns(incidents: list[Event]) -> dict[str, Event]:
    """Per person, the first-recorded domestic-abuse incident naming them of concern: only it
    can begin a duty (later ones change nothing), so the walk grows with the people, not with
    the incidents."""
    first: dict[str, Event] = {}
    for incident in incidents:
        if incident.data.get("domestic_abuse") is not True:
            continue
        for party in incident.data.get("parties", ()):
            if party["role"] not in CONCERN_ROLES:
                continue
            known = first.get(party["person"])
            if known is None or recorded_key(incident) < recorded_key(known):
                first[party["person"]] = incident
    return first


def _steps(walk: list[Event]) -> Iterator[tuple[Event, dict[Hashable, Any]]]:
    """After each record (recorded order), the persons owed an exploration, with the link and
    the concern that made it owed when it began."""
    dob: date | None = None
    parents: set[str] = set()
    links: dict[str, Event] = {}  # person -> latest person.linked
    incident: dict[str, Event] = {}  # person -> first domestic-abuse incident naming them of concern
    misuse_since: dict[str, Event] = {}  # person -> status from which they are known to misuse
    owed: dict[Hashable, Any] = {}
    for event in walk:
        if event.type == "child.registered":
            dob = date.fromisoformat(event.data["dob"])
        if event.type in ("child.registered", "person.linked"):
            parents |= parent_figures((event,))
        if event.type == "person.linked":
            links[event.data["person"]] = event
        elif event.type == "person.status":
            misuse = event.data.get("substance_misuse")
            if misuse is True:
                misuse_since.setdefault(event.data["person"], event)
            elif misuse is False:
                misuse_since.pop(event.data["person"], None)
        elif event.type == "incident.reported":
            for party in event.data.get("parties", ()):
                if party["role"] in CONCERN_ROLES:
                    incident.setdefault(party["person"], event)
        now: dict[Hashable, Any] = {}
        for person in sorted(parents):
            link = links.get(person)
            concerns = [e for e in (incident.get(person), misuse_since.get(person)) if e is not None]
            if link is None or link.data.get("lives_with_child") is not False or not concerns:
                continue
            if person in owed and event.type != "child.registered":
                now[person] = owed[person]  # the calendar alone ends nothing
            elif dob is not None and age_on(dob, london_day(event.recordedtime)) < 2:
                now[person] = owed.get(person) or (link, earliest(concerns))
        owed = now
        yield event, owed
