"""marac-plan-not-shared: a MARAC plan not shared with everyone working with the child.

Family A recommendation 7: "Information about orders or plans in respect of Domestic Abuse (e.g.
MARAC and DVPOs) are shared with all professionals working with children in the family".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import aware_since, due_after_working_days, first_after, gp_links
from policies.view import ChildView


class MaracPlanNotShared(Policy):
    id = "marac-plan-not-shared"
    version = 1
    severity = Severity.HIGH
    title = "MARAC plan not shared with an agency working with the child"
    source = "CSPR Family A recommendation 7"
    explanation = (
        "In Family A the MARAC plan was not known to all the professionals working with the "
        "children, so the plans for the children and the adults could not reflect each other. "
        "One working day after a plan is agreed, every agency aware of the child, the GP practice "
        "of the child and of every person in the plan, and the child's school should have it. High: "
        "MARAC plans are made for the highest-risk domestic abuse; an agency that does not know the "
        "plan can undo it."
    )
    action = "Share the plan (marac.plan.shared) with the agency named in this flag."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        events = view.effective()
        aware = aware_since(events)
        schools = {
            f"school/{e.data['school']}": e.recordedtime for e in events if e.type == "school.enrolled"
        }
        for plan in (e for e in events if e.type == "marac.plan.agreed"):
            ref = plan.data["plan_ref"]
            due = due_after_working_days(plan.recordedtime, 1)
            people = {view.child, *plan.data.get("persons", ())}
            expected: dict[str, datetime] = {
                agency: since
                for agency, since in aware.items()
                if agency_kind(agency) not in ("marac", "partnership")
            }
            for person, practice, link in gp_links(events):
                if person in people:
                    expected.setdefault(practice, link.recordedtime)
            for school, since in schools.items():
                expected.setdefault(school, since)
            shares = [e for e in events if e.type == "marac.plan.shared" and e.data["plan_ref"] == ref]
            # The rule looks one working day after the plan: the agencies involved by then.
            for agency in sorted(a for a, since in expected.items() if since < due):
                agency_due = due
                to_agency = [s for s in shares if agency in s.data["to"]]
                if any(s.recordedtime < agency_due for s in to_agency):
                    continue
                late = first_after(to_agency, agency_due)
                yield Finding(
                    key=f"{plan.id}|{agency}",
                    due=agency_due,
                    evidence=(plan.id,),
                    # MARAC decides who may see its plans: the flag goes to MARAC, not to the agency
                    # left out (named in detail), so that routing a flag never discloses the plan.
                    concerns=(plan.source,),
                    detail=f"MARAC plan {ref} not shared with {agency}",
                    resolved_by=late.id if late else None,
                    resolved_at=late.recordedtime if late else None,
                )
