"""closure-without-step-down-plan: a step-down with nobody, no plan or no actions.

Child Charlie table 1 (CSC): "a clear 'step down' plan when CSC are recommending another agency
provides support"; section 5, practice learning 4(ii): "Cases stepped down by CSC require a
clear 'step down' plan so there is clarity about how needs will be met."
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.corrections import gap_history, versions
from policies.view import ChildView, Event


class ClosureWithoutStepDownPlan(Policy):
    id = "closure-without-step-down-plan"
    version = 1
    severity = Severity.MEDIUM
    title = "Step-down closure without a receiving agency, plan and actions"
    source = "CSPR Child Charlie 4 (table 1), 5 (ii)"
    explanation = (
        "Charlie's case was closed on the strength of the health visitor's involvement, without a "
        "plan saying who would do what. A step-down must name the registered agency taking over, "
        "the plan, and at least one action. Medium: the child is not yet unsupported, but nobody is "
        "accountable for the support."
    )
    action = (
        "Correct the closure (referral.corrected) with step_down.to, step_down.plan and step_down.actions."
    )

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        for closure in view.of_type("referral.closed"):
            # A correction supplying what was missing resolves the flag (and says which one did).
            history = gap_history(view, closure, lambda v: bool(self._missing(view, v)))
            if history is None:
                continue
            missing = [gap for v, _ in versions(view, closure) if (gap := self._missing(view, v))][-1]
            fixed = history.resolved_by
            yield Finding(
                key=closure.id,
                due=history.began,
                evidence=(closure.id,),
                concerns=(closure.source,),  # the closing agency writes the step-down plan
                detail=f"step-down of referral {closure.data['referral_ref']} lacks " + ", ".join(missing),
                resolved_by=fixed.id if fixed else None,
                resolved_at=fixed.recordedtime if fixed else None,
            )

    @staticmethod
    def _missing(view: ChildView, closure: Event) -> list[str]:
        """What a step-down closure lacks; nothing for other outcomes."""
        if closure.data["outcome"] != "step-down":
            return []
        step_down = closure.data.get("step_down") or {}
        checks = (
            ("a registered receiving agency", view.is_registered_agency(str(step_down.get("to", "")))),
            ("a plan", bool(step_down.get("plan"))),
            ("actions", bool(step_down.get("actions"))),
        )
        return [name for name, ok in checks if not ok]
