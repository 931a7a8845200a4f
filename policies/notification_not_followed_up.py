"""notification-not-followed-up: public health nursing told of an incident, nobody spoke to the family.

Child Charlie 2.7: "There was no follow up to the first incident of domestic abuse they were made
aware of until a few weeks later". 2.8: "The health visitor made contact by text with mother
seven days after PHN received this notification". 6.1: PHN "updated record keeping guidelines to
specify that text messages should not be used for the purpose of assessment or clinical
contact".

Only notifications whose ``about`` names an incident in the child's view count. Due at the first
instant after the 5th working day from the notification's recorded time (1 ms after
``working_days_deadline``). A follow-up is a ``contact.recorded`` by the notified PHN agency,
recorded at or after the notification, with the child or a parent figure, in person, by phone or
by video. Concerns: the notified PHN agency.

Version 2: a contact with a person counts from when the partnership knew the person to be a
parent figure (from the contact, or from the link if that was recorded later). Version 1 asked
whether the person was a parent figure by the end of the history, so a link recorded after the
deadline made an earlier contact count retroactively and dropped a finding already raised: a
live projector kept it, resolved "by the data changing", while a replay never raised it (issue
13). The contact did happen; what was missing at the deadline was knowing it was with the family.
So it resolves the gap from when the link made it count (the link is the resolving event).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime

from policies.base import Fold, FoldingPolicy, Severity
from policies.facts import (
    PhnNotified,
    incident_names,
    parent_figures,
    recorded,
    recorded_key,
)
from policies.view import ChildView, Event

REAL_CONTACT = frozenset({"in-person", "phone", "video"})


class NotificationNotFollowedUp(FoldingPolicy):
    id = "notification-not-followed-up"
    version = 2
    severity = Severity.MEDIUM
    title = "Health visiting told of an incident, no contact with the family within five working days"
    source = "CSPR Child Charlie 2.7, 6.1"
    explanation = (
        "Public health nursing received police reports of Charlie's incidents but followed one up "
        "only weeks later and another by text message. A notification about an incident needs a "
        "real contact (in person, by phone or video) with the child or a parent figure within "
        "five working days; a text or letter does not count."
    )
    action = "Contact the child or a parent figure in person, by phone or by video, and record it."

    def start(self, view: ChildView) -> Fold:
        state = PhnNotified(
            incident_names(view.of_type("incident.reported")), 5, "no contact within 5 working days"
        )
        since: dict[str, Event | None] = {view.child: None}  # person -> the record making them family
        for event in recorded(view.of_type("child.registered", "person.linked")):
            for person in parent_figures((event,)):
                since.setdefault(person, event)
        state.context = since
        contacts: dict[str, list[Event]] = {}
        for contact in view.of_type("contact.recorded"):
            if _counts(contact, since):
                contacts.setdefault(contact.source, []).append(contact)
        follow_ups = {agency: _FollowUps(found, since) for agency, found in contacts.items()}
        for notification in view.of_type("notification.sent"):
            if state.counted(notification):
                found = follow_ups.get(str(notification.data["to"]))
                state.judge(notification, found.first_from(notification.recordedtime) if found else None)
        return state.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """A new notification has no follow-up yet, and a new real contact with the family
        answers the notifications to its agency still unanswered (``PhnNotified.resume``). A
        new link can make earlier contacts count: start afresh (rare)."""
        state: PhnNotified = fold.state
        if any(event.type in ("child.registered", "person.linked") for event in added):
            return None
        since = state.context
        return state.resume(added, lambda e: e.type == "contact.recorded" and _counts(e, since))


def _counts(contact: Event, since: dict[str, Event | None]) -> bool:
    """A real contact with the child or a parent figure (as far as links say, by now)."""
    return contact.data["person"] in since and contact.data["mode"] in REAL_CONTACT


class _FollowUps:
    """One agency's real contacts with the family, asked "of the contacts recorded at or after
    t, which first counted, and by which record?" by bisection: a contact counts once both it
    and the link that made its person family are recorded, so the answer is the later of the
    two, and the earliest answer over a suffix of the contacts is precomputed."""

    def __init__(self, contacts: Iterable[Event], since: dict[str, Event | None]) -> None:
        ordered = sorted(contacts, key=recorded_key)
        self._times = [c.recordedtime for c in ordered]
        self._first: list[Event | None] = [None] * (len(ordered) + 1)
        for index in range(len(ordered) - 1, -1, -1):
            contact, link = ordered[index], since[ordered[index].data["person"]]
            counted = contact if link is None else max(contact, link, key=recorded_key)
            later = self._first[index + 1]
            self._first[index] = (
                counted if later is None or recorded_key(counted) <= recorded_key(later) else later
            )

    def first_from(self, at: datetime) -> Event | None:
        return self._first[bisect_left(self._times, at)]
