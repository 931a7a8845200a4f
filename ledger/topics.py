"""Which Kafka topics the partnership uses (docs/envelope.md, "Topics"). Names only: no client.

Every event travels on one intake topic, keyed by its agency (``source``): an agency's hash
chain is then one ordered stream, in one partition, and the projector meets each event after
its predecessor instead of holding it (issue 13; DESIGN.md allows the change as long as one
child's events still meet in one consumer, which the child projection does: it follows the
ledger, sharded by child, docs/stages.md). The per-family topics of the first layout are only
read, so that a partnership upgrading with events still in them loses none.

The prefix is configurable (default ``safeguarding``) so that tests and several partnerships can
share one cluster without sharing topics.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "safeguarding"
# The first layout's event topics, one per family, keyed by child. Nothing publishes to them
# any more; consumers still read those that exist (``Topics.events``) until they are drained and
# deleted (docs/envelope.md, "Upgrading from the family topics").
LEGACY_FAMILIES = (
    "incident",
    "referral",
    "closure",
    "marac",
    "contact",
    "notification",
    "registration",
)


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    @property
    def intake(self) -> str:
        """Every event of every agency, keyed by ``source`` (``record_key``)."""
        return f"{self.prefix}.intake"

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

    def legacy_events(self) -> list[str]:
        """The first layout's per-family event topics: read (if they exist), never created."""
        return [f"{self.prefix}.{name}" for name in LEGACY_FAMILIES]

    def events(self) -> list[str]:
        """The topics events are read from: the intake topic, then the legacy ones. A reader
        subscribes by a pattern or assigns only existing partitions (``transport.kafka``), so a
        legacy topic that does not exist is neither created nor waited for."""
        return [self.intake, *self.legacy_events()]

    def all(self) -> list[str]:
        """The topics a partnership creates (``sgledger topics ensure``, deploy/topics.sh)."""
        return [self.intake, self.gap_flags, self.quarantine, self.checkpoints, self.cosignatures]

    def for_type(self, event_type: str) -> str:
        """The topic an event of this type is published to: the intake topic, whatever the type
        (the type is kept in the signature so that producers need not know the layout)."""
        del event_type
        return self.intake


def record_key(source: str) -> bytes:
    """The Kafka record key of an event: its agency, so that the agency's chain stays in one
    partition, in sequence order."""
    return source.encode()
