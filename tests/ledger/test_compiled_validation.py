"""The compiled validators (the verdict) and the strict jsonschema ones (the explanation) agree.

Valid examples: every event of every scenario, signed, plus the partnership's own event types.
Invalid ones: mechanical mutations of each (a property removed, replaced by a value of each
other JSON type, an integer off by its bounds or given as a float, a string emptied, given a
trailing newline or a character no identifier may hold, an extra property). Events holding a
float or a number beyond 2**53 - 1 are judged by the strict path alone (ledger/validation.py says
why); for them the test checks that ``validate_event`` gives the strict verdict.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import FormatChecker

from ledger.validation import (
    _compiled_data_refusal,
    _explain,
    _plain_numbers,
    _problems,
    _uuid,
    _validator,
    compiled_members_refusal,
    compiled_refusal,
    validate_event,
    verdict,
)
from ledger.vocabulary import data_schema, envelope_schema, event_types
from producers.sdk import WRITTEN, WRITTEN_WITH_ID
from sgledger.scenariofile import load_scenario
from tests.ledger.factory import PARTNERSHIP, T0, Chain, Partnership

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.json"))


def valid_events() -> list[dict[str, Any]]:
    partnership = Partnership()
    chains: dict[str, Chain] = {}
    events: list[dict[str, Any]] = []
    for path in SCENARIOS:
        for e in load_scenario(path).events:
            chain = chains.setdefault(e.agency, Chain(e.agency))
            events.append(chain.sign(e.type, e.data, subject=e.child, at=e.at, recorded=e.recorded))
    police = chains["police/avon-somerset"]
    events.append(partnership.register(police))
    events.append(partnership.revoke(police, T0 + timedelta(days=1)))
    head = {"tree_size": 3, "root_hash": "ab" * 32}
    events.append(partnership.root.event("ledger.tree-head", head, subject=PARTNERSHIP))
    return events


REPLACEMENTS: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", "x\u00e9 /", [], {}, ["x"], {"x": 1})


def mutations(value: Any) -> Iterator[tuple[str, Any]]:
    """(description, mutated copy) pairs, each changing one place of ``value``."""
    for path, _ in _places(value):
        for replacement in REPLACEMENTS:
            yield f"{path} = {replacement!r}", _set(value, path, replacement)
        current = _get(value, path)
        if isinstance(current, str):
            yield f"{path} + newline", _set(value, path, current + "\n")
            yield f"{path} + space", _set(value, path, current + " ")
            yield f"{path} * 200", _set(value, path, current * 200)
        if isinstance(current, int) and not isinstance(current, bool):
            yield f"{path} as float", _set(value, path, float(current))
            yield f"{path} as string", _set(value, path, str(current))
        if isinstance(current, list):
            yield f"{path} emptied", _set(value, path, [])
        if isinstance(current, dict):
            mutated = _set(value, path, {**current, "unexpected": 1})
            yield f"{path} + extra property", mutated
        parent, key = path[:-1], path[-1]
        if isinstance(_get(value, parent), dict):
            mutated = copy.deepcopy(value)
            del _get(mutated, parent)[key]
            yield f"{path} removed", mutated


def _places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), item
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index), item
            yield from _places(item, (*path, index))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    mutated = copy.deepcopy(value)
    _get(mutated, path[:-1])[path[-1]] = replacement
    return mutated


def verdicts(event: Mapping[str, Any]) -> tuple[bool, bool]:
    """(compiled says valid, jsonschema says valid)."""
    return compiled_refusal(event) is None, not _explain(event)


def test_every_valid_example_is_valid_to_both() -> None:
    events = valid_events()
    assert len(events) > 100
    for event in events:
        assert verdicts(event) == (True, True), event


def test_mutations_are_mostly_refused_by_both() -> None:
    """Guard against a vacuous comparison: most mutations must be refused by both."""
    event = valid_events()[0]
    refused = [d for d, m in mutations(event) if verdicts(m) == (False, False)]
    assert len(refused) > 50


def test_verdicts_agree_on_every_mutation() -> None:
    seen_types: set[str] = set()
    compared = strict_only = 0
    disagreements: list[str] = []
    for event in valid_events():
        if event["type"] in seen_types:
            continue  # one example per type keeps the test fast; the scenarios cover every type used
        seen_types.add(event["type"])
        for description, mutated in mutations(event):
            if not _plain_numbers(mutated):
                strict_only += 1
                assert bool(validate_event(mutated)) == bool(_explain(mutated)), description
                continue
            compiled, reference = verdicts(mutated)
            compared += 1
            if compiled != reference:
                verdict = f"compiled={compiled} jsonschema={reference}"
                disagreements.append(f"{event['type']}: {description}: {verdict}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert compared > 2000
    assert strict_only > 0  # the floats were exercised too


def test_the_verdict_on_a_drafts_members_is_the_verdict_on_its_envelope() -> None:
    """The producer checks a draft's members without assembling the envelope
    (``compiled_members_refusal``, issue 11): on every mutation of what a caller sends (type,
    subject, times, id, data), it must refuse exactly what ``compiled_refusal`` refuses of the
    whole event with the producer's own members skipped (``WRITTEN``)."""
    compared = refused = 0
    disagreements: list[str] = []
    seen_types: set[str] = set()
    for event in valid_events():
        if event["type"] in seen_types:
            continue
        seen_types.add(event["type"])
        for written in (WRITTEN, WRITTEN_WITH_ID):
            for description, mutated in mutations(event):
                members = {k: v for k, v in mutated.items() if k not in written}
                if set(mutated) != set(event) or not _plain_numbers(mutated):
                    continue  # the producer writes every member, no other; floats: the strict path
                if not isinstance(mutated["type"], str):
                    continue  # the producer looks the type up in the vocabulary first
                whole = compiled_refusal(mutated, written) is None
                alone = compiled_members_refusal(members) is None
                compared += 1
                refused += not whole
                if whole != alone:
                    verdict = f"whole event {whole}, members {alone}"
                    disagreements.append(f"{event['type']}, {len(written)} written: {description}: {verdict}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert compared > 2000 and refused > 1000


def test_a_refusal_names_the_path() -> None:
    """The explanation still comes from jsonschema: the path, what was expected, what came."""
    event = next(e for e in valid_events() if e["type"] == "child.registered")
    event["data"]["dob"] = "2024-13-45"  # the pattern allows it, the date format does not
    assert [(p.path, p.expected) for p in validate_event(event)] == [("/data/dob", "a date")]


def test_the_uuid_shortcut_gives_jsonschemas_verdict() -> None:
    """``_uuid`` answers the grouped form itself and asks ``jsonschema`` about anything else:
    the same verdict on ids of every shape an agency might send."""
    checker = FormatChecker()
    good = "5f0c6a52-0d1e-4c1b-9a57-2d8c1f3e7a01"
    shapes = [
        good, good.upper(), "{" + good + "}", "urn:uuid:" + good, good.replace("-", ""),
        good + "-", "-" + good, good[:-1], good + "0", good.replace("5f0c", "5g0c"),
        good[:8] + "-" + good[9:13] + "--" + good[14:], good[:8] + good[9:12] + "-" + good[12:],
        "12345678-1234-1234-1234-1234-5678-9abc", good + "\n", " " + good, "", "-" * 36, 7, None,
        good.replace("a", "\u0661"),  # an Arabic-Indic digit: int() would take it, the regex not
    ]  # fmt: skip
    for value in shapes:
        assert _uuid(checker, value) == checker.conforms(value, "uuid"), value


def test_the_verdict_predicate_is_both_validators_verdict_on_every_mutation() -> None:
    """``verdict`` (one exact-typed predicate per schema: the gateway's fast path, issue 11)
    is True exactly when both validators take the value and its numbers are plain, on every
    mutation of every type's ``data``: accepting what they refuse would let a bad event
    through; refusing what they accept would send honest drafts down the slow path."""
    compared = accepted = 0
    disagreements: list[str] = []
    seen_types: set[str] = set()
    for event in valid_events():
        event_type = event["type"]
        if event_type in seen_types:
            continue
        seen_types.add(event_type)
        check = verdict(data_schema(event_type) or {})
        for description, data in [("as signed", event["data"]), *mutations(event["data"])]:
            expected = (
                _plain_numbers(data)
                and _compiled_data_refusal(event_type, data) is None
                and not list(_problems(_validator(event_type), data, ""))
            )
            compared += 1
            accepted += expected
            if check(data) != expected:
                said = f"verdict {check(data)}, validators {expected}"
                disagreements.append(f"{event_type}: {description}: {said}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert compared > 1500 and 200 < accepted < compared - 1000, (compared, accepted)


def test_the_verdict_predicate_covers_every_schema_of_the_contract() -> None:
    """Every type's schema compiles (a keyword it does not know would fail here, not pass
    unchecked), and so do the envelope's members a draft carries."""
    for event_type in event_types():
        verdict(data_schema(event_type) or {})
    envelope = envelope_schema()["properties"]
    for member in ("id", "subject", "time", "recordedtime", "data"):
        verdict(envelope[member])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number"},  # a float could be in it: no exact verdict here
        {"type": "string", "format": "email"},
        {"anyOf": [{"type": "string"}]},
        {"type": "object", "properties": {"a": {"type": "string", "minimum": 1, "if": {}}}},
        {"enum": [1, 2]},  # 1 == True in Python
        {"minLength": 1},  # untyped with a keyword
    ],
)
def test_the_verdict_predicate_refuses_to_compile_what_it_cannot_judge(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        verdict(schema)


def test_the_verdict_predicate_takes_exact_json_types_only() -> None:
    """What ``json.loads`` makes: a subclass, a float for an integer, a bool for an integer or
    an integer beyond 2**53 - 1 is never shown valid here (the validators judge it)."""

    class Text(str):
        pass

    integer = verdict({"type": "integer", "minimum": 0})
    assert integer(5) and not integer(5.0) and not integer(True) and not integer(2**53) and not integer(-1)
    assert not verdict({"type": "string"})(Text("x"))
    anything = verdict({"type": "object"})
    assert anything({"a": [1, {"b": None}]}) and not anything({"a": [1.5]}) and not anything({"a": 2**60})
