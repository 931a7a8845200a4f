"""Scenario files (DESIGN.md, "Scenarios"): loading with errors that name the file, the event
and the field, and checking a file's expectations against the flags open at a time.

Event ids missing from a file are derived from the scenario's name and the event's position, so
running a scenario twice gives the same ids, the same evidence and the same flag ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.timeutil import TimeFormatError, parse_time
from policies.engine import Flag
from policies.household import households
from policies.view import ChildView, Event

SCENARIO_NAMESPACE = uuid.UUID("5c3f1d2e-8b7a-4e6f-9d1c-2a4b6c8e0f13")
# Agency keys are registered valid from this long before the story's first event.
REGISTRATION_LEAD = timedelta(days=1)


class ScenarioError(ValueError):
    """A scenario file that cannot be run, with where and why."""


@dataclass(frozen=True)
class ScenarioEvent:
    at: datetime
    recorded: datetime
    agency: str
    type: str
    child: str
    data: Mapping[str, Any]
    id: str


@dataclass(frozen=True)
class Expectation:
    as_of: datetime
    open: tuple[Mapping[str, Any], ...]
    not_open: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    agencies: tuple[str, ...]
    events: tuple[ScenarioEvent, ...]
    expect: tuple[Expectation, ...]


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{path}: cannot read a JSON scenario: {exc}") from exc
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: a scenario is a JSON object")
    name = _required(document, "name", str, path)
    agencies = tuple(_required(document, "agencies", list, path))
    events = tuple(
        _event(raw, index, name, agencies, path)
        for index, raw in enumerate(_required(document, "events", list, path))
    )
    expect = tuple(_expectation(raw, index, path) for index, raw in enumerate(document.get("expect", [])))
    return Scenario(name, str(document.get("description", "")), agencies, events, expect)


def registration_time(scenario: Scenario) -> datetime:
    """When the scenario's agency keys become valid: a day before anything in the story."""
    times = [t for e in scenario.events for t in (e.at, e.recorded)]
    if not times:
        raise ScenarioError(f"scenario {scenario.name} has no events")
    return min(times) - REGISTRATION_LEAD


def offline_views(scenario: Scenario) -> dict[str, ChildView]:
    """The children's views straight from the file, without signing or a broker: for fast tests
    of rules against stories (the end-to-end runner goes through the real path)."""
    registered = dict.fromkeys(scenario.agencies, registration_time(scenario))
    by_child: dict[str, list[Event]] = {}
    for e in scenario.events:
        by_child.setdefault(e.child, []).append(
            Event(
                id=e.id,
                type=e.type,
                source=e.agency,
                subject=e.child,
                time=e.at,
                recordedtime=e.recorded,
                data=e.data,
            )
        )
    household = households(by_child)
    return {
        child: ChildView.build(child, events, registered, household[child])
        for child, events in by_child.items()
    }


def check_expectation(expectation: Expectation, open_flags: Sequence[Flag]) -> list[str]:
    """Failure messages; an entry matches an open flag when every field it gives is equal."""
    rendered = [f.to_json() for f in open_flags]
    failures = []
    for wanted in expectation.open:
        if not any(_matches(wanted, flag) for flag in rendered):
            failures.append(f"expected open: {json.dumps(dict(wanted), sort_keys=True)}")
    for unwanted in expectation.not_open:
        hits = [flag for flag in rendered if _matches(unwanted, flag)]
        if hits:
            failures.append(
                f"expected not open: {json.dumps(dict(unwanted), sort_keys=True)} "
                f"(open: {', '.join(h['detail'] or h['id'] for h in hits)})"
            )
    return failures


def _matches(wanted: Mapping[str, Any], flag: Mapping[str, Any]) -> bool:
    return all(flag.get(key) == value for key, value in wanted.items())


def _required(document: Mapping[str, Any], key: str, kind: type, where: object) -> Any:
    value = document.get(key)
    if not isinstance(value, kind):
        raise ScenarioError(f"{where}: '{key}' must be a {kind.__name__}, got {json.dumps(value)[:60]}")
    return value


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected an RFC 3339 time, got {json.dumps(value)[:60]}")
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


def _event(raw: Any, index: int, name: str, agencies: tuple[str, ...], path: Path) -> ScenarioEvent:
    where = f"{path}: events[{index}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: an event is a JSON object")
    agency = _required(raw, "agency", str, where)
    if agency not in agencies:
        raise ScenarioError(f"{where}: agency {agency!r} is not in the scenario's 'agencies'")
    at = _time(raw.get("at"), f"{where}.at")
    return ScenarioEvent(
        at=at,
        recorded=_time(raw["recorded"], f"{where}.recorded") if "recorded" in raw else at,
        agency=agency,
        type=_required(raw, "type", str, where),
        child=_required(raw, "child", str, where),
        data=_required(raw, "data", dict, where),
        id=str(raw.get("id") or uuid.uuid5(SCENARIO_NAMESPACE, f"{name}/{index}")),
    )


def _expectation(raw: Any, index: int, path: Path) -> Expectation:
    where = f"{path}: expect[{index}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: an expectation is a JSON object")
    entries = {}
    for key in ("open", "not_open"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ScenarioError(
                f'{where}.{key}: expected a list of objects like {{"rule": ..., "child": ...}}'
            )
        entries[key] = tuple(value)
    return Expectation(_time(raw.get("as_of"), f"{where}.as_of"), entries["open"], entries["not_open"])
