"""assessment-overdue: a child and family assessment not completed within 45 working days.

Working Together to Safeguard Children 2023 (chapter 2, "Assessment of children in need"): "The
maximum timeframe for the assessment to conclude, such that it is possible to reach a decision on
next steps, should be no longer than 45 working days from the point of referral." Child Charlie
2.10 and Family A show what an open assessment without an end leaves: nobody's plan.

An ``assessment.started`` of kind ``child-and-family`` must be followed by an
``assessment.completed`` of that kind from the same agency, recorded within 45 working days of
the start's recording: the one with the same ``assessment_ref`` where the start gives one, else
the first recorded after the start. Due at the first instant after the 45th working day; a
later completion resolves the flag. Concerns: the assessing agency.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_from, late, timelines
from policies.view import ChildView

KIND = "child-and-family"
WORKING_DAYS = 45


class AssessmentOverdue(Policy):
    id = "assessment-overdue"
    version = 1
    severity = Severity.MEDIUM
    title = "Child and family assessment not completed within 45 working days"
    source = "Working Together 2023 (assessment within 45 working days)"
    explanation = (
        "An assessment that does not conclude leaves the child without a decision on what help "
        "they need. Working Together sets 45 working days from its start as the longest an "
        "assessment should take. Medium: the child is known and being assessed, but the "
        "decision is late."
    )
    action = "Complete the assessment and record it (assessment.completed, same assessment_ref)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        completions = [c for c in view.of_type("assessment.completed") if c.data["kind"] == KIND]
        by_agency = timelines(completions, lambda c: c.source)
        by_ref = timelines(completions, lambda c: (c.source, c.data.get("assessment_ref")))
        for start in view.of_type("assessment.started"):
            if start.data["kind"] != KIND:
                continue
            ref = start.data.get("assessment_ref")
            first = (
                first_from(by_agency, start.source, start.recordedtime)
                if ref is None
                else first_from(by_ref, (start.source, ref), start.recordedtime)
            )
            due = due_after_working_days(start.recordedtime, WORKING_DAYS)
            gap = late(first, due)
            if gap is None:
                continue
            yield Finding(
                key=start.id,
                due=due,
                evidence=(start.id,),
                concerns=(start.source,),
                detail=f"assessment {ref or start.id} started, not completed within 45 working days",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
