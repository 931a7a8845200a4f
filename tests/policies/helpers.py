"""Small, stable builders for pure policy tests: events, views and flags, no I/O.

Shared by the rule tests; keep the signatures stable.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ledger.timeutil import parse_time
from policies.base import Policy
from policies.engine import Evaluation, Flag, evaluate
from policies.view import ChildView, Event

REGISTERED = (
    "police/avon-somerset",
    "csc/somerset",
    "gp/L85001",
    "phn/somerset",
    "school/100001",
    "marac/somerset",
    "leaving-care/somerset",
)
REGISTERED_AT = parse_time("2000-01-01T00:00:00Z")

_NAMESPACE = uuid.UUID("0b6c8a52-3f1e-4d0e-9a57-6c1d2e3f4a5b")
_counter = itertools.count(1)


def t(value: str | datetime) -> datetime:
    """An aware datetime from an RFC 3339 string (or a datetime, unchanged)."""
    return parse_time(value) if isinstance(value, str) else value


def new_id() -> str:
    """A deterministic uuid from a counter (same sequence in every run)."""
    return str(uuid.uuid5(_NAMESPACE, str(next(_counter))))


def ev(
    type: str,
    data: Mapping[str, Any],
    at: str | datetime,
    *,
    source: str,
    child: str = "C-1",
    id: str | None = None,
    recorded: str | datetime | None = None,
) -> Event:
    """An accepted event; ``recorded`` defaults to ``at``."""
    when = t(at)
    return Event(
        id=id or new_id(),
        type=type,
        source=source,
        subject=child,
        time=when,
        recordedtime=t(recorded) if recorded is not None else when,
        data=MappingProxyType(dict(data)),
    )


def correct(original: Event, fields: Mapping[str, Any], at: str | datetime, **kw: Any) -> Event:
    """``<family>.corrected`` of ``original`` from its source (override with source=...)."""
    kw.setdefault("source", original.source)
    kw.setdefault("child", original.subject)
    family = original.type.rsplit(".", 1)[0]
    return ev(f"{family}.corrected", {"original": original.id, "reason": "test", **fields}, at, **kw)


def withdraw(original: Event, at: str | datetime, **kw: Any) -> Event:
    """``<family>.withdrawn`` of ``original`` from its source (override with source=...)."""
    kw.setdefault("source", original.source)
    kw.setdefault("child", original.subject)
    family = original.type.rsplit(".", 1)[0]
    return ev(f"{family}.withdrawn", {"original": original.id, "reason": "test"}, at, **kw)


def view(*events: Event, registered: Iterable[str] = REGISTERED, child: str = "C-1") -> ChildView:
    return ChildView.build(child, events, {agency: REGISTERED_AT for agency in registered})


def evaluation(rule: Policy, v: ChildView, as_of: str | datetime) -> Evaluation:
    return evaluate(v, t(as_of), [rule])


def flags(rule: Policy, v: ChildView, as_of: str | datetime) -> list[Flag]:
    """Every flag the rule raised by ``as_of`` (any status)."""
    return list(evaluation(rule, v, as_of).flags)


def open_flags(rule: Policy, v: ChildView, as_of: str | datetime) -> list[Flag]:
    return [f for f in flags(rule, v, as_of) if f.is_open]


def statuses(rule: Policy, v: ChildView, as_of: str | datetime) -> list[str]:
    return [f.status for f in flags(rule, v, as_of)]


def flags_of(rule_cls: type[Policy], v: ChildView, as_of: str | datetime) -> list[Flag]:
    """Every flag raised by ``as_of`` by a rule given as its class (the brief's spelling)."""
    return flags(rule_cls(), v, as_of)
