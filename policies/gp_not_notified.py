"""gp-not-notified: a GP practice of the family is not told of a domestic-abuse incident.

Child Charlie 2.14: "Neither GP practice had any knowledge about the five incidents of domestic
abuse reported to the Police and father's GP did not know he had become a parent." Family A
recommendation 3: "ensure all GPs for the family are recorded and that relevant information is
shared with them all".

Proportionality (version 2). Sharing a domestic-abuse incident with a GP practice discloses it
to everyone there who reads the record, so "the family" owed a notification is defined, not
assumed: the child; every party to the incident (victim and person of concern: each practice
needs to recognise a disclosure, or the risk its patient poses); and the parent figures who live
with the child (the abuse happens in their home, and they care for the child day to day). A
parent figure an agency has recorded as *not* living with the child, who is not a party, is not
owed it: in the issue's story an incident between the mother and her new partner, with the child
absent, had the non-resident father's practice flagged, which would tell his GP of his former
partner's new relationship for no safeguarding purpose (UK GDPR art. 5(1)(c), data
minimisation). A parent figure whose household no agency has recorded is treated as living with
the child: the review's lesson is a GP who did not know, and an unnecessary notification to a
parent's own practice is the lesser harm. Version 1 counted every parent figure.

Version 3: who is owed is judged as the partnership knew it at each moment, not as it stands at
the end of the history. Version 2 read each person's *current* practice and household, so when a
person moved practice (or was recorded as living elsewhere) the old practice's finding vanished:
a live projector had raised it and kept it, resolved "by the data changing", while a replay of
the same ledger never raised it (issue 13, DESIGN invariant 4). The lesson is the same either
way: the practice that was the family's when the incident was known had to be told. So a
practice is owed over the spells in which it was the practice of someone owed
(``policies.facts.Family``): a spell that ended before the working day was up (the person
left the practice, or was recorded as living elsewhere) was never a gap; otherwise the gap stands
and is resolved by the notification or by the event that ended the duty (the registration
elsewhere, the link), whichever came first. The new practice is owed from its registration. A
practice is owed from when the partnership knew both the registration and that its patient
was owed (a parent figure linked after the registration: from the link).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    Anchors,
    Family,
    Spell,
    domestic_abuse_incidents,
    due_after_working_days,
    family_of,
    first_gap,
    parties,
)
from policies.view import ChildView, Event


class GpNotNotified(FoldingPolicy):
    id = "gp-not-notified"
    version = 3
    severity = Severity.HIGH
    title = "GP practice not told of a domestic-abuse incident"
    source = "CSPR Child Charlie 2.14; CSPR Family A recommendation 3"
    explanation = (
        "GPs are the professionals victims most trust to disclose to, yet in Child Charlie neither "
        "family GP practice knew of any of the five domestic-abuse incidents. Every practice "
        "where the child, a party to the incident or a parent figure living with the child is "
        "registered should hear of "
        "it within one working day. High: a victim may disclose at the next appointment, and a GP who "
        "does not know of the abuse cannot recognise the disclosure or act on it."
    )
    action = "Send the incident (by id or incident reference) to the GP practice named in this flag."

    def start(self, view: ChildView) -> Fold:
        anchors = Anchors()
        anchors.context = family_of(view)
        for incident in domestic_abuse_incidents(view.of_type("incident.reported")):
            anchors.judge(incident, _judge(view, incident, anchors.context))
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """An incident is judged by the spells of the family's practices and by the
        notifications naming it: judge new incidents and those new notifications name (a new
        link or registration can end or begin a spell for every incident: start afresh)."""
        anchors: Anchors = fold.state
        if any(e.type in ("child.registered", "person.linked", "gp.registered") for e in added):
            return None
        new = domestic_abuse_incidents(e for e in added if e.type == "incident.reported")
        for incident in [*anchors.about(e for e in added if e.type == "notification.sent"), *new]:
            anchors.judge(incident, _judge(view, incident, anchors.context))
        return anchors.fold()


def _judge(view: ChildView, incident: Event, family: Family) -> Iterator[Finding]:
    involved = parties(incident)

    def people(parents: frozenset[str], elsewhere: frozenset[str]) -> frozenset[str]:
        """The child, the incident's parties and the parent figures living with the child."""
        return (parents - elsewhere) | involved | {view.child}

    def due_of(spell: Spell) -> datetime:
        # A practice recorded only later could not have been told earlier: it is owed the same
        # working day from when it became the family's (as parent-gp-unaware).
        return due_after_working_days(max(incident.recordedtime, spell.start), 1)

    # ``people`` depends on the incident only through its parties (the view's child is the
    # family's): incidents between the same parties share one answer (the rule's id in the key:
    # the Family is the view's, shared with other rules)
    owed_by_practice = family.practices(people, key=(GpNotNotified.id, frozenset(involved)))
    for practice, owed in sorted(owed_by_practice.items()):
        told = view.notifications_about(incident, to=str(practice))  # in recorded order
        gap = first_gap(owed, due_of, told[0] if told else None)
        if gap is None:
            continue
        _, due, late = gap
        yield Finding(
            key=f"{incident.id}|{practice}",
            due=due,
            evidence=(incident.id,),
            # The force that must send it, and the practice that should know (its lead can
            # ask for it: the victim may disclose there first).
            concerns=(incident.source, str(practice)),
            detail=f"{practice} not told of incident {incident.data.get('incident_ref')}",
            resolved_by=late.resolved_by,
            resolved_at=late.resolved_at,
        )
