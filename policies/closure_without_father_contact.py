"""closure-without-father-contact: a referral closed without contact with a father figure or the
person of concern.

Child Charlie 2.10: "No contact was made by CSC with father, extended family members or other
agencies ... A decision was made by the EDT worker to close the case". 6.1: "Managers in the
First Response Team routinely pass back cases to social workers if the non-resident parent or
perpetrator has not been contacted". Family A: "Fathers need to be fully considered in
assessments and plans".
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from datetime import datetime

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.corrections import gap_history
from policies.facts import (
    Timeline,
    earliest,
    extend_timelines,
    male_parent_figures,
    persons_of_concern,
    recorded_key,
)
from policies.view import SORT_KEY, ChildView, Event


class ClosureWithoutFatherContact(FoldingPolicy):
    id = "closure-without-father-contact"
    version = 1
    severity = Severity.HIGH
    title = "Referral closed without contact with father or person of concern"
    source = "CSPR Child Charlie 2.10, 6.1; CSPR Family A: working with fathers"
    explanation = (
        "Charlie's case was closed after speaking only to his mother; the person who needed to "
        "change was his father, and nobody contacted him. A closure must show contact with every "
        "male parent figure and every person of concern in the child's incidents, or say why not. "
        "High: the case is closed, so no agency is watching while the risk he poses is unassessed."
    )
    action = (
        "Contact the person named (or record why contact would increase risk) before the closure "
        "stands; the closing agency's lead should pass the case back."
    )

    def start(self, view: ChildView) -> Fold:
        state = _State()
        state.add(view.of_type("child.registered", "person.linked", "incident.reported"))
        state.add(view.of_type("referral.made"))
        state.add(sorted(view.of_type("contact.recorded"), key=recorded_key))
        found: list[Finding] = []
        for closure in view.of_type("referral.closed"):
            state.judge(view, closure, found)
        return Fold(found, state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Events recorded after every earlier one. A closure is judged by who was of concern by
        then and by the contacts up to then, so earlier closures' findings stand; a new contact
        resolves the open ones it answers; new closures are judged. A new referral under the
        reference of a closure already judged changes that closure's referral: start afresh."""
        state: _State = fold.state
        if any(e.type == "referral.made" and e.data["referral_ref"] in state.closed_refs for e in added):
            return None
        state.add(e for e in added if e.type != "referral.closed")
        for contact in (e for e in added if e.type == "contact.recorded"):
            for index in state.waiting.pop((contact.source, contact.data["person"]), []):
                fold.findings[index] = replace(
                    fold.findings[index], resolved_by=contact.id, resolved_at=contact.recordedtime
                )
        for closure in sorted((e for e in added if e.type == "referral.closed"), key=SORT_KEY):
            state.judge(view, closure, fold.findings)
        return fold


class _State:
    """What judging a closure needs, kept between evaluations: when each person became a male
    parent figure or a person of concern, the referral of each reference, the contacts by
    (agency, person), and the open findings a contact would resolve."""

    def __init__(self) -> None:
        self.concern_since: dict[str, datetime] = {}
        self.referrals: dict[str, Event] = {}  # referral_ref -> its referral (the latest in time)
        self.contacts: dict[Hashable, Timeline] = {}
        self.closed_refs: set[str] = set()
        self.waiting: dict[tuple[str, str], list[int]] = {}  # (agency, person) -> open findings

    def add(self, events: Iterable[Event]) -> None:
        """Events that are not closures (contacts in recorded order, after those already added)."""
        for event in events:
            if event.type == "referral.made":
                ref = event.data["referral_ref"]
                if ref not in self.referrals or SORT_KEY(self.referrals[ref]) < SORT_KEY(event):
                    self.referrals[ref] = event
            elif event.type == "contact.recorded":
                extend_timelines(self.contacts, (event,), _contact_key)
            else:
                for person in male_parent_figures((event,)) | persons_of_concern((event,)):
                    since = self.concern_since.get(person, event.recordedtime)
                    self.concern_since[person] = min(since, event.recordedtime)

    def judge(self, view: ChildView, closure: Event, found: list[Finding]) -> None:
        self.closed_refs.add(closure.data["referral_ref"])
        # "while" a person is a father figure or of concern: as known when the closure was
        # recorded; a perpetrator named months later does not make an old closure wrong.
        concern = {p for p, since in self.concern_since.items() if since <= closure.recordedtime}
        referral = self.referrals.get(closure.data["referral_ref"])
        since = referral.recordedtime if referral else None
        for person in sorted(concern):
            # Unaccounted for in the closure as recorded (or as a correction left it).
            history = gap_history(view, closure, _unaccounted(person))
            if history is None:
                continue
            theirs = self.contacts.get((closure.source, person))
            first = theirs.first_from(since) if theirs else None
            if first is not None and first.recordedtime <= closure.recordedtime:
                continue  # contacted since the referral, by the closure
            # Resolved by a later contact with him, or by a correction that adds him.
            later = theirs.first_from(closure.recordedtime) if theirs else None
            ended = earliest(e for e in (later, history.resolved_by) if e)
            if ended is None:
                self.waiting.setdefault((closure.source, person), []).append(len(found))
            found.append(
                Finding(
                    key=f"{closure.id}|{person}",
                    due=history.began,
                    evidence=(closure.id, *((referral.id,) if referral else ())),
                    concerns=(closure.source,),  # the closing agency's lead passes the case back
                    detail=f"referral {closure.data['referral_ref']} closed with no contact with {person}",
                    resolved_by=ended.id if ended else None,
                    resolved_at=ended.recordedtime if ended else None,
                )
            )


def _contact_key(contact: Event) -> Hashable:
    return (contact.source, contact.data["person"])


def _unaccounted(person: str) -> Callable[[Event], bool]:
    """Whether a version of the closure neither lists ``person`` as contacted nor says why not."""

    def check(closure: Event) -> bool:
        contacted = closure.data.get("persons_contacted", ())
        return person not in contacted and person not in closure.data.get("not_contacted_reasons", {})

    return check
