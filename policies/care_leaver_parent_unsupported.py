"""care-leaver-parent-unsupported: a young care leaver is a parent and leaving care is not told.

Family A recommendation 8: "professionals in all partner agencies are aware of the
responsibilities for and services available to care leavers"; good practice: "Support is
available to care leavers until the age of 25".

Person status is folded across ``person.status`` events (latest value of each field), so the
clock starts when "care leaver" and an age are known, or at the first incident or referral about
the child if later; the person is owed support if they are under 25 on the London day the clock
starts (version 2: "until the age of 25" ends on the 25th birthday; version 1 also counted a
25-year-old, and read a once-recorded ``age`` that never moved on). Age is computed for that day:
from the person's ``dob`` where recorded, else from the latest recorded ``age`` plus the whole
years since it was recorded. That is the youngest the person can be (their birthday may fall just
after the age was recorded): when the partnership is unsure, support is not cut off on a guess.
Due at the first instant after the 10th working day (1 ms
after ``working_days_deadline``). Any notification to a ``leaving-care/`` agency about the child
before then counts. Concerns: the agency that first brought the child to the partnership's
attention (it holds the relationship with the family).

Version 3: the duty is judged as the partnership knew it over time, not as the history ends.
Version 2 read the person's status folded to the end, so a later status (no longer recorded as a
care leaver, or a date of birth making them older) dropped a finding already raised: a live
projector kept it, resolved "by the data changing", while a replay never raised it (issue 13).
Now the records are walked in recorded order (``policies.facts.spells``): the person is owed a
notification from the first moment all of it held (an incident or referral about the child, a
parent figure, known as a care leaver of known age, under 25 that day) until a status says they
are not a care leaver, or a status gives an age of 25 or more (the age first recorded was
wrong). Ended before the ten working days were up, it was never a gap; ended later, the gap
stands, resolved by that status unless leaving care was told first. A birthday alone ends
nothing: support, once owed, is not cut off by the calendar mid-way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import date
from typing import Any

from ledger.vocabulary import agency_kind
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
    spells,
)
from policies.view import ChildView, Event

SUPPORT_AGE_LIMIT = 25


class CareLeaverParentUnsupported(FoldingPolicy):
    id = "care-leaver-parent-unsupported"
    version = 3
    severity = Severity.MEDIUM
    title = "Parent is a care leaver (under 25) and leaving care services were not told"
    source = "CSPR Family A recommendation 8"
    explanation = (
        "Family A's mother was a care leaver; support is available to care leavers until 25, but "
        "only if the leaving care service knows. Within ten working days of the first incident or "
        "referral about the child, a leaving care service should be notified."
    )
    action = "Notify the leaving care service (notification.sent to a leaving-care/ agency)."

    def start(self, view: ChildView) -> Fold:
        notified = earliest(e for e in view.of_type("notification.sent") if _to_leaving_care(e))
        trigger = earliest(view.of_type("incident.reported", "referral.made"))
        people = view.of_type("child.registered", "person.linked", "person.status")
        # Only the first incident or referral starts a clock: later ones are left out of the walk,
        # which then grows with the links and statuses, not with the history.
        owed = spells(_steps(recorded((trigger,), people))) if trigger is not None else {}
        state = _Kept(trigger, notified, owed)
        return Fold(list(state.judged()), state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Once there is a trigger, a later incident or referral changes nothing, and only the
        first notification to leaving care answers: a new link or status (or a first trigger)
        starts afresh; the first such notification re-judges the few persons owed."""
        state: _Kept = fold.state
        if state.trigger is None or any(e.type in _PEOPLE for e in added):
            return None
        if state.notified is not None:
            return fold
        state.notified = earliest(e for e in added if e.type == "notification.sent" and _to_leaving_care(e))
        return fold if state.notified is None else Fold(list(state.judged()), state)


_PEOPLE = frozenset({"child.registered", "person.linked", "person.status"})


def _to_leaving_care(notification: Event) -> bool:
    return agency_kind(str(notification.data["to"])) == "leaving-care"


class _Kept:
    """The first trigger, the first notification to leaving care and the spells of each person."""

    def __init__(
        self, trigger: Event | None, notified: Event | None, owed: dict[Hashable, list[Spell]]
    ) -> None:
        self.trigger, self.notified, self.owed = trigger, notified, owed

    def judged(self) -> Iterator[Finding]:
        for person, owed in sorted(self.owed.items()):
            gap = first_gap(owed, lambda spell: due_after_working_days(spell.start, 10), self.notified)
            if gap is None:
                continue
            spell, due, late = gap
            trigger, status, age = spell.payload
            yield Finding(
                key=str(person),
                due=due,
                evidence=(trigger.id, status.id),
                concerns=(trigger.source,),
                detail=f"parent figure {person} is a care leaver aged {age}; leaving care not told",
                resolved_by=late.resolved_by,
                resolved_at=late.resolved_at,
            )


class _Status:
    """One person's status folded over ``person.status`` in recorded order (a later status that
    omits a field keeps what an earlier one said)."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.since: Event | None = None  # the status from which they qualify, while they do
        self.dob: date | None = None
        self.recorded_age: tuple[int, date] | None = None

    def add(self, event: Event) -> None:
        self.fields.update(event.data)
        if not _qualifies(self.fields):
            self.since = None
        elif self.since is None:
            self.since = event
        if "dob" in event.data:
            self.dob = date.fromisoformat(event.data["dob"])
        if isinstance(event.data.get("age"), int):
            self.recorded_age = (event.data["age"], london_day(event.recordedtime))

    def age(self, on: date) -> int | None:
        """Age on ``on``: from the latest recorded ``dob``, else from the latest recorded ``age``
        plus whole years since (the youngest they can be); None if neither is known."""
        if self.dob is not None:
            return age_on(self.dob, on)
        if self.recorded_age is not None:
            age, since = self.recorded_age
            return age + age_on(since, on)
        return None


def _steps(walk: list[Event]) -> Iterator[tuple[Event, dict[Hashable, Any]]]:
    """After each record (recorded order), the parent figures owed a notification to leaving
    care, with the trigger, the qualifying status and the age that made it owed."""
    trigger: Event | None = None
    parents: set[str] = set()
    statuses: dict[str, _Status] = {}
    owed: dict[Hashable, Any] = {}
    for event in walk:
        if event.type in ("incident.reported", "referral.made"):
            trigger = trigger or event
        elif event.type == "person.status":
            statuses.setdefault(event.data["person"], _Status()).add(event)
        else:
            parents |= parent_figures((event,))
        now: dict[Hashable, Any] = {}
        for person in sorted(parents) if trigger is not None else ():
            status = statuses.get(person)
            if status is None or status.since is None:
                continue
            if person in owed and not (event.type == "person.status" and event.data["person"] == person):
                now[person] = owed[person]  # the calendar alone ends nothing
                continue
            age = status.age(london_day(event.recordedtime))
            if age is not None and age < SUPPORT_AGE_LIMIT:
                now[person] = owed.get(person) or (trigger, status.since, age)
        owed = now
        yield event, owed


def _qualifies(fields: dict[str, Any]) -> bool:
    return fields.get("care_leaver") is True and ("dob" in fields or isinstance(fields.get("age"), int))
