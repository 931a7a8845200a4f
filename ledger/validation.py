"""One function that says precisely what is wrong with an event: path, expected, got.

Agency developers read these messages when their events are quarantined, so every problem names
the JSON path, what the contract expects there and what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from ledger.timeutil import TimeFormatError, parse_time
from ledger.vocabulary import data_schema, envelope_schema


@dataclass(frozen=True)
class Problem:
    path: str  # JSON pointer into the event, e.g. "/data/parties/0/role"
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: expected {self.expected}, got {self.got}"


def validate_event(event: Any) -> list[Problem]:
    """All schema problems of an event (envelope and ``data``); empty when it is valid."""
    if not isinstance(event, Mapping):
        return [Problem("", "a JSON object (CloudEvents structured mode)", _show(event))]
    problems = list(_problems(_validator("envelope"), event, prefix=""))
    event_type = event.get("type")
    if isinstance(event_type, str) and data_schema(event_type) is not None:
        data = event.get("data")
        if isinstance(data, Mapping):
            problems.extend(_problems(_validator(event_type), data, prefix="/data"))
    for attribute in ("time", "recordedtime"):
        value = event.get(attribute)
        if isinstance(value, str):
            try:
                parse_time(value)
            except TimeFormatError:
                problems.append(Problem(f"/{attribute}", "an RFC 3339 time with offset", _show(value)))
    return sorted(set(problems), key=lambda p: (p.path, p.expected))


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = envelope_schema() if name == "envelope" else data_schema(name)
    if schema is None:
        raise KeyError(f"no schema for {name}")
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _problems(validator: Draft202012Validator, instance: Any, prefix: str) -> Iterable[Problem]:
    for error in validator.iter_errors(instance):
        for leaf in _leaves(error):
            path = prefix + "".join(f"/{part}" for part in leaf.absolute_path)
            yield Problem(path, _expected(leaf), _got(leaf))


def _leaves(error: ValidationError) -> Iterable[ValidationError]:
    # oneOf/anyOf errors wrap the real ones; report the most specific.
    if error.context:
        for sub in error.context:
            yield from _leaves(sub)
    else:
        yield error


def _expected(error: ValidationError) -> str:
    v: Any = error.validator_value
    match error.validator:
        case "required":
            missing = [k for k in v if isinstance(error.instance, Mapping) and k not in error.instance]
            return "required attribute " + ", ".join(repr(k) for k in missing)
        case "additionalProperties":
            return "no attributes outside the contract"
        case "enum":
            return "one of " + ", ".join(json.dumps(x) for x in v)
        case "const":
            return json.dumps(v)
        case "type":
            return f"type {v if isinstance(v, str) else ' or '.join(v)}"
        case "pattern":
            return f"a string matching {v}"
        case "format":
            return f"a {v}"
        case "minItems":
            return f"at least {v} item(s)"
        case "minLength":
            return f"at least {v} character(s)"
        case "maxLength":
            return f"at most {v} characters"
        case "minimum":
            return f">= {v}"
        case "maximum":
            return f"<= {v}"
        case _:
            return f"{error.validator} {json.dumps(v, default=str)[:80]}"


def _got(error: ValidationError) -> str:
    if error.validator == "required":
        return "nothing"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        schema: Any = error.schema
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return "unexpected " + ", ".join(repr(k) for k in extra)
    return _show(error.instance)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
