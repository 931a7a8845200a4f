"""Per-agency hash chains checked in one pass: sequences without holes, prevhash links, and no
two events at one (source, sequence).

The projector may accept sequence n+1 before n (over a hole that is filled later), so links are
matched in whichever order the two ends appear. Memory stays per agency plus the few links still
open, not per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumers.auditor.findings import Finding


@dataclass
class _Chain:
    # Sequences seen: all of 1..contiguous, plus those beyond it (a set that stays as small as
    # the disorder, where one set of every sequence grew by an entry per event audited).
    contiguous: int = 0
    beyond: set[int] = field(default_factory=set)
    digests: dict[int, tuple[str, dict[str, Any], int]] = field(
        default_factory=dict
    )  # n -> digest, event, pos
    wanted: dict[int, tuple[str, dict[str, Any], int]] = field(default_factory=dict)  # n -> prevhash of n+1


class ChainChecker:
    def __init__(self) -> None:
        self.chains: dict[str, _Chain] = {}
        self.findings: list[Finding] = []

    def add(self, event: Mapping[str, Any], position: int, digest: str) -> None:
        """``event`` needs only id, source, sequence and prevhash; ``digest`` is its event_digest."""
        source, sequence = event.get("source"), event.get("sequence")
        if not isinstance(source, str) or not isinstance(sequence, int) or sequence < 1:
            self.findings.append(
                Finding.about("chain", "event has no valid source/sequence", event, position)
            )
            return
        chain = self.chains.get(source) or self.chains.setdefault(source, _Chain())
        # Kept until its successor comes (a dict is kept as given, not copied: the audit hands
        # over a fresh one per event, and a copy per event was a tenth of this method).
        item = event if type(event) is dict else dict(event)
        if sequence == chain.contiguous + 1:  # the usual case: the next in the chain
            chain.contiguous = sequence
        elif sequence <= chain.contiguous or sequence in chain.beyond:
            self.findings.append(
                Finding.about(
                    "equivocation", f"a second event at {source} sequence {sequence}", event, position
                )
            )
            return
        else:
            chain.beyond.add(sequence)
        while chain.contiguous + 1 in chain.beyond:
            chain.contiguous += 1
            chain.beyond.remove(chain.contiguous)
        prevhash = event.get("prevhash")
        if sequence == 1:
            if prevhash != "":
                self.findings.append(
                    Finding.about("chain", "sequence 1 must have an empty prevhash", event, position)
                )
        elif sequence - 1 in chain.digests:
            self._link(chain.digests.pop(sequence - 1)[0], prevhash, item, position)
        else:
            chain.wanted[sequence - 1] = (str(prevhash), item, position)
        if sequence in chain.wanted:
            expected, successor, successor_position = chain.wanted.pop(sequence)
            self._link(digest, expected, successor, successor_position)
        else:
            chain.digests[sequence] = (digest, item, position)

    def _link(self, predecessor_digest: str, prevhash: Any, event: dict[str, Any], position: int) -> None:
        if predecessor_digest != prevhash:
            self.findings.append(
                Finding.about(
                    "chain",
                    f"prevhash does not match the digest of sequence {event['sequence'] - 1}",
                    event,
                    position,
                )
            )

    def finish(self) -> list[Finding]:
        """Report holes: a successor waiting for a predecessor that never came."""
        for source, chain in sorted(self.chains.items()):
            for missing, (_, successor, position) in sorted(chain.wanted.items()):
                self.findings.append(
                    Finding.about(
                        "chain",
                        f"{source} sequence {missing} is missing: the chain has a hole before this event",
                        successor,
                        position,
                    )
                )
        return self.findings

    @property
    def sources(self) -> int:
        return len(self.chains)
