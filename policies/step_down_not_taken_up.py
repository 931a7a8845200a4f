"""step-down-not-taken-up: a case stepped down to an agency that never picks it up.

Child Charlie section 5, practice learning 4 (ii): "Cases stepped down by CSC require a clear
'step down' plan so there is clarity about how needs will be met." 2.10: the case was closed on
the basis that "the health visitor was continuing to support Charlie and mother". A plan on paper
is not support: the receiving agency has to take the case up.

For each step-down closure naming a registered receiving agency (``step_down.to``; a closure
without one is closure-without-step-down-plan's), the receiving agency must record a contact
with the family (``contact.recorded``) or acknowledge the referral (``referral.acknowledged``
with the closure's ``referral_ref``) at or after the closure, within ten working days of it. A
later contact or acknowledgement resolves the flag. Concerns: the closing agency (it must check
the step-down landed) and the receiving agency.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, earliest, first_from, late, timelines
from policies.view import ChildView

WORKING_DAYS = 10


class StepDownNotTakenUp(Policy):
    id = "step-down-not-taken-up"
    version = 1
    severity = Severity.MEDIUM
    title = "Step-down not taken up by the receiving agency within ten working days"
    source = "CSPR Child Charlie 2.10, 5 (practice learning 4 (ii))"
    explanation = (
        "Charlie's case was closed because the health visitor was supporting the family; a "
        "step-down only protects a child if the receiving agency takes it up. Within ten working "
        "days of a step-down closure, the receiving agency should record a contact with the "
        "family or acknowledge the case. Medium: the family may be unsupported while each agency "
        "believes the other is working with it."
    )
    action = (
        "Receiving agency: acknowledge the step-down (referral.acknowledged) and contact the "
        "family; closing agency: confirm the step-down landed."
    )

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        step_downs = [
            (closure, to)
            for closure in view.of_type("referral.closed")
            if closure.data["outcome"] == "step-down"
            and view.is_registered_agency(to := str((closure.data.get("step_down") or {}).get("to", "")))
        ]
        if not step_downs:
            # Nothing to take up: contacts and acknowledgements are not read, so the rule is not
            # run again on each of them (issue 13); a step-down's arrival is a change of what it read.
            return
        contacts = timelines(view.of_type("contact.recorded"), lambda e: e.source)
        acknowledgements = timelines(
            view.of_type("referral.acknowledged"), lambda e: (e.source, e.data["referral_ref"])
        )
        for closure, to in step_downs:
            ref, since = closure.data["referral_ref"], closure.recordedtime
            taken_up = (first_from(contacts, to, since), first_from(acknowledgements, (to, ref), since))
            due = due_after_working_days(closure.recordedtime, WORKING_DAYS)
            gap = late(earliest(e for e in taken_up if e is not None), due)
            if gap is None:
                continue
            yield Finding(
                key=closure.id,
                due=due,
                evidence=(closure.id,),
                concerns=(closure.source, to),
                detail=f"step-down of referral {ref} to {to}: no contact or acknowledgement by {to}",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
