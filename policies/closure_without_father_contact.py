"""closure-without-father-contact: a referral closed without contact with a father figure or the
person of concern.

Child Charlie 2.10: "No contact was made by CSC with father, extended family members or other
agencies ... A decision was made by the EDT worker to close the case". 6.1: "Managers in the
First Response Team routinely pass back cases to social workers if the non-resident parent or
perpetrator has not been contacted". Family A: "Fathers need to be fully considered in
assessments and plans".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.corrections import gap_history
from policies.facts import earliest, male_parent_figures, persons_of_concern, timelines
from policies.view import ChildView, Event


class ClosureWithoutFatherContact(Policy):
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

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        referrals = {e.data["referral_ref"]: e for e in view.of_type("referral.made")}
        concern_since = _concern_since(view)
        contacts = timelines(view.of_type("contact.recorded"), lambda c: (c.source, c.data["person"]))
        for closure in view.of_type("referral.closed"):
            # "while" a person is a father figure or of concern: as known when the closure was
            # recorded; a perpetrator named months later does not make an old closure wrong.
            concern = {p for p, since in concern_since.items() if since <= closure.recordedtime}
            referral = referrals.get(closure.data["referral_ref"])
            since = referral.recordedtime if referral else None
            for person in sorted(concern):
                # Unaccounted for in the closure as recorded (or as a correction left it).
                history = gap_history(view, closure, _unaccounted(person))
                if history is None:
                    continue
                theirs = contacts.get((closure.source, person))
                first = theirs.first_from(since) if theirs else None
                if first is not None and first.recordedtime <= closure.recordedtime:
                    continue  # contacted since the referral, by the closure
                # Resolved by a later contact with him, or by a correction that adds him.
                later = theirs.first_from(closure.recordedtime) if theirs else None
                ended = earliest(e for e in (later, history.resolved_by) if e)
                yield Finding(
                    key=f"{closure.id}|{person}",
                    due=history.began,
                    evidence=(closure.id, *((referral.id,) if referral else ())),
                    concerns=(closure.source,),  # the closing agency's lead passes the case back
                    detail=f"referral {closure.data['referral_ref']} closed with no contact with {person}",
                    resolved_by=ended.id if ended else None,
                    resolved_at=ended.recordedtime if ended else None,
                )


def _concern_since(view: ChildView) -> dict[str, datetime]:
    """Male parent figure or person of concern -> when first recorded as one (computed once per
    view; asking "who, as known at this closure?" then costs a lookup, not a scan)."""
    since: dict[str, datetime] = {}
    for event in view.of_type("child.registered", "person.linked", "incident.reported"):
        for person in male_parent_figures((event,)) | persons_of_concern((event,)):
            since[person] = min(since.get(person, event.recordedtime), event.recordedtime)
    return since


def _unaccounted(person: str) -> Callable[[Event], bool]:
    """Whether a version of the closure neither lists ``person`` as contacted nor says why not."""

    def check(closure: Event) -> bool:
        contacted = closure.data.get("persons_contacted", ())
        return person not in contacted and person not in closure.data.get("not_contacted_reasons", {})

    return check
