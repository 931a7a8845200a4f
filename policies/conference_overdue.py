"""conference-overdue: no initial child protection conference within 15 working days of the
strategy discussion that decided on one.

Working Together to Safeguard Children 2023 (chapter 2, "Initial child protection
conferences"): the initial conference "should take place within 15 working days of the strategy
discussion, or the strategy discussion at which section 47 enquiries were initiated if more than
one has been held". Family A: the children "were on child protection plans"; a plan comes only
from a conference.

A ``strategy-discussion.held`` whose ``decision`` is ``initial-conference`` must be followed by a
``conference.held`` of kind ``initial`` (naming the discussion's ``discussion_ref`` if it names
one) recorded within 15 working days of the discussion's recording. A later conference resolves
the flag. Concerns: the agency that recorded the discussion (the local authority convenes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, earliest, first_from, late, timelines
from policies.view import ChildView

WORKING_DAYS = 15
ANY = ("any",)  # the timeline key of conferences that name no discussion


class ConferenceOverdue(Policy):
    id = "conference-overdue"
    version = 1
    severity = Severity.HIGH
    title = "No initial child protection conference within 15 working days of the strategy discussion"
    source = "Working Together 2023 (initial conference within 15 working days)"
    explanation = (
        "A strategy discussion that decides a child may be suffering significant harm must lead "
        "to an initial child protection conference within 15 working days, where the agencies "
        "agree a plan together. High: until it meets, the child has no multi-agency protection plan."
    )
    action = "Convene the initial child protection conference and record it (conference.held)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        conferences = [c for c in view.of_type("conference.held") if c.data["kind"] == "initial"]
        # A conference naming no discussion answers any discussion; one naming a discussion,
        # only that one.
        by_ref = timelines(
            conferences, lambda c: ("ref", c.data["discussion_ref"]) if "discussion_ref" in c.data else ANY
        )
        for discussion in view.of_type("strategy-discussion.held"):
            if discussion.data["decision"] != "initial-conference":
                continue
            ref = discussion.data["discussion_ref"]
            since = discussion.recordedtime
            first = earliest(
                e
                for e in (first_from(by_ref, ("ref", ref), since), first_from(by_ref, ANY, since))
                if e is not None
            )
            due = due_after_working_days(discussion.recordedtime, WORKING_DAYS)
            gap = late(first, due)
            if gap is None:
                continue
            yield Finding(
                key=discussion.id,
                due=due,
                evidence=(discussion.id,),
                concerns=(discussion.source,),
                detail=f"strategy discussion {ref} decided on a conference; none within 15 working days",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
