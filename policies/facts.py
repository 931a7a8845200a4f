"""Facts several rules ask about a child's effective events, defined once as the issue defines them.

"Parent figure": linked with role mother, father, step-parent or parent's-partner ("male": not
mother). "Person of concern": an incident party with role perpetrator, alleged-perpetrator or
counter-allegation. "Aware of the child": source of any event about the child, or the ``to`` of
a notification about the child.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any

from ledger.vocabulary import agency_kind
from policies.base import Finding, Fold
from policies.calendar import working_days_deadline
from policies.view import CONCERN_ROLES, MALE_PARENT_ROLES, PARENT_ROLES, ChildView, Event

# A gap "within N working days" begins the instant after the deadline's last millisecond.
AFTER = timedelta(milliseconds=1)


@lru_cache(maxsize=1 << 16)
def due_after_working_days(t: datetime, n: int) -> datetime:
    """The instant after the end of the n-th working day after ``t``'s London day. Cached (by
    value, bounded: a miss only costs the calendar): four rules ask it of each incident's
    recorded time, and a child is judged again on every batch that touches it (issue 13, ninth
    round: ~7% of an evaluation on a replay). Equal instants in other zones have one answer
    (the London day of the instant), so the cache's equality is the function's."""
    return working_days_deadline(t, n) + AFTER


def roles(events: Iterable[Event]) -> dict[str, set[str]]:
    """Person -> linked roles (person.linked, and mother/father named at child.registered)."""
    found: dict[str, set[str]] = {}
    for event in events:
        if event.type == "person.linked":
            found.setdefault(event.data["person"], set()).add(event.data["role"])
        elif event.type == "child.registered":
            for role in ("mother", "father"):
                if event.data.get(role):
                    found.setdefault(event.data[role], set()).add(role)
    return found


def parent_figures(events: Iterable[Event]) -> set[str]:
    return {p for p, r in roles(events).items() if r & PARENT_ROLES}


def latest_links(events: Iterable[Event]) -> dict[str, Event]:
    """Person -> their latest ``person.linked`` (recorded order, ties by id): what an agency last
    said about how the person stands to the child, e.g. whether they live with the child."""
    latest: dict[str, Event] = {}
    for event in events:
        if event.type != "person.linked":
            continue
        known = latest.get(event.data["person"])
        if known is None or (event.recordedtime, event.id) > (known.recordedtime, known.id):
            latest[event.data["person"]] = event
    return latest


def co_resident_parent_figures(events: Sequence[Event]) -> set[str]:
    """Parent figures an agency last recorded as living with the child (``lives_with_child``)."""
    return _parent_figures_living_with(events, True)


def _parent_figures_living_with(events: Sequence[Event], lives_with_child: bool) -> set[str]:
    links = latest_links(events)
    return {
        p
        for p in parent_figures(events)
        if p in links and links[p].data.get("lives_with_child") is lives_with_child
    }


def age_on(dob: date, day: date) -> int:
    """Whole years from ``dob`` to ``day`` (a birthday counts on the day itself)."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def child_dob(view_events: Sequence[Event]) -> date | None:
    """The child's date of birth from its latest (effective) ``child.registered``."""
    registered = [e for e in view_events if e.type == "child.registered"]
    return date.fromisoformat(registered[-1].data["dob"]) if registered else None


def male_parent_figures(events: Iterable[Event]) -> set[str]:
    return {p for p, r in roles(events).items() if r & MALE_PARENT_ROLES}


def domestic_abuse_incidents(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.type == "incident.reported" and e.data.get("domestic_abuse") is True]


def persons_of_concern(incidents: Iterable[Event]) -> set[str]:
    return {
        party["person"]
        for incident in incidents
        if incident.type == "incident.reported"
        for party in incident.data.get("parties", ())
        if party["role"] in CONCERN_ROLES
    }


def parties(incident: Event) -> set[str]:
    return {party["person"] for party in incident.data.get("parties", ())}


def incident_names(incidents: Iterable[Event]) -> frozenset[str]:
    """Every name a notification's ``about`` may use for these incidents (ids and refs), so that
    "is this notification about an incident?" is one set lookup, not a scan of the incidents."""
    return frozenset(
        name for i in incidents for name in (i.id, i.data.get("incident_ref")) if isinstance(name, str)
    )


# Recorded order, ties by id: the order in which "the first answer" is decided. An attrgetter,
# not a function: it is the sort key of every timeline and fold, called per event (issue 13).
recorded_key: Callable[[Event], tuple[datetime, str]] = attrgetter("recordedtime", "id")


def earliest(events: Iterable[Event]) -> Event | None:
    """The first-recorded of ``events`` (ties by id), None if there are none."""
    return min(events, key=recorded_key, default=None)


class Timeline:
    """Events in recorded order, asked "which was recorded first at or after t?" by bisection.

    Rules judge each anchor (an incident, a referral, a plan) by the answers recorded after it;
    scanning every answer for every anchor made evaluation quadratic in the child's history
    (issue 13). Built once per evaluation, a timeline answers in O(log n)."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = sorted(events, key=recorded_key)
        self._times = [e.recordedtime for e in self.events]

    def append(self, event: Event) -> None:
        """Add an event recorded after (or with) the last one (a rule's fold, extended by live
        traffic in recorded order): the order holds without sorting again."""
        if self.events and recorded_key(event) < recorded_key(self.events[-1]):
            raise ValueError(f"{event.id} was recorded before the timeline's last event")
        self.events.append(event)
        self._times.append(event.recordedtime)

    def first_from(self, since: datetime | None = None, excluding: str | None = None) -> Event | None:
        """The earliest event recorded at or after ``since`` (the earliest of all if None), other
        than the one whose id is ``excluding``."""
        index = 0 if since is None else bisect_left(self._times, since)
        if index < len(self.events) and self.events[index].id == excluding:
            index += 1
        return self.events[index] if index < len(self.events) else None

    def between(self, since: datetime, until: datetime) -> list[Event]:
        """The events recorded from ``since`` to ``until``, both included, in recorded order."""
        return self.events[bisect_left(self._times, since) : bisect_right(self._times, until)]


def timelines(events: Iterable[Event], key: Callable[[Event], Hashable]) -> dict[Hashable, Timeline]:
    """One timeline per key (e.g. per answering agency, per reference): "the first answer by
    this agency about this referral after t" is a dictionary lookup and a bisection."""
    grouped: dict[Hashable, list[Event]] = {}
    for event in events:
        grouped.setdefault(key(event), []).append(event)
    return {k: Timeline(found) for k, found in grouped.items()}


def extend_timelines(
    lines: dict[Hashable, Timeline], events: Iterable[Event], key: Callable[[Event], Hashable]
) -> None:
    """Add events recorded after those of ``lines`` (``timelines``'s result) to their timelines."""
    for event in events:
        line = lines.get(key(event))
        if line is None:
            lines[key(event)] = Timeline((event,))
        else:
            line.append(event)


def first_from(lines: dict[Hashable, Timeline], key: Hashable, since: datetime | None = None) -> Event | None:
    """The first event of ``key``'s timeline recorded at or after ``since`` (None if none)."""
    line = lines.get(key)
    return line.first_from(since) if line is not None else None


@dataclass(frozen=True)
class Late:
    """An anchor not answered by its deadline. ``answer`` is the first answer recorded after the
    deadline, which resolves the gap; None while nothing has answered it."""

    answer: Event | None

    @property
    def resolved_by(self) -> str | None:
        return self.answer.id if self.answer is not None else None

    @property
    def resolved_at(self) -> datetime | None:
        return self.answer.recordedtime if self.answer is not None else None


def late(first_answer: Event | None, due: datetime) -> Late | None:
    """The tail of every "answered within N working days?" rule, decided once: ``first_answer``
    is the earliest-recorded answer (of those that count for the anchor). Recorded before ``due``:
    no gap (None). Otherwise a gap, resolved by that answer if there is one.

    Only the earliest answer matters: if any answer came in time, the earliest did; if none
    did, the earliest is the first late one. So rules pass one event, found by a lookup."""
    if first_answer is not None and first_answer.recordedtime < due:
        return None
    return Late(first_answer)


class Anchors:
    """A folding rule's findings kept by anchor (an incident, a referral), so that resuming
    judges again only the anchors an added event touches (``policies.base.FoldingPolicy``),
    and the names notifications use for each incident (its id and incident_ref)."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[Finding, ...]] = {}  # anchor id -> its findings
        self.by_id: dict[str, Event] = {}  # anchor id -> the anchor
        self.named: dict[str, list[str]] = {}  # a name notifications use -> anchor ids
        self.context: Any = None  # what else the rule keeps to judge an anchor (its indexes)

    def judge(self, anchor: Event, findings: Iterable[Finding]) -> None:
        if anchor.id not in self.by_id:
            self.by_id[anchor.id] = anchor
            for name in {anchor.id, anchor.data.get("incident_ref")}:
                if isinstance(name, str):
                    self.named.setdefault(name, []).append(anchor.id)
        self.found[anchor.id] = tuple(findings)

    def about(self, notifications: Iterable[Event]) -> list[Event]:
        """The anchors these notifications name, each once."""
        return self.called(str(name) for n in notifications for name in n.data.get("about", ()))

    def called(self, names: Iterable[str]) -> list[Event]:
        """The anchors with these names (ids or incident_refs), each once."""
        ids = dict.fromkeys(i for name in names for i in self.named.get(name, ()))
        return [self.by_id[i] for i in ids]

    def fold(self) -> Fold:
        return Fold([f for found in self.found.values() for f in found], self)


@dataclass(frozen=True)
class Spell:
    """A stretch of recorded time during which a duty was owed, as the partnership knew it: from
    the event whose recording made it owed to the one whose recording ended it (None: still owed).
    ``payload``: what the rule noted when the duty began (e.g. the registration that made a
    practice owed), so a finding's evidence does not move as history grows."""

    start: datetime  # the recorded time of ``started_by``
    started_by: Event | None  # None: owed from a time, not an event (e.g. an agency's awareness)
    ended_by: Event | None = None
    payload: Any = None


def spells(steps: Iterable[tuple[Event, Mapping[Hashable, Any]]]) -> dict[Hashable, list[Spell]]:
    """Key -> its spells in order, from ``steps``: each event that can change who is owed (in
    recorded order, ties by id) with who is owed once it is recorded (key -> payload).

    Rules whose duty depends on a *current* fact (a person's practice, the child's school,
    where a parent lives) judged it as of the view's end, so a later fact dropped a finding that
    an earlier evaluation had raised: live and replay then differed (issue 13). Judged by spells,
    what was owed at any moment is fixed by what had been recorded by then."""
    running: dict[Hashable, tuple[Event, Any]] = {}
    found: dict[Hashable, list[Spell]] = {}
    for event, owed in steps:
        for key in [k for k in running if k not in owed]:
            started_by, payload = running.pop(key)
            found.setdefault(key, []).append(Spell(started_by.recordedtime, started_by, event, payload))
        for key, payload in owed.items():
            if key not in running:
                running[key] = (event, payload)
    for key, (started_by, payload) in running.items():
        found.setdefault(key, []).append(Spell(started_by.recordedtime, started_by, None, payload))
    return found


def first_gap(
    owed: Sequence[Spell], due_of: Callable[[Spell], datetime], answer: Event | None
) -> tuple[Spell, datetime, Late] | None:
    """The gap, if any, of a duty owed over ``owed`` (in order) and met by ``answer`` (the
    earliest-recorded event that meets it, whenever it came).

    A spell that ended before its due was never a gap (the practice was left, the child moved
    school, before anyone was late); the first spell still owed at its due is the gap, resolved
    by whichever came first after that: the answer, or the event that ended the duty. One gap
    per duty: once a finding is due, nothing recorded later can move it (it depends only on
    events recorded before its due), so a live projector and a replay raise the same one."""
    for spell in owed:
        due = due_of(spell)
        if answer is not None and answer.recordedtime < due:
            return None
        ended = spell.ended_by
        if ended is not None and ended.recordedtime < due:
            continue
        return spell, due, Late(earliest(e for e in (answer, ended) if e is not None))
    return None


def recorded(*groups: Iterable[Event]) -> list[Event]:
    """The events of ``groups`` in recorded order, ties by id (the order spells are walked in)."""
    return sorted((e for group in groups for e in group), key=recorded_key)


FAMILY_TYPES = ("child.registered", "person.linked", "gp.registered")  # what a Family is made of


def family_of(view: ChildView) -> Family:
    """The child's ``Family`` (from ``FAMILY_TYPES``), built once per view for every rule that
    asks (``ChildView.derived``): gp-not-notified, parent-gp-unaware and marac-plan-not-shared
    each built the same one."""
    return view.derived(Family, *FAMILY_TYPES)


class Family:
    """Who the partnership knew, after each event, to be the child's parent figures, which of
    them it knew to live elsewhere, and each person's GP practice (``gp.registered``: one
    practice at a time in England, so a later registration replaces the earlier one).

    ``states`` holds, per event of ``child.registered``, ``person.linked`` and ``gp.registered``
    (recorded order), the event and the state it left; ``practices`` turns them into spells of
    the practices owed to a set of people. Built once per view."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.states: list[tuple[Event, frozenset[str], frozenset[str], Mapping[str, Event]]] = []
        self._practices: dict[Hashable, dict[Hashable, list[Spell]]] = {}  # practices() by key
        parents: set[str] = set()
        elsewhere: set[str] = set()
        registered: dict[str, Event] = {}
        for event in recorded(events):
            if event.type == "gp.registered":
                registered[event.data["person"]] = event
            else:
                parents |= parent_figures((event,))
                if event.type == "person.linked":
                    person = event.data["person"]
                    if event.data.get("lives_with_child") is False:
                        elsewhere.add(person)
                    else:
                        elsewhere.discard(person)
            self.states.append((event, frozenset(parents), frozenset(elsewhere), dict(registered)))

    def practices(
        self, people: Callable[[frozenset[str], frozenset[str]], Iterable[str]], key: Hashable = None
    ) -> dict[Hashable, list[Spell]]:
        """Practice -> spells in which it was the practice of one of ``people(parents,
        living elsewhere)``; payload: the registration that made it owed. With a ``key`` (everything
        ``people`` depends on besides its arguments, e.g. the rule and an incident's parties:
        one Family serves every rule of a view, ``family_of``), the answer is kept for the next
        call with an equal key: gp-not-notified asks it once per incident,
        usually of the same parties, and walking every state per incident was a sixth of an
        evaluation on a replay (issue 13, ninth round). Callers must not change what it hands
        back (it may be another call's)."""
        if key is not None and key in self._practices:
            return self._practices[key]

        def owed(registered: Mapping[str, Event], persons: Iterable[str]) -> dict[Hashable, Event]:
            found: dict[Hashable, Event] = {}
            for person in sorted(persons):
                link = registered.get(person)
                if link is not None:
                    found.setdefault(f"gp/{link.data['practice']}", link)
            return found

        answer = spells(
            (event, owed(registered, people(parents, elsewhere)))
            for event, parents, elsewhere, registered in self.states
        )
        if key is not None:
            self._practices[key] = answer
        return answer


def school_spells(
    enrolments: Iterable[Event], at: datetime, joined_after: bool = False
) -> dict[Hashable, list[Spell]]:
    """School agency id -> spells in which the partnership knew the child to be on its roll at
    ``at`` (or, with ``joined_after``, to have joined it after ``at``) and not to have left it
    since. Walked over ``school.enrolled`` and ``school.left`` in recorded order; enrolment is
    judged by event time (a back-dated leaving date counts from when it is recorded)."""
    known: list[Event] = []
    steps: list[tuple[Event, Mapping[Hashable, Any]]] = []
    for event in recorded(enrolments):
        known.append(event)
        in_time = sorted(known, key=lambda e: (e.time, e.recordedtime, e.id))
        now = _on_roll(in_time, None)
        then = _on_roll(in_time, at)
        joined = {f"school/{e.data['school']}" for e in in_time if joined_after and e.time > at}
        steps.append((event, dict.fromkeys(sorted(now & (then | joined)))))
    return spells(steps)


def _on_roll(enrolments: Sequence[Event], at: datetime | None) -> set[str]:
    """Schools the child was on the roll of at ``at`` (None: after everything), by event time."""
    schools: set[str] = set()
    for event in enrolments:
        if at is not None and event.time > at:
            break
        school = f"school/{event.data['school']}"
        if event.type == "school.left":
            schools.discard(school)
        else:
            schools.add(school)
    return schools


class PhnNotified:
    """A folding rule's state for "public health nursing was told of an incident: did the agency
    told answer within N working days?" (notification-not-followed-up: a real contact;
    health-assessment-not-updated: an FHNA). A notification counts if it names an incident of the
    child; its answer is the first qualifying event from the notified agency recorded at or
    after it. Kept between evaluations: the incident names, the notifications waiting for an
    incident they name, those still unanswered (by agency) and the findings (by notification)."""

    def __init__(self, names: frozenset[str], days: int, missing: str) -> None:
        self.names = set(names)
        self.days, self.missing = days, missing  # missing: what the detail says did not happen
        self.waiting: dict[str, list[Event]] = {}  # incident name -> notifications naming it
        self.unanswered: dict[str, list[Event]] = {}  # PHN agency -> notifications, no answer yet
        self.found: dict[str, Finding] = {}
        self.context: Any = None  # what else the rule keeps

    def counted(self, notification: Event) -> bool:
        """A notification to public health nursing about an incident of the child's (else, if to
        PHN, it waits under the names it uses, in case that incident is recorded later)."""
        if agency_kind(str(notification.data["to"])) != "phn":
            return False
        about = [str(name) for name in notification.data.get("about", ())]
        if self.names.isdisjoint(about):
            for name in about:
                self.waiting.setdefault(name, []).append(notification)
            return False
        return True

    def judge(self, notification: Event, answer: Event | None) -> None:
        phn = str(notification.data["to"])
        if answer is None:
            self.unanswered.setdefault(phn, []).append(notification)
        due = due_after_working_days(notification.recordedtime, self.days)
        gap = late(answer, due)
        if gap is None:
            self.found.pop(notification.id, None)
            return
        self.found[notification.id] = Finding(
            key=notification.id,
            due=due,
            evidence=(notification.id,),
            concerns=(phn,),
            detail=f"{phn} told of {', '.join(map(str, notification.data['about']))}; {self.missing}",
            resolved_by=gap.resolved_by,
            resolved_at=gap.resolved_at,
        )

    def resume(self, added: Sequence[Event], answers: Callable[[Event], bool]) -> Fold | None:
        """Bring the findings up to date from additions all recorded after everything judged: a
        new notification has no answer yet, and a new answer (``answers``) meets the notifications
        to its agency still unanswered that were recorded by then. None (start afresh) if a new
        incident is one that earlier notifications name."""
        for event in added:
            if event.type == "incident.reported":
                names = incident_names((event,))
                if any(name in self.waiting for name in names):
                    return None
                self.names |= names
        for event in added:
            if event.type == "notification.sent" and self.counted(event):
                self.judge(event, None)
        for event in added:
            if answers(event):
                waiting = self.unanswered.pop(event.source, [])
                for notification in waiting:
                    if notification.recordedtime <= event.recordedtime:
                        self.judge(notification, event)
                    else:
                        self.unanswered.setdefault(event.source, []).append(notification)
        return self.fold()

    def fold(self) -> Fold:
        return Fold(list(self.found.values()), self)
