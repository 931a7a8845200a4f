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

Version 3: the GP practices and schools are judged as the partnership knew them over time
(``policies.facts.Family.practices``, ``policies.facts.school_spells``), not as they stand at the
end of the history. Version 2 dropped the finding of a practice a person in the plan later left,
or of a school the child was later recorded as having left, so a live projector kept a flag
(resolved "by the data changing") that a replay never raised (issue 13). Now a practice or school
that stopped being involved before the working day was up was never owed; one that stopped later
keeps its gap, resolved by the event that ended its involvement (the registration elsewhere, the
leaving) unless the plan was shared first: a plan is for those working with the child, and
sending it to a school the child has left would disclose it for no purpose. An agency involved
in its own right (aware of the child, sent a referral) stays owed whatever its practice or school
role does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import Spell, due_after_working_days, family_of, first_gap, recorded_key, school_spells
from policies.view import ChildView, Event


class MaracPlanNotShared(Policy):
    id = "marac-plan-not-shared"
    version = 3
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
        family = family_of(view)
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
            owed: dict[str, list[Spell]] = {}
            for found in (
                family.practices(_these(people)),
                school_spells(enrolments, plan.time, joined_after=True),
            ):
                for agency, agency_spells in found.items():
                    owed.setdefault(str(agency), []).extend(agency_spells)
            for agency, since in involved.items():
                owed[agency] = _involved_from(owed.get(agency, []), since)

            def due_of(spell: Spell, plan: Event = plan) -> datetime:
                return due_after_working_days(max(plan.recordedtime, spell.start), 1)

            for agency, agency_spells in sorted(owed.items()):
                live = [spell for spell in agency_spells if ends is None or spell.start < ends]
                # (involved only once a newer plan was live: that plan is owed, not this one)
                gap = first_gap(live, due_of, first_shared.get((ref, agency)))
                if gap is None:
                    continue
                _, due, late = gap
                yield Finding(
                    key=f"{plan.id}|{agency}",
                    due=due,
                    evidence=(plan.id,),
                    # MARAC decides who may see its plans: the flag goes to MARAC, not to the agency
                    # left out (named in detail), so that routing a flag never discloses the plan.
                    concerns=(plan.source,),
                    detail=f"MARAC plan {ref} not shared with {agency}",
                    resolved_by=late.resolved_by,
                    resolved_at=late.resolved_at,
                )


def _these(people: set[str]) -> Callable[[frozenset[str], frozenset[str]], set[str]]:
    """``Family.practices``'s question for a plan: the child and the persons in it, always."""
    return lambda _parents, _elsewhere: people


def _involved_from(spells: list[Spell], since: datetime) -> list[Spell]:
    """An agency's spells as a practice or school, and from ``since`` on as involved in its own
    right (which never ends): a spell running at ``since`` runs on; later ones are covered."""
    kept = [spell for spell in spells if spell.start < since]
    if kept and (kept[-1].ended_by is None or kept[-1].ended_by.recordedtime >= since):
        kept[-1] = Spell(kept[-1].start, kept[-1].started_by, None, kept[-1].payload)
        return kept
    return [*kept, Spell(since, None)]


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
