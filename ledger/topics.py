"""Which Kafka topic carries which event type (DESIGN.md, "Kafka"). Names only: no client here."""

from __future__ import annotations

from ledger.vocabulary import PARTNERSHIP_TYPES, family

PREFIX = "safeguarding"
FAMILIES = (
    "incident", "referral", "closure", "marac", "contact", "notification", "registration",
)  # fmt: skip
GAP_FLAGS = f"{PREFIX}.gap-flags"
QUARANTINE = f"{PREFIX}.quarantine"

_BY_FAMILY = {
    "incident": "incident",
    "referral": "referral",
    "marac.plan": "marac",
    "safety-plan": "marac",
    "contact": "contact",
    "contact-arrangement": "contact",
    "assessment": "contact",
    "notification": "notification",
    "child": "registration",
    "person": "registration",
    "gp": "registration",
    "school": "registration",
}


def event_topics() -> list[str]:
    """The topics agencies publish to (the projector subscribes to all of them)."""
    return [f"{PREFIX}.{name}" for name in FAMILIES]


def all_topics() -> list[str]:
    return [*event_topics(), GAP_FLAGS, QUARANTINE]


def topic_for(event_type: str) -> str:
    """``referral.closed`` goes to ``.closure``; amendments follow the family they amend;
    partnership governance events (keys, flag lifecycle, access, tree heads) to ``.registration``.
    """
    if event_type == "referral.closed":
        return f"{PREFIX}.closure"
    if event_type in PARTNERSHIP_TYPES:
        return f"{PREFIX}.registration"
    return f"{PREFIX}.{_BY_FAMILY.get(family(event_type), 'registration')}"
