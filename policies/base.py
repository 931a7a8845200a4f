"""What a gap rule is and what it produces.

A rule is pure: ``findings(view, as_of)`` sees only events recorded by ``as_of`` and reads no
clock. A finding is a gap with the time it began (``due``); a finding whose ``due`` is still in the
future is a deadline that has not passed yet. The engine turns findings into flags.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from policies.view import ChildView, Event


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def instant(t: datetime) -> int:
    """Whole microseconds since the epoch: one integer per instant, whatever the zone (comparing
    datetimes in different zones asks each for its UTC offset on every comparison)."""
    return (t - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, init=False)
class Finding:
    key: str  # stable identity of this gap within (rule, child), e.g. "<incident id>|L85001"
    due: datetime  # when the gap began (or, if after as_of, will begin unless closed in time)
    evidence: tuple[str, ...]  # ids of the events that show the gap
    concerns: tuple[str, ...]  # agency ids the flag is for (the alerter routes to their leads)
    detail: str = ""  # one specific sentence; ids and refs only, never names or free text
    resolved_by: str | None = None  # id of the event that closed the gap after it was due
    resolved_at: datetime | None = None  # that event's recordedtime
    # ``instant(due)``, made with the finding: the engine orders every finding by it (a folding
    # rule hands it the same findings on every event). Set in ``__init__``, not a
    # ``cached_property``, whose first access (Python 3.11: under a lock) cost as much again.
    instant: int = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        key: str,
        due: datetime,
        evidence: tuple[str, ...],
        concerns: tuple[str, ...],
        detail: str = "",
        resolved_by: str | None = None,
        resolved_at: datetime | None = None,
    ) -> None:
        """The generated ``__init__``'s signature and fields, set in one step: a frozen
        dataclass's own sets each field with ``object.__setattr__`` (~2.1 against ~1.2 us a
        finding), and a replay's evaluations start most rules afresh, making ~8 findings per
        event (issue 13, tenth round). Frozen all the same (no ``__setattr__``); equality, hash
        and repr are the dataclass's; tests/policies/test_engine.py checks the fields."""
        self.__dict__.update(
            key=key, due=due, evidence=evidence, concerns=concerns, detail=detail,
            resolved_by=resolved_by, resolved_at=resolved_at, instant=instant(due),
        )  # fmt: skip


class RuleDescription(Protocol):
    """What every flag says about the rule that raised it (child rules and integrity rules)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def explanation(self) -> str: ...
    @property
    def action(self) -> str: ...


class Policy(ABC):
    """One lesson from a review, as a rule. Subclasses set every ClassVar beside their logic."""

    id: ClassVar[str]
    version: ClassVar[int]
    severity: ClassVar[Severity]
    title: ClassVar[str]
    source: ClassVar[str]  # the review and paragraph it comes from
    explanation: ClassVar[str]  # why this matters, in plain English
    action: ClassVar[str]  # what the flag asks someone to do

    @abstractmethod
    def findings(self, view: ChildView, as_of: datetime) -> Iterable[Finding]:
        """Gaps visible in ``view`` (already cut to events recorded by ``as_of``).

        Read the view only through its methods, and depend on ``as_of`` only through the view:
        ``policies.engine.Evaluator`` reuses a rule's findings while what it read is unchanged
        (docs/notes/rule-evaluation.md; tests/policies/test_incremental.py checks both)."""


@dataclass
class Fold:
    """A rule's findings over a view, and whatever the rule keeps to extend them (its ``state``)."""

    findings: list[Finding]
    state: Any


class FoldingPolicy(Policy):
    """A rule that can bring its findings up to date from what it kept, given only the events
    added since (issue 13: live traffic adds one event to a long history; re-running a rule over
    the whole history on every event made the cost per event grow with it).

    ``start`` computes the findings of a view from nothing (``findings`` is ``start``, so a full
    evaluation and a replay run exactly this code). ``resume`` is asked only when the events the
    rule read changed by additions alone, every one recorded after everything the previous view
    held (live traffic in recorded order): no correction or withdrawal among them, nothing
    back-dated in recorded time, the agencies, household and awareness it read unchanged
    (``policies.engine.Evaluator`` checks all this from the view's fingerprints). It gets the
    previous ``Fold``, the new view and the added events of the types it read (in recorded
    order, ties by id), and returns the new ``Fold``, or None to be started afresh (e.g. an
    added event touches an anchor in a way the rule does not extend). It must return exactly
    what ``start`` would (tests/policies/test_incremental.py compares them), and may change the
    state it is given: the engine never uses a fold again after resuming it. ``start`` must read
    (through the view's methods) every event type its fold depends on, even when the view holds
    nothing to judge yet: ``resume`` is given the additions of the types read before.
    """

    @abstractmethod
    def start(self, view: ChildView) -> Fold: ...

    @abstractmethod
    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None: ...

    def findings(self, view: ChildView, as_of: datetime) -> Iterable[Finding]:
        return self.start(view).findings
