"""The contract documents itself: every field of every schema has a description and an example,
and every example is valid for its field. New fields (new types, new vocabulary) are caught
here the moment they are added without both."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ledger.vocabulary import data_schema, envelope_schema, event_types

SCHEMAS = ["envelope", *sorted(event_types())]


def fields(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property at any depth: object properties, array items, schema combinations."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}/{name}", sub
        yield from fields(sub, f"{path}/{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from fields(schema[key], f"{path}[]")
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            yield from fields(branch, path)


def load(name: str) -> dict[str, Any]:
    schema = envelope_schema() if name == "envelope" else data_schema(name)
    assert schema is not None
    return schema


def test_every_schema_file_is_checked() -> None:
    files = {p.name[: -len(".json")] for p in resources.files("ledger").joinpath("schemas").iterdir()}
    assert files == set(SCHEMAS)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_field_has_a_description_and_a_valid_example(name: str) -> None:
    missing, invalid = [], []
    for path, sub in fields(load(name)):
        if not str(sub.get("description", "")).strip() or not sub.get("examples"):
            missing.append(path)
            continue
        validator = Draft202012Validator(sub, format_checker=FormatChecker())
        invalid += [f"{path}: {example!r}" for example in sub["examples"] if not validator.is_valid(example)]
    assert not missing, f"{name}: fields without description or examples: {missing}"
    assert not invalid, f"{name}: examples that do not validate: {invalid}"


def test_docs_vocabulary_names_every_type() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "vocabulary.md").read_text("utf-8")
    assert not [t for t in event_types() if f"`{t}`" not in page]
