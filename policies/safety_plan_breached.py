"""safety-plan-breached: contact with a person a safety plan says the child must not see.

Child Charlie 2.8: mother said "her intention was not to allow Charlie to have contact with
father" while a further incident had happened the day before; 2.11: "the health visitor advised
mother that Charlie should have no contact with father until a safety plan was implemented";
2.12-2.13: contact continued, including overnight stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import first_after, parties
from policies.view import ChildView, Event


class SafetyPlanBreached(Policy):
    id = "safety-plan-breached"
    version = 1
    severity = Severity.HIGH
    title = "Safety plan breached: contact with a person the plan excludes"
    source = "CSPR Child Charlie 2.8, 2.11-2.13"
    explanation = (
        "Charlie's safety plan was 'no contact with father'; agencies learned of contact, and of "
        "overnight stays, and did not explore the risk. When an incident with the child present "
        "names an excluded person, or a contact arrangement shows contact the plan forbids, the "
        "plan has failed and must be revisited."
    )
    action = "Review the safety plan with the family now and record the revised plan (same plan_ref)."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        events = view.effective()
        plans = sorted((e for e in events if e.type == "safety-plan.recorded"), key=lambda e: e.recordedtime)
        breaches = [
            e
            for e in events
            if (e.type == "incident.reported" and e.data.get("children_present"))
            or e.type == "contact-arrangement.recorded"
        ]
        for breach in sorted(breaches, key=lambda e: (e.recordedtime, e.id)):
            current = _current_plans(plans, breach.recordedtime)
            for plan in current:
                for term in plan.data["terms"]:
                    if not _breaches(term, breach):
                        continue
                    revised = first_after(
                        [p for p in plans if p.data["plan_ref"] == plan.data["plan_ref"] and p.id != plan.id],
                        breach.recordedtime,
                    )
                    yield Finding(
                        key=f"{plan.id}|{breach.id}|{term['person']}",
                        due=breach.recordedtime,
                        evidence=(plan.id, breach.id),
                        concerns=tuple(sorted({plan.source, breach.source})),
                        detail=(
                            f"plan {plan.data['plan_ref']} ({term['contact']} for {term['person']}) breached"
                        ),
                        resolved_by=revised.id if revised else None,
                        resolved_at=revised.recordedtime if revised else None,
                    )


def _current_plans(plans: list[Event], when: datetime) -> list[Event]:
    """The latest version of each plan recorded before ``when``."""
    latest: dict[str, Event] = {}
    for plan in plans:
        if plan.recordedtime < when:
            latest[plan.data["plan_ref"]] = plan
    return list(latest.values())


def _breaches(term: dict[str, str], event: Event) -> bool:
    person, contact = term["person"], term["contact"]
    if contact == "none":
        if event.type == "incident.reported":
            return person in parties(event)
        return event.data["person"] == person
    if contact == "daytime-only":
        return (
            event.type == "contact-arrangement.recorded"
            and event.data["person"] == person
            and bool(event.data.get("overnight"))
        )
    return False
