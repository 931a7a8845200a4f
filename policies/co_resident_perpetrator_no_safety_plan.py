"""co-resident-perpetrator-no-safety-plan: a second domestic-abuse incident while the person of
concern still lives with the child, and no safety plan.

CSPR Family A: "Couples in an abusive relationship sometimes decide not to separate and safety
planning needs to happen"; "The policy of separate and isolate does not always work"; the mother
"had to be secretive and could then not ask for help". When the family stays together after
abuse, the plan is not separation but safety.

For each person of concern (perpetrator, alleged perpetrator, counter-allegation) named in a
second domestic-abuse incident about the child: if, as recorded by the second incident's
recording, an agency last linked them as living with the child (``person.linked``
``lives_with_child: true``), a ``safety-plan.recorded`` with a term about them must be recorded
at or after the first incident naming them, within five working days of the second incident's
recording. A link recorded before then saying they no longer live with the child ends the gap (a
plan is then safety-plan-breached's and overnight-contact-unexplored's concern); a later plan
resolves it. One flag per person. Concerns: the agencies that recorded the two incidents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    domestic_abuse_incidents,
    due_after_working_days,
    earliest,
    late,
    latest_links,
    recorded_key,
)
from policies.view import CONCERN_ROLES, ChildView, Event

WORKING_DAYS = 5


class CoResidentPerpetratorNoSafetyPlan(FoldingPolicy):
    id = "co-resident-perpetrator-no-safety-plan"
    version = 1
    severity = Severity.HIGH
    title = "Second domestic-abuse incident, person of concern still at home, no safety plan"
    source = "CSPR Family A: domestic abuse ('couples sometimes decide not to separate')"
    explanation = (
        "Family A's review found that requiring the couple to separate drove the abuse out of "
        "sight; couples sometimes stay together, and then safety planning must happen. After a "
        "second incident naming a person of concern who still lives with the child, a safety plan "
        "covering them should be recorded within five working days. High: the child lives with "
        "the abuse, and nothing written says how they are kept safe."
    )
    action = "Agree a safety plan with the family that covers the person named (safety-plan.recorded)."

    def start(self, view: ChildView) -> Fold:
        state = _State(
            sorted(view.of_type("person.linked"), key=recorded_key),
            sorted(view.of_type("safety-plan.recorded"), key=recorded_key),
        )
        state.add_incidents(
            sorted(domestic_abuse_incidents(view.of_type("incident.reported")), key=recorded_key)
        )
        return Fold(list(state.judge()), state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Only the first two incidents naming each person count, and the links and plans are
        few: keep them, add what arrived (all recorded after them, so appended in recorded
        order), and judge each person again (issue 13: sorting every incident on each event
        made the rule grow with the history)."""
        state: _State = fold.state
        state.add_incidents(domestic_abuse_incidents(e for e in added if e.type == "incident.reported"))
        state.links += [e for e in added if e.type == "person.linked"]
        state.plans += [e for e in added if e.type == "safety-plan.recorded"]
        return Fold(list(state.judge()), state)


class _State:
    """The first two domestic-abuse incidents naming each person of concern (recorded order),
    and the links and safety plans in recorded order."""

    def __init__(self, links: list[Event], plans: list[Event]) -> None:
        self.by_person: dict[str, list[Event]] = {}
        self.links, self.plans = links, plans

    def add_incidents(self, incidents: Iterable[Event]) -> None:
        for incident in incidents:  # in recorded order
            for person in {
                p["person"] for p in incident.data.get("parties", ()) if p["role"] in CONCERN_ROLES
            }:
                named = self.by_person.setdefault(person, [])
                if len(named) < 2:
                    named.append(incident)

    def judge(self) -> Iterator[Finding]:
        links, plans = self.links, self.plans
        for person, named in sorted(self.by_person.items()):
            if len(named) < 2:
                continue
            first, second = named[0], named[1]
            known = [link for link in links if link.recordedtime <= second.recordedtime]
            link = latest_links(known).get(person)
            if link is None or link.data.get("lives_with_child") is not True:
                continue
            due = due_after_working_days(second.recordedtime, WORKING_DAYS)
            moved_out = [
                e
                for e in links
                if e.data["person"] == person
                and second.recordedtime < e.recordedtime < due
                and e.data.get("lives_with_child") is False
            ]
            covering = earliest(
                p
                for p in plans
                if p.recordedtime >= first.recordedtime
                and any(t["person"] == person for t in p.data["terms"])
            )
            gap = late(covering, due)
            if moved_out or gap is None:
                continue
            yield Finding(
                key=person,
                due=due,
                evidence=(first.id, second.id, link.id),
                concerns=tuple(sorted({first.source, second.source})),
                detail=f"{person} named in two incidents, lives with the child, no safety plan",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
