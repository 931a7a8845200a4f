"""Which Kafka topic carries which event type (DESIGN.md, "Kafka"). Names only: no client here.

The prefix is configurable (default ``safeguarding``) so that tests and several partnerships can
share one cluster without sharing topics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.vocabulary import PARTNERSHIP_TYPES, family

DEFAULT_PREFIX = "safeguarding"
FAMILIES = (
    "incident",
    "referral",
    "closure",
    "marac",
    "contact",
    "notification",
    "registration",
)

_BY_FAMILY = {
    "incident": "incident",
    "referral": "referral",
    # The child protection process that follows a referral travels with it.
    "strategy-discussion": "referral",
    "conference": "referral",
    "marac.plan": "marac",
    "marac.referral": "marac",
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


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    @property
    def gap_flags(self) -> str:
        return f"{self.prefix}.gap-flags"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}.quarantine"

    @property
    def checkpoints(self) -> str:
        """Signed checkpoints with their consistency proofs (tlog-witness add-checkpoint bodies),
        for the agencies' witnesses; keyed by log origin."""
        return f"{self.prefix}.checkpoints"

    @property
    def cosignatures(self) -> str:
        """Checkpoints cosigned by the agencies' witnesses, back to the partnership."""
        return f"{self.prefix}.cosignatures"

    def events(self) -> list[str]:
        """The topics agencies publish to (the projector subscribes to all of them)."""
        return [f"{self.prefix}.{name}" for name in FAMILIES]

    def all(self) -> list[str]:
        return [*self.events(), self.gap_flags, self.quarantine, self.checkpoints, self.cosignatures]

    def for_type(self, event_type: str) -> str:
        """``referral.closed`` goes to ``.closure``; amendments follow the family they amend;
        partnership governance events (keys, flag lifecycle, access, tree heads) to
        ``.registration``."""
        if event_type == "referral.closed":
            return f"{self.prefix}.closure"
        if event_type in PARTNERSHIP_TYPES:
            return f"{self.prefix}.registration"
        return f"{self.prefix}.{_BY_FAMILY.get(family(event_type), 'registration')}"
