"""Every scenario file, run offline: events straight into views, all rules, each expectation.

The end-to-end runner signs and publishes the same files through the broker; this is the fast
check that the stories and the rules agree, and that every event's data meets its schema (a
story a real agency system could not publish proves nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from ledger.vocabulary import data_schema
from policies.engine import evaluate
from policies.registry import ALL_POLICIES
from sgledger.scenariofile import check_expectation, load_scenario, offline_views

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "scenarios").glob("*.json"), *(ROOT.parent / "shared" / "scenarios").glob("*.json")])


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_scenario_expectations_hold_offline(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.expect, "a scenario without expectations checks nothing"
    views = offline_views(scenario)
    failures = []
    for index, expectation in enumerate(scenario.expect):
        flags = [f for v in views.values() for f in evaluate(v, expectation.as_of, ALL_POLICIES).open]
        failures += [f"expect[{index}]: {failure}" for failure in check_expectation(expectation, flags)]
    assert failures == []


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_scenario_events_meet_their_schemas(path: Path) -> None:
    problems = []
    for index, event in enumerate(load_scenario(path).events):
        schema = data_schema(event.type)
        assert schema is not None, f"events[{index}]: {event.type} is not in the vocabulary"
        errors = Draft202012Validator(schema).iter_errors(event.data)
        problems += [f"events[{index}]: {error.message}" for error in errors]
    assert problems == []


def test_every_rule_has_its_own_scenario() -> None:
    names = {p.stem for p in (ROOT / "scenarios").glob("*.json")}
    assert {p.id for p in ALL_POLICIES} <= names
