"""The rule set as people see it: every rule explains itself and is in the README table, and the
vocabulary additions of issue 14 are documented in their schemas, amendable and routed."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from ledger.vocabulary import data_schema, event_types, family
from policies.registry import ALL_POLICIES

ROOT = Path(__file__).resolve().parents[2]
NEW_TYPES = (
    "school.left",
    "referral.acknowledged",
    "assessment.started",
    "strategy-discussion.held",
    "conference.held",
    "marac.referral.made",
)


def test_every_rule_says_what_it_is_why_and_what_to_do() -> None:
    for rule in ALL_POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.id), rule.id
        assert rule.version >= 1
        for text in (rule.title, rule.source, rule.explanation, rule.action):
            assert text.strip(), rule.id
        module = importlib.import_module(type(rule).__module__)
        assert (module.__doc__ or "").startswith(f"{rule.id}:"), f"{rule.id}: one module per rule, named"
    assert len({r.id for r in ALL_POLICIES}) == len(ALL_POLICIES) == 28


def test_the_readme_rule_table_lists_every_rule_with_its_severity_and_citation() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    rows = {
        rule: (severity, cites)
        for rule, severity, cites in re.findall(
            r"^\| `([a-z0-9-]+)` \| (low|medium|high) \| .* \| (.*) \|$", readme, flags=re.MULTILINE
        )
    }
    for rule in ALL_POLICIES:
        assert rows.get(rule.id) == (str(rule.severity), rule.source), rule.id


@pytest.mark.parametrize("event_type", NEW_TYPES)
def test_new_types_have_documented_fields_and_amendments(event_type: str) -> None:
    schema = data_schema(event_type)
    assert schema is not None
    for name, field in schema["properties"].items():
        assert field.get("description") and field.get("examples"), f"{event_type}.{name}"
    for amendment in ("corrected", "withdrawn"):
        assert f"{family(event_type)}.{amendment}" in event_types()


def test_new_incident_and_status_fields_are_documented() -> None:
    incident = data_schema("incident.reported")
    status = data_schema("person.status")
    assert incident is not None and status is not None
    for field in ("dash_score", "risk_tool", "risk_tool_version", "risk_level"):
        assert incident["properties"][field]["description"] and incident["properties"][field]["examples"]
    assert status["properties"]["dob"]["examples"] == ["2001-06-30"]
