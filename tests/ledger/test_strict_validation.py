"""The validator reads the schemas as agencies in other languages do (issue 9 items 1 and 2).

Whoever replaces ``jsonschema`` with a compiled validator keeps these: each case was accepted
by plain ``Draft202012Validator`` and then broke something downstream.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ledger.identifiers import AGENCY_ID, CHILD_ID, PERSON_ID, InvalidIdentifier
from ledger.validation import validate_event
from ledger.verification import MAX_NESTING, Reason, Rejection, parse_message, too_deeply_nested
from ledger.vocabulary import data_schema, envelope_schema, event_types
from tests.ledger.factory import INCIDENT, Chain


@pytest.fixture
def event() -> dict[str, Any]:
    return Chain("police/avon-somerset").event("incident.reported", INCIDENT)


def paths(event: dict[str, Any]) -> set[str]:
    return {p.path for p in validate_event(event)}


def test_a_valid_event_has_no_problems(event: dict[str, Any]) -> None:
    assert validate_event(event) == []


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("subject", "C-1\n"),  # Python's $ matches before a final newline; ECMA's does not
        ("source", "police/avon-somerset\n"),
        ("kid", "0" * 32 + "\n"),
        ("sequence", 1.0),  # JSON Schema's "integer" accepts 1.0; RFC 8785 writes it as 1
        ("sequence", True),
        ("sequence", 2**53),  # not exact in an IEEE double; RFC 8785 refuses to canonicalise it
        ("sequence", 10**30),
        ("source", "police/" + "a" * 200),  # longer than the column that stores it
    ],
)
def test_envelope_values_other_languages_refuse_are_refused(
    event: dict[str, Any], attribute: str, value: Any
) -> None:
    assert f"/{attribute}" in paths(event | {attribute: value})


def test_the_largest_exact_integer_is_a_valid_sequence(event: dict[str, Any]) -> None:
    assert validate_event(event | {"sequence": 2**53 - 1}) == []


def test_a_person_id_with_a_trailing_newline_is_refused(event: dict[str, Any]) -> None:
    parties = [{"person": "P-m\n", "role": "victim"}]
    assert "/data/parties/0/person" in paths(event | {"data": {**INCIDENT, "parties": parties}})


def test_numbers_anywhere_must_be_exact(event: dict[str, Any]) -> None:
    assert "/data/extra" in paths(event | {"data": {**INCIDENT, "extra": -(2**60)}})


def test_not_a_number_is_not_json() -> None:
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        parsed = parse_message(b'{"sequence": ' + constant + b"}")
        assert isinstance(parsed, Rejection) and parsed.reason == Reason.NOT_JSON


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1), True),
        (b"[" * MAX_NESTING + b"]" * MAX_NESTING, False),
        (b"[{" * 17 + b"}]" * 17, True),
        # brackets inside strings, and escaped quotes inside those, are not nesting
        (json.dumps({"a": "[" * 100 + '\\"' + "{" * 100, "b": [1, [2]]}).encode(), False),
        (b'{"a": "\\\\"' + b", " + b"[" * 40 + b"]" * 40 + b"}", True),  # "\\" ends the string
        (b"[" * 40, True),  # unbalanced: never JSON
    ],
)
def test_nesting_is_measured_without_parsing(raw: bytes, deep: bool) -> None:
    assert too_deeply_nested(raw) is deep


def test_identifiers_are_anchored_at_both_ends() -> None:
    assert AGENCY_ID.matches("police/avon-somerset")
    for bad in ("police/x\n", "police/../../x", "police/", "nobody/x", "police/" + "a" * 200, "\npolice/x"):
        assert not AGENCY_ID.matches(bad), bad
    assert CHILD_ID.matches("C-1") and not CHILD_ID.matches("C-1\n")
    assert PERSON_ID.matches("P-f") and not PERSON_ID.matches("P-f\r\n")
    with pytest.raises(InvalidIdentifier, match="not a valid agency id"):
        AGENCY_ID.check("police/../../x")


def _patterns(schema: Any) -> list[tuple[str, int | None]]:
    found: list[tuple[str, int | None]] = []
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            found.append((schema["pattern"], schema.get("maxLength")))
        for value in schema.values():
            found += _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _patterns(value)
    return found


def test_schema_files_spell_the_identifiers_of_ledger_identifiers() -> None:
    """One definition: every agency-id pattern in the schemas is AGENCY_ID's, with its bound,
    and the envelope's subject is CHILD_ID's; a schema edit that drifts fails here."""
    schemas = [envelope_schema(), *(data_schema(t) for t in sorted(event_types()))]
    patterns = [p for schema in schemas for p in _patterns(schema)]
    agency_like = [p for p in patterns if "police|" in p[0]]
    assert agency_like and set(agency_like) == {(AGENCY_ID.schema_pattern, AGENCY_ID.max_length)}
    subject = envelope_schema()["properties"]["subject"]
    assert (subject["pattern"], subject["maxLength"]) == (CHILD_ID.schema_pattern, CHILD_ID.max_length)
    person_like = {p for p in patterns if p[0] == PERSON_ID.schema_pattern}
    assert person_like and all(limit == PERSON_ID.max_length for _, limit in person_like)
    assert all(re.compile(p) for p, _ in patterns)
