"""sibling-not-considered: an incident or referral about one child, and a brother or sister in
the same home with nothing recorded about it.

CSPR Child Charlie 1.5: "The Police were the only agency that were aware of all five incidents";
what one agency knows about one child is not known about the next. CSPR Family A concerned
"a family of three children" who lived with the same parents and the same abuse: an incident in
the home is about every child in it.

Household facts come from ``ChildView.household`` (the other children who may share a parent
figure, with their own events; ``policies.household``). For each domestic-abuse incident and
each referral about this child, every other child who, as recorded by then, shares a co-resident
parent figure with it (a person an agency last linked to *both* children with
``lives_with_child: true``) must have an event of its own naming the incident or referral (its
id, ``incident_ref`` or ``referral_ref``: the incident recorded for the sibling, a notification
``about`` it, a referral listing it in ``incident_refs``) within one working day of its
recording; for a referral, the sibling's own referral to the same agency made from the same London
day on also counts (agencies give each child's referral its own reference, as in the Family A
scenario). A later such event resolves the flag. One flag per (incident or referral, sibling).
Concerns: the agency that recorded the incident or referral.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from policies.base import Finding, Policy, Severity
from policies.calendar import london_day
from policies.facts import co_resident_parent_figures, domestic_abuse_incidents, due_after_working_days
from policies.view import ChildView, Event

NAMING_FIELDS = ("incident_ref", "referral_ref")
NAMING_LISTS = ("about", "incident_refs")


class SiblingNotConsidered(Policy):
    id = "sibling-not-considered"
    version = 1
    severity = Severity.HIGH
    title = "Incident or referral about a child, nothing recorded for a sibling in the same home"
    source = "CSPR Child Charlie 1.5; CSPR Family A (a family of three children)"
    explanation = (
        "Abuse in a home happens to every child living there, but agencies record it against "
        "the child they met. When an incident or referral concerns one child, each brother or "
        "sister who shares a parent figure living with them needs the same incident recorded, "
        "notified or referred for them within one working day. High: the sibling is exposed to "
        "the same risk and no agency is looking at them."
    )
    action = "Record the incident or referral for the sibling named, and share it as for the first child."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        siblings = view.others()
        if not siblings:
            return
        triggers = [
            *domestic_abuse_incidents(view.of_type("incident.reported")),
            *view.of_type("referral.made"),
        ]
        own_links = view.of_type("child.registered", "person.linked")
        named = {sibling.child: _by_name(sibling) for sibling in siblings}
        for trigger in sorted(triggers, key=lambda e: (e.recordedtime, e.id)):
            at = trigger.recordedtime
            ours = co_resident_parent_figures([e for e in own_links if e.recordedtime <= at])
            if not ours:
                continue
            ref = trigger.data.get("incident_ref") or trigger.data.get("referral_ref") or trigger.id
            due = due_after_working_days(at, 1)
            for sibling in siblings:
                theirs = sibling.of_type("child.registered", "person.linked")
                if ours.isdisjoint(co_resident_parent_figures([e for e in theirs if e.recordedtime <= at])):
                    continue
                found = {e.id: e for name in _names(trigger) for e in named[sibling.child].get(name, ())}
                if trigger.type == "referral.made":
                    day = london_day(at)
                    found.update(
                        (r.id, r)
                        for r in named[sibling.child].get(_referred_to(trigger.data["to"]), ())
                        if london_day(r.recordedtime) >= day
                    )
                about = sorted(found.values(), key=lambda e: (e.recordedtime, e.id))
                if any(e.recordedtime < due for e in about):
                    continue
                late = about[0] if about else None
                yield Finding(
                    key=f"{trigger.id}|{sibling.child}",
                    due=due,
                    evidence=(trigger.id,),
                    concerns=(trigger.source,),
                    detail=f"{trigger.type} {ref} not recorded for sibling {sibling.child}",
                    resolved_by=late.id if late else None,
                    resolved_at=late.recordedtime if late else None,
                )


def _names(trigger: Event) -> set[str]:
    """What an event about the same incident or referral would call it."""
    return {trigger.id, *(str(trigger.data[f]) for f in NAMING_FIELDS if f in trigger.data)}


def _by_name(sibling: ChildView) -> dict[str, list[Event]]:
    """Name (event id, incident_ref, referral_ref) -> the sibling's events that use it: built once
    per sibling, so each trigger is a lookup rather than a scan of the sibling's history."""
    found: dict[str, list[Event]] = {}
    for event in sibling.effective():
        data: Any = event.data
        values = [data[f] for f in NAMING_FIELDS if f in data]
        values += [v for f in NAMING_LISTS for v in data.get(f, ())]
        if event.type == "referral.made":
            values.append(_referred_to(event.data["to"]))
        for value in {str(v) for v in values}:
            found.setdefault(value, []).append(event)
    return found


def _referred_to(agency: Any) -> str:
    """The index key of "a referral to this agency" (not a name any event could use)."""
    return f"referral to {agency}"
