"""father-not-identified: no father or father figure linked by the first health visiting contact
after the child's birth.

CSPR Family A, theme "Working with Fathers": "Fathers need to be fully considered in assessments
and plans"; recommendation 5: "including fathers as equal parents". Child Charlie 2.2 and 2.14:
father's GP "did not know he had become a parent". A father the records never name cannot be
considered, told, or assessed.

At the first ``contact.recorded`` by a ``phn/`` agency whose time is on or after the child's date
of birth (the new birth visit), a male parent figure (father, step-parent or parent's partner:
``child.registered`` ``father`` or ``person.linked``) must be recorded by then. Due at that
contact's recording; the first male parent figure recorded later resolves the flag. A child
without a recorded dob is not judged. Concerns: the health visiting agency that made the contact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.calendar import london_day
from policies.facts import child_dob, male_parent_figures
from policies.view import ChildView


class FatherNotIdentified(Policy):
    id = "father-not-identified"
    version = 1
    severity = Severity.MEDIUM
    title = "No father or father figure recorded by the first health visiting contact"
    source = "CSPR Family A: working with fathers, recommendation 5; CSPR Child Charlie 2.2"
    explanation = (
        "Both reviews found fathers outside the professionals' view: never asked about, never "
        "told. By the first health visiting contact after birth, the child's father or father "
        "figure should be recorded (or the partnership should know there is none to record). "
        "Medium: nothing has gone wrong yet, but every later plan will be made without him."
    )
    action = "Ask about and record the father or father figure (person.linked)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        dob = child_dob(view.of_type("child.registered"))
        if dob is None:
            return
        contacts = [
            c
            for c in view.of_type("contact.recorded")
            if agency_kind(c.source) == "phn" and london_day(c.time) >= dob
        ]
        if not contacts:
            return
        first = min(contacts, key=lambda c: (c.time, c.recordedtime, c.id))
        links = sorted(
            view.of_type("child.registered", "person.linked"), key=lambda e: (e.recordedtime, e.id)
        )
        fathers = [e for e in links if male_parent_figures((e,))]
        if any(f.recordedtime <= first.recordedtime for f in fathers):
            return
        later = fathers[0] if fathers else None
        yield Finding(
            key=first.id,
            due=first.recordedtime,
            evidence=(first.id,),
            concerns=(first.source,),
            detail=f"no father or father figure recorded by the first contact of {first.source}",
            resolved_by=later.id if later else None,
            resolved_at=later.recordedtime if later else None,
        )
