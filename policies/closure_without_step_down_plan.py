"""closure-without-step-down-plan: a step-down with nobody, no plan or no actions.

Child Charlie table 1 (CSC): "a clear 'step down' plan when CSC are recommending another agency
provides support"; section 5, practice learning 4(ii): "Cases stepped down by CSC require a
clear 'step down' plan so there is clarity about how needs will be met."
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.view import ChildView


class ClosureWithoutStepDownPlan(Policy):
    id = "closure-without-step-down-plan"
    version = 1
    severity = Severity.MEDIUM
    title = "Step-down closure without a receiving agency, plan and actions"
    source = "CSPR Child Charlie 4 (table 1), 5 (ii)"
    explanation = (
        "Charlie's case was closed on the strength of the health visitor's involvement, without a "
        "plan saying who would do what. A step-down must name the registered agency taking over, "
        "the plan, and at least one action."
    )
    action = (
        "Correct the closure (referral.corrected) with step_down.to, step_down.plan and step_down.actions."
    )

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        for closure in (e for e in view.effective() if e.type == "referral.closed"):
            if closure.data["outcome"] != "step-down":
                continue
            step_down = closure.data.get("step_down") or {}
            missing = [
                name
                for name, ok in (
                    (
                        "a registered receiving agency",
                        view.is_registered_agency(str(step_down.get("to", ""))),
                    ),
                    ("a plan", bool(step_down.get("plan"))),
                    ("actions", bool(step_down.get("actions"))),
                )
                if not ok
            ]
            if not missing:
                continue
            yield Finding(
                key=closure.id,
                due=closure.recordedtime,
                evidence=(closure.id,),
                concerns=(closure.source,),
                detail=f"step-down of referral {closure.data['referral_ref']} lacks " + ", ".join(missing),
            )
