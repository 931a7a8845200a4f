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
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_from, incident_names, late, parent_figures, timelines
from policies.view import ChildView

REAL_CONTACT = frozenset({"in-person", "phone", "video"})


class NotificationNotFollowedUp(Policy):
    id = "notification-not-followed-up"
    version = 1
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

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        incidents = incident_names(view.of_type("incident.reported"))
        family = parent_figures(view.of_type("child.registered", "person.linked")) | {view.child}
        real_contacts = timelines(
            (
                e
                for e in view.of_type("contact.recorded")
                if e.data["person"] in family and e.data["mode"] in REAL_CONTACT
            ),
            lambda e: e.source,
        )
        for notification in view.of_type("notification.sent"):
            phn = str(notification.data["to"])
            if agency_kind(phn) != "phn" or incidents.isdisjoint(notification.data.get("about", ())):
                continue
            due = due_after_working_days(notification.recordedtime, 5)
            gap = late(first_from(real_contacts, phn, notification.recordedtime), due)
            if gap is None:
                continue
            yield Finding(
                key=notification.id,
                due=due,
                evidence=(notification.id,),
                concerns=(phn,),
                detail=f"{phn} told of {', '.join(map(str, notification.data['about']))}; "
                "no contact within 5 working days",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
