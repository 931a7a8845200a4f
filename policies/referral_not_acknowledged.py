"""referral-not-acknowledged: a referral with no acknowledgement or decision by the agency that
received it.

Working Together to Safeguard Children 2023 (chapter 2, "Responding to referrals"): "Within one
working day of a referral being received, a local authority social worker should acknowledge
receipt to the referrer and make a decision about next steps". Child Charlie 2.9: the referral
after the fifth incident was allocated to a duty worker by volume of work.

A ``referral.made`` to a registered agency (one to an unregistered name is vague-referral-
destination's) must be answered by that agency within one working day of its recording: a
``referral.acknowledged`` or ``referral.closed`` with the same ``referral_ref``, or the start of
its assessment (``assessment.started``) or a strategy discussion (``strategy-discussion.held``)
recorded by that agency at or after the referral. A later answer resolves the flag. Concerns: the
receiving agency and the referrer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, earliest, first_from, late, timelines
from policies.view import ChildView

BY_REF = ("referral.acknowledged", "referral.closed")
DECISIONS = ("assessment.started", "strategy-discussion.held")


class ReferralNotAcknowledged(Policy):
    id = "referral-not-acknowledged"
    version = 1
    severity = Severity.MEDIUM
    title = "Referral not acknowledged or decided by the receiving agency within one working day"
    source = "Working Together 2023 (decision within one working day); CSPR Child Charlie 2.9"
    explanation = (
        "A referral that nobody acknowledges may be sitting in a queue while the referrer "
        "believes the child is being helped. Working Together asks for acknowledgement and a "
        "decision on next steps within one working day. Medium: the child is known, but nobody "
        "has yet decided what happens next."
    )
    action = "Receiving agency: acknowledge the referral and record the decision (referral.acknowledged)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        by_ref = timelines(view.of_type(*BY_REF), lambda a: (a.source, a.data["referral_ref"]))
        decisions = timelines(view.of_type(*DECISIONS), lambda a: a.source)
        for referral in view.of_type("referral.made"):
            to, ref = str(referral.data["to"]), referral.data["referral_ref"]
            if not view.is_registered_agency(to):
                continue
            since = referral.recordedtime
            answers = (first_from(by_ref, (to, ref), since), first_from(decisions, to, since))
            due = due_after_working_days(referral.recordedtime, 1)
            gap = late(earliest(a for a in answers if a is not None), due)
            if gap is None:
                continue
            yield Finding(
                key=referral.id,
                due=due,
                evidence=(referral.id,),
                concerns=(to, referral.source),
                detail=f"referral {ref} to {to} not acknowledged",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
