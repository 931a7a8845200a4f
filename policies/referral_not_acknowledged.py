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

from collections.abc import Hashable

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    Anchors,
    Timeline,
    due_after_working_days,
    earliest,
    extend_timelines,
    first_from,
    late,
    timelines,
)
from policies.view import ChildView, Event

BY_REF = ("referral.acknowledged", "referral.closed")
DECISIONS = ("assessment.started", "strategy-discussion.held")


class ReferralNotAcknowledged(FoldingPolicy):
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

    def start(self, view: ChildView) -> Fold:
        state = _State(
            timelines(view.of_type(*BY_REF), _by_ref), timelines(view.of_type(*DECISIONS), _decided_by)
        )
        for referral in view.of_type("referral.made"):
            state.judge(view, referral)
        return state.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """A referral is judged by the first answer after it: judge new referrals, and the
        referrals new answers may answer first (those named by an acknowledgement or closure,
        and those a decision's agency had not answered at all)."""
        state: _State = fold.state
        answers = [e for e in added if e.type in BY_REF]
        decisions = [e for e in added if e.type in DECISIONS]
        extend_timelines(state.by_ref, answers, _by_ref)
        extend_timelines(state.decisions, decisions, _decided_by)
        touched = [r for a in answers for r in state.referred.get(_by_ref(a), ())]
        touched += [r for d in decisions for r in sorted(state.unanswered.get(d.source, ()))]
        for referral_id in dict.fromkeys(touched):
            state.judge(view, state.anchors.by_id[referral_id])
        for referral in (e for e in added if e.type == "referral.made"):
            state.judge(view, referral)
        return state.fold()


def _by_ref(answer: Event) -> Hashable:
    return (answer.source, answer.data["referral_ref"])


def _decided_by(decision: Event) -> Hashable:
    return decision.source


class _State:
    """The referrals judged, the answers by (agency, reference) and the decisions by agency,
    which referrals each (agency, reference) names, and the referrals an agency has not yet
    answered in any way (a decision by it may be their first answer)."""

    def __init__(self, by_ref: dict[Hashable, Timeline], decisions: dict[Hashable, Timeline]) -> None:
        self.anchors = Anchors()
        self.by_ref, self.decisions = by_ref, decisions
        self.referred: dict[Hashable, list[str]] = {}  # (to, ref) -> referral ids
        self.unanswered: dict[str, set[str]] = {}  # agency -> ids of referrals it has not answered

    def fold(self) -> Fold:
        return Fold(self.anchors.fold().findings, self)

    def judge(self, view: ChildView, referral: Event) -> None:
        to, ref = str(referral.data["to"]), referral.data["referral_ref"]
        if referral.id not in self.anchors.by_id:
            self.referred.setdefault((to, ref), []).append(referral.id)
        if not view.is_registered_agency(to):
            self.anchors.judge(referral, ())
            return
        since = referral.recordedtime
        answers = (first_from(self.by_ref, (to, ref), since), first_from(self.decisions, to, since))
        answer = earliest(a for a in answers if a is not None)
        if answer is None:
            self.unanswered.setdefault(to, set()).add(referral.id)
        else:
            self.unanswered.get(to, set()).discard(referral.id)
        due = due_after_working_days(referral.recordedtime, 1)
        gap = late(answer, due)
        self.anchors.judge(
            referral,
            ()
            if gap is None
            else (
                Finding(
                    key=referral.id,
                    due=due,
                    evidence=(referral.id,),
                    concerns=(to, referral.source),
                    detail=f"referral {ref} to {to} not acknowledged",
                    resolved_by=gap.resolved_by,
                    resolved_at=gap.resolved_at,
                ),
            ),
        )
