"""father-not-in-assessment: a child and family assessment that leaves a father figure out.

Family A, theme "Working with Fathers": "Fathers need to be fully considered in assessments and
plans". Child Charlie section 5, practice learning 2: "there was little or no focus on father".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import first_after, male_parent_figures
from policies.view import ChildView, Event


class FatherNotInAssessment(Policy):
    id = "father-not-in-assessment"
    version = 1
    severity = Severity.MEDIUM
    title = "Child and family assessment without a father figure"
    source = "CSPR Family A: working with fathers"
    explanation = (
        "Family A's review found fathers were not fully considered in assessments and plans. A "
        "child and family assessment must see every male parent figure, or say why not."
    )
    action = "See the father figure (or record why not) in a corrected or new child and family assessment."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        events = view.effective()
        assessments = [
            e for e in events if e.type == "assessment.completed" and e.data["kind"] == "child-and-family"
        ]
        fathers = male_parent_figures(events)
        for assessment in assessments:
            for person in sorted(fathers - _included(assessment)):
                later = first_after(
                    [a for a in assessments if a.id != assessment.id and person in _included(a)],
                    assessment.recordedtime,
                )
                yield Finding(
                    key=f"{assessment.id}|{person}",
                    due=assessment.recordedtime,
                    evidence=(assessment.id,),
                    concerns=(assessment.source,),
                    detail=f"assessment neither saw {person} nor recorded why not",
                    resolved_by=later.id if later else None,
                    resolved_at=later.recordedtime if later else None,
                )


def _included(assessment: Event) -> set[str]:
    return set(assessment.data.get("persons_seen", ())) | set(assessment.data.get("not_seen_reasons", {}))
