"""marac-plan-not-shared: a MARAC plan not shared with everyone working with the child.

Family A recommendation 7: "Information about orders or plans in respect of Domestic Abuse (e.g.
MARAC and DVPOs) are shared with all professionals working with children in the family".

Version 2 (where the issue was silent, decided here):
- "working with the children" is judged for as long as the plan is *live*, not only one working
  day after it is agreed: an agency that becomes involved while the plan is live (housing starts
  work with the mother, a referral is sent to it, the child joins a school) is owed the plan one
  working day after it became involved. A plan is live from when it is recorded until the next
  plan for the child is recorded (MARAC reviews a repeat case with a new plan) or it is withdrawn.
- involved: the source of any event about the child, the ``to`` of a notification, the ``to`` of
  a ``referral.made`` that names a registered agency (version 1 did not count a referral's
  recipient), the current GP practice of the child and of each person in the plan, and the
  child's current school (a school the child left before the plan is not owed it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, gp_links, late, recorded_key
from policies.school_not_notified import current_schools
from policies.view import ChildView, Event


class MaracPlanNotShared(Policy):
    id = "marac-plan-not-shared"
    version = 2
    severity = Severity.HIGH
    title = "MARAC plan not shared with an agency working with the child"
    source = "CSPR Family A recommendation 7"
    explanation = (
        "In Family A the MARAC plan was not known to all the professionals working with the "
        "children, so the plans for the children and the adults could not reflect each other. "
        "Every agency involved with the child while a plan is live (aware of the child, sent a "
        "referral, the GP practice of the child or of a person in the plan, the child's school) "
        "should have it within one working day of the plan, or of becoming involved if later. "
        "High: MARAC plans are made for the highest-risk domestic abuse; an agency that does not "
        "know the plan can undo it."
    )
    action = "Share the plan (marac.plan.shared) with the agency named in this flag."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        plans = sorted(view.of_type("marac.plan.agreed"), key=lambda e: (e.recordedtime, e.id))
        if not plans:
            return
        involved = _involved(view)
        enrolments = view.of_type("school.enrolled", "school.left")
        practices = gp_links(view.of_type("gp.registered"))  # once per view, not once per plan
        first_shared: dict[tuple[str, str], Event] = {}  # (plan_ref, agency) -> first share with it
        for share in view.of_type("marac.plan.shared"):
            for agency in share.data["to"]:
                known = first_shared.get((share.data["plan_ref"], agency))
                if known is None or recorded_key(share) < recorded_key(known):
                    first_shared[(share.data["plan_ref"], agency)] = share
        for index, plan in enumerate(plans):
            ref = plan.data["plan_ref"]
            ends = plans[index + 1].recordedtime if index + 1 < len(plans) else None
            people = {view.child, *plan.data.get("persons", ())}
            expected = dict(involved)
            for person, practice, link in practices:
                if person in people:
                    expected[practice] = min(expected.get(practice, link.recordedtime), link.recordedtime)
            for school, since in current_schools(enrolments, plan.time).items():
                expected.setdefault(school, since)
            for enrolment in enrolments:  # schools joined while the plan is live
                if enrolment.type == "school.enrolled" and enrolment.time > plan.time:
                    expected.setdefault(f"school/{enrolment.data['school']}", enrolment.recordedtime)
            for agency, since in sorted(expected.items()):
                if ends is not None and since >= ends:
                    continue  # involved only once a newer plan was live: that plan is owed
                due = due_after_working_days(max(plan.recordedtime, since), 1)
                gap = late(first_shared.get((ref, agency)), due)
                if gap is None:
                    continue
                yield Finding(
                    key=f"{plan.id}|{agency}",
                    due=due,
                    evidence=(plan.id,),
                    # MARAC decides who may see its plans: the flag goes to MARAC, not to the agency
                    # left out (named in detail), so that routing a flag never discloses the plan.
                    concerns=(plan.source,),
                    detail=f"MARAC plan {ref} not shared with {agency}",
                    resolved_by=gap.resolved_by,
                    resolved_at=gap.resolved_at,
                )


def _involved(view: ChildView) -> dict[str, datetime]:
    """Agency -> since when it works with the child: aware of it, or sent a referral about it."""
    involved = {
        agency: since
        for agency, since in view.aware_since().items()
        if agency_kind(agency) not in ("marac", "partnership")
    }
    for referral in view.of_type("referral.made"):
        to = str(referral.data["to"])
        if view.is_registered_agency(to) and agency_kind(to) not in ("marac", "partnership"):
            involved[to] = min(involved.get(to, referral.recordedtime), referral.recordedtime)
    return involved
