"""What the auditor reports: one finding per thing wrong, naming the event concerned.

A review author or an operator has to act on a finding without reading code, so each one carries
the event's id, agency, sequence and ledger position when known, and a sentence saying what is
wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    check: str  # storage, index, key-registration, signature, chain, equivocation, topics, tree-head
    detail: str
    event_id: str | None = None
    source: str | None = None
    sequence: int | None = None
    position: int | None = None

    @classmethod
    def about(cls, check: str, detail: str, event: Mapping[str, Any], position: int | None) -> Finding:
        """A finding naming ``event`` (an envelope) at ``position``."""
        sequence = event.get("sequence")
        return cls(
            check,
            detail,
            event_id=str(event.get("id")) if event.get("id") is not None else None,
            source=str(event.get("source")) if event.get("source") is not None else None,
            sequence=sequence if isinstance(sequence, int) else None,
            position=position,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("position", self.position),
                ("event", self.event_id),
                ("source", self.source),
                ("sequence", self.sequence),
            )
            if value is not None
        )
        return f"[{self.check}] {where}: {self.detail}" if where else f"[{self.check}] {self.detail}"
