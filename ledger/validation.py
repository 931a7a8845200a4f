"""One function that says precisely what is wrong with an event: path, expected, got.

Agency developers read these messages when their events are quarantined, so every problem names
the JSON path, what the contract expects there and what was sent.

Two validators over the same schema files, for two jobs. The verdict comes from validators
compiled to Python by ``fastjsonschema`` (12-16x faster than ``jsonschema`` here: validation used
to cost as much as the signature check, on every event). ``jsonschema`` runs only on an event
the compiled validator refused, because it lists every problem with its path, which is what the
quarantine shows. tests/ledger/test_compiled_validation.py runs both over every valid example
and many mutations and requires the same verdicts. Formats are checked by ``jsonschema``'s own
``FormatChecker`` in both (one definition of "uuid" and "date"). Patterns: ``fastjsonschema``
anchors ``$`` at the very end of the string (as ECMA-262 does, and JSON Schema patterns are
ECMA-262), where Python's ``re`` would also let ``$`` match before a trailing newline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import fastjsonschema
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
    refusal = compiled_refusal(event)
    if refusal is None:
        return []
    # Refused: now say precisely why. Should jsonschema find nothing (Python's `$` accepting a
    # trailing newline the compiled pattern refuses), the compiled validator's reason stands.
    return _explain(event) or [refusal]


def compiled_refusal(event: Mapping[str, Any]) -> Problem | None:
    """The compiled validators' verdict: None when the event is valid, else its first problem."""
    try:
        _compiled("envelope")(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _compiled_problem(exc, "")
    if data_schema(event["type"]) is not None:
        try:
            _compiled(event["type"])(event["data"])
        except fastjsonschema.JsonSchemaValueException as exc:
            return _compiled_problem(exc, "/data")
    for attribute in ("time", "recordedtime"):
        try:
            parse_time(event[attribute])
        except TimeFormatError:
            return Problem(f"/{attribute}", "an RFC 3339 time with offset", _show(event[attribute]))
    return None


def _compiled_problem(exc: fastjsonschema.JsonSchemaValueException, prefix: str) -> Problem:
    path = prefix + "".join(f"/{part}" for part in (exc.path or [])[1:])  # [0] is "data", the root
    return Problem(path, f"{exc.rule} {json.dumps(exc.rule_definition, default=str)[:80]}", _show(exc.value))


def _explain(event: Mapping[str, Any]) -> list[Problem]:
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
def _compiled(name: str) -> Callable[[Any], Any]:
    schema = envelope_schema() if name == "envelope" else data_schema(name)
    if schema is None:
        raise KeyError(f"no schema for {name}")
    checker = FormatChecker()
    formats = {f: partial(_conforms, checker, f) for f in ("uuid", "date")}
    # use_default=False: the compiled code must never write schema defaults into the event.
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema, formats=formats, use_default=False)
    return compiled


def _conforms(checker: FormatChecker, format_name: str, value: Any) -> bool:
    return checker.conforms(value, format_name)


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
