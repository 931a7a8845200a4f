"""father-not-in-assessment: a child and family assessment that leaves a father figure out.

Family A, theme "Working with Fathers": "Fathers need to be fully considered in assessments and
plans". Child Charlie section 5, practice learning 2: "there was little or no focus on father".

Raised at the assessment's recorded time, for each male parent figure known by then (as
closure-without-father-contact judges a closure: a partner who appears months later does not make
an old assessment wrong; the next assessment must include him). A correction that adds him (seen
or with a reason) resolves the flag, naming the correction, as does a later child and family
assessment that includes him (whichever is recorded first). Concerns: the assessing agency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.corrections import gap_history
from policies.facts import Timeline, earliest, male_parent_figures
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
        assessments = [
            e for e in view.of_type("assessment.completed") if e.data["kind"] == "child-and-family"
        ]
        fathers = _male_parent_figures_since(view.of_type("child.registered", "person.linked"))
        including: dict[str, Timeline] = {}  # person -> the assessments that include them

        def assessments_including(person: str) -> Timeline:
            if person not in including:
                including[person] = Timeline(a for a in assessments if person in _included(a))
            return including[person]

        for assessment in assessments:
            known = {person for person, since in fathers.items() if since <= assessment.recordedtime}
            for person in sorted(known):
                # A correction that adds him resolves the flag (and says which one did).
                history = gap_history(view, assessment, _leaves_out(person))
                if history is None:
                    continue
                later = _first_other(assessments_including(person), assessment)
                ended = earliest(e for e in (later, history.resolved_by) if e)
                yield Finding(
                    key=f"{assessment.id}|{person}",
                    due=history.began,
                    evidence=(assessment.id,),
                    concerns=(assessment.source,),
                    detail=f"assessment neither saw {person} nor recorded why not",
                    resolved_by=ended.id if ended else None,
                    resolved_at=ended.recordedtime if ended else None,
                )


def _first_other(including: Timeline, assessment: Event) -> Event | None:
    """The first assessment including the person recorded at or after ``assessment``, other than
    itself (its latest version may include him: a correction resolved it)."""
    return including.first_from(assessment.recordedtime, excluding=assessment.id)


def _male_parent_figures_since(events: list[Event]) -> dict[str, datetime]:
    """Male parent figure -> when first recorded as one (child.registered father, person.linked)."""
    since: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.recordedtime):
        for person in male_parent_figures((event,)):
            since.setdefault(person, event.recordedtime)
    return since


def _leaves_out(person: str) -> Callable[[Event], bool]:
    return lambda assessment: person not in _included(assessment)


def _included(assessment: Event) -> set[str]:
    return set(assessment.data.get("persons_seen", ())) | set(assessment.data.get("not_seen_reasons", {}))
