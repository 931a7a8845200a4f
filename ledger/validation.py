"""One function that says precisely what is wrong with an event: path, expected, got.

Agency developers read these messages when their events are quarantined, so every problem names
the JSON path, what the contract expects there and what was sent.

The schemas are read with the semantics agencies in other languages get (issue 9): ``pattern`` is
ECMA-262 (``$`` is the end of the string, never "before a final newline" as in Python's ``re``),
an ``integer`` is a JSON integer (``2.0`` and ``true`` are not: RFC 8785 writes ``2.0`` as ``2``,
so a signature made over ``2`` verifies on ``2.0``, and Python's ``range`` then refuses it), and
every number is exact in an IEEE double (|n| <= 2**53 - 1): RFC 8785 cannot canonicalise a larger
integer and the database cannot store it. These rules live here, in the validator, so that a
compiled validator replacing ``jsonschema`` must keep them (the tests in
tests/ledger/test_strict_validation.py say so).

Two validators over the same schema files, for two jobs. The verdict comes from validators
compiled to Python by ``fastjsonschema`` (12-16x faster than ``jsonschema`` here: validation used
to cost as much as the signature check, on every event); ``jsonschema`` with the rules above runs
on an event the compiled validator refused, because it lists every problem with its path, which
is what the quarantine shows. The compiled validators anchor ``$`` at the end of the string as
ECMA-262 does (none of the schemas has ``$`` inside a character class, where the two rewritings
would differ), check formats with ``jsonschema``'s own ``FormatChecker``, but take ``2.0`` for an
integer: an event holding any float, or any number beyond 2**53 - 1, is therefore judged by the
strict ``jsonschema`` path alone (no schema has a fractional number, so that is never an honest
event). tests/ledger/test_compiled_validation.py runs both over every valid example and
thousands of mutations and requires the same verdicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

from ledger.timeutil import TimeFormatError, parse_time
from ledger.vocabulary import closest, data_schema, did_you_mean, envelope_schema


@dataclass(frozen=True)
class Problem:
    path: str  # JSON pointer into the event, e.g. "/data/parties/0/role"
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: expected {self.expected}, got {self.got}"


def validate_event(event: Any, written: frozenset[str] = frozenset()) -> list[Problem]:
    """All schema problems of an event (envelope and ``data``); empty when it is valid.

    ``written``: envelope attributes the caller wrote itself from values it controls (the
    producer's ``source``, ``kid``, ``sequence`` ...), which the verdict then skips; a refused
    event is still explained in full."""
    if not isinstance(event, Mapping):
        return [Problem("", "a JSON object (CloudEvents structured mode)", _show(event))]
    if not _plain_numbers(event):
        return _explain(event)  # floats or huge integers: the strict rules the compiler lacks
    refusal = compiled_refusal(event, written)
    if refusal is None:
        return []
    return _explain(event) or [refusal]  # refused: now say precisely why


def compiled_refusal(event: Mapping[str, Any], written: frozenset[str] = frozenset()) -> Problem | None:
    """The compiled validators' verdict (for an event of ``_plain_numbers``): None when it is
    valid, else its first problem."""
    try:
        (_compiled_envelope(written) if written else _compiled("envelope"))(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _compiled_problem(exc, "")
    return _compiled_data_refusal(event["type"], event["data"]) or _time_refusal(event)


@cache
def _envelope_time() -> Callable[[str], re.Match[str] | None]:
    time, recorded = (envelope_schema()["properties"][name] for name in ("time", "recordedtime"))
    checks = {k: v for k, v in time.items() if k not in _ANNOTATIONS}
    if checks != {k: v for k, v in recorded.items() if k not in _ANNOTATIONS} or checks.keys() != {
        "type", "pattern"
    }:  # fmt: skip
        raise ValueError("the envelope's times are more than one pattern: see envelope_time")
    return _ecma_regex(time["pattern"]).search


def envelope_time(text: str) -> bool:
    """Would the envelope's schema take ``text``, a time ``format_time`` wrote, as its ``time``
    or ``recordedtime``? (Its pattern: such a text always parses, so ``_time_refusal`` has
    nothing to add.) For a producer that checks the times it formats itself (issue 11)."""
    return _envelope_time()(text) is not None


def _time_refusal(event: Mapping[str, Any]) -> Problem | None:
    """A time the schema's pattern lets through but that is no date (month 13)."""
    for attribute in ("time", "recordedtime"):
        try:
            parse_time(event[attribute])
        except TimeFormatError:
            return Problem(f"/{attribute}", "an RFC 3339 time with offset", _show(event[attribute]))
    return None


def compiled_members_refusal(members: Mapping[str, Any]) -> Problem | None:
    """The compiled verdict on some of an envelope's members (their schemas, and ``data``'s),
    for a caller that writes every other member itself from values it controls: what
    ``compiled_refusal(event, written)`` says of the whole event, without assembling it.

    Why (issue 11): the gateway checks thousands of drafts per request, and building each
    envelope only to have its written members skipped cost as much as the check. The verdict
    is the same because the envelope schema's keywords are per member (``properties``,
    ``required``, ``additionalProperties``: ``_members_schema`` refuses any other), the
    written members are present by construction, and ``data`` must have ``_plain_numbers``
    (the caller's job, as for ``compiled_refusal``). ``members`` must include ``type``,
    ``data``, ``time`` and ``recordedtime``."""
    if members["type"] not in _envelope_types():
        return Problem("/type", "an event type of the vocabulary", _show(members["type"]))
    try:
        _compiled_members(frozenset(members))(members)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _compiled_problem(exc, "")
    return _compiled_data_refusal(members["type"], members["data"]) or _time_refusal(members)


@cache
def _envelope_types() -> frozenset[str]:
    """The envelope's ``type`` enum as a set: compiled, an enum is a chain of comparisons, one
    per type (a tenth of a draft's check); ``_members_schema`` leaves it out for this."""
    schema = envelope_schema()["properties"]["type"]
    if not set(schema) <= {"enum", "description", "examples"}:
        raise ValueError("the envelope's type is more than an enum: see compiled_members_refusal")
    return frozenset(schema["enum"])


def _compiled_data_refusal(event_type: str, data: Any) -> Problem | None:
    if data_schema(event_type) is None:
        return None
    try:
        _compiled(event_type)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _compiled_problem(exc, "/data")
    return None


def _compiled_problem(exc: fastjsonschema.JsonSchemaValueException, prefix: str) -> Problem:
    path = prefix + "".join(f"/{part}" for part in (exc.path or [])[1:])  # [0] is "data", the root
    return Problem(path, f"{exc.rule} {json.dumps(exc.rule_definition, default=str)[:80]}", _show(exc.value))


def _plain_numbers(value: Any) -> bool:
    """No float and no integer beyond 2**53 - 1 anywhere: where the compiled verdict holds.

    Written for speed (it walks every event the gateway takes and the projector verifies):
    exact types first, as ``json.loads`` makes them, and a loop rather than ``all()`` over a
    generator, about 4x faster; subclasses (a ``Mapping`` that is not a dict) take the
    ``isinstance`` path with the same verdicts."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER
    if kind is dict or isinstance(value, Mapping):
        items: Iterable[Any] = value.values()
    elif isinstance(value, list):
        items = value
    elif isinstance(value, bool | str):
        return True
    elif isinstance(value, int):
        return -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER
    else:
        return False  # a float (or anything JSON does not produce)
    for item in items:  # noqa: SIM110 (a loop, not all() over a generator: the speed is the point)
        if not _plain_numbers(item):
            return False
    return True


def _explain(event: Mapping[str, Any]) -> list[Problem]:
    """Every problem, by the strict ``jsonschema`` validators: the verdict for events with
    floats or huge integers, the explanation for any other refused event."""
    problems = list(_inexact_numbers(event, ""))
    problems.extend(_problems(_validator("envelope"), event, prefix=""))
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


MAX_EXACT_INTEGER = 2**53 - 1


def _inexact_numbers(value: Any, path: str) -> Iterator[Problem]:
    """Numbers outside the exact range of an IEEE double, anywhere in the event."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER:
            yield Problem(path, f"a number within +/-{MAX_EXACT_INTEGER} (2**53 - 1)", _show(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _inexact_numbers(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _inexact_numbers(item, f"{path}/{index}")


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """A Python regex with ECMA-262's meaning of ``$``: every ``$`` outside a character class
    and not escaped becomes ``\\Z`` (the true end of the string)."""
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _json_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _json_integer),
)


@cache
def _compiled(name: str) -> Callable[[Any], Any]:
    schema = envelope_schema() if name == "envelope" else data_schema(name)
    if schema is None:
        raise KeyError(f"no schema for {name}")
    return _compile(schema)


@cache
def _compiled_envelope(written: frozenset[str]) -> Callable[[Any], Any]:
    """The envelope's validator without the checks of the ``written`` attributes (they stay
    required, and no others are allowed)."""
    schema = envelope_schema()
    properties = {k: ({} if k in written else v) for k, v in schema["properties"].items()}
    return _compile({**schema, "properties": properties})


@cache
def _compiled_members(names: frozenset[str]) -> Callable[[Any], Any]:
    return _compile(_members_schema(names))


def _members_schema(names: frozenset[str]) -> dict[str, Any]:
    """The envelope schema restricted to the members ``names``: required if the envelope
    requires them, nothing else allowed."""
    schema = envelope_schema()
    per_member = {"$schema", "$id", "title", "description", "type", "properties", "required"}
    closed = schema.get("additionalProperties") is False
    if not set(schema) <= per_member | {"additionalProperties"} or not closed:
        raise ValueError("the envelope schema has keywords across members: see compiled_members_refusal")
    if not {"type", "data", "time", "recordedtime"} <= names <= set(schema["properties"]):
        raise ValueError(f"not envelope members with type, data and times: {sorted(names)}")
    properties = {k: v for k, v in schema["properties"].items() if k in names}
    properties["type"] = {}  # checked against ``_envelope_types()`` instead
    return {**schema, "properties": properties, "required": [k for k in schema["required"] if k in names]}


def _compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
    checker = FormatChecker()
    formats = {"uuid": partial(_uuid, checker), "date": partial(_conforms, checker, "date")}
    # use_default=False: the compiled code must never write schema defaults into the event.
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema, formats=formats, use_default=False)
    return compiled


def _conforms(checker: FormatChecker, format_name: str, value: Any) -> bool:
    return checker.conforms(value, format_name)


# 32 hex digits in groups of 8-4-4-4-12: the form of every event's id (the envelope's pattern).
_GROUPED_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _uuid(checker: FormatChecker, value: Any) -> bool:
    """``jsonschema``'s ``uuid`` verdict, with no ``UUID`` object built for the grouped form,
    which that check always accepts: it takes ``UUID(value)`` (32 hex digits once the dashes
    are dropped) with dashes at 8, 13, 18 and 23. Anything else is judged by ``jsonschema``.
    Why: building the ``UUID`` was a quarter of the compiled envelope check (~2 of 8 us), on
    every event the projector verifies (issue 13)."""
    if type(value) is str and _GROUPED_UUID.fullmatch(value) is not None:
        return True
    return checker.conforms(value, "uuid")


@cache
def _validator(name: str) -> Any:
    schema = envelope_schema() if name == "envelope" else data_schema(name)
    if schema is None:
        raise KeyError(f"no schema for {name}")
    return StrictValidator(schema, format_checker=FormatChecker())


def _problems(validator: Any, instance: Any, prefix: str) -> Iterable[Problem]:
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
            return "no attributes outside the contract" + misspelt(_extra(error), _allowed(error))
        case "enum":
            return "one of " + ", ".join(json.dumps(x) for x in v)
        case "const":
            return json.dumps(v)
        case "type":
            return f"type {v if isinstance(v, str) else ' or '.join(v)}"
        case "pattern":  # the contract's example beside the regular expression: easier to act on
            examples = error.schema.get("examples") if isinstance(error.schema, Mapping) else None
            example = f", e.g. {json.dumps(examples[0])}" if examples and isinstance(examples[0], str) else ""
            return f"a string matching {v}{example}"
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
        return "unexpected " + ", ".join(repr(k) for k in _extra(error))
    return _show(error.instance)


def _allowed(error: ValidationError) -> list[str]:
    schema: Any = error.schema
    return list(schema.get("properties", {}))


def _extra(error: ValidationError) -> list[str]:
    allowed = set(_allowed(error))
    instance: Any = error.instance
    return sorted(k for k in instance if k not in allowed) if isinstance(instance, Mapping) else []


def misspelt(extra: Sequence[str], allowed: Iterable[str]) -> str:
    """`` (did you mean 'practice'?)`` for attributes that look like a misspelt allowed one (one
    extra), `` (did you mean 'practice' for 'practise'?)`` for several, or nothing."""
    allowed = [a for a in allowed if a not in extra]
    if len(extra) == 1:
        return did_you_mean(extra[0], allowed)
    meant = [f"{found[0]!r} for {k!r}" for k in extra for found in (closest(k, allowed),) if found]
    return f" (did you mean {', '.join(meant)}?)" if meant else ""


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# -- verdicts only: schemas compiled to one exact-typed predicate (issue 11) ----------------------
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "examples"})
_VERDICT_KEYWORDS = _ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "propertyNames", "enum", "const",
    "minLength", "maxLength", "pattern", "format", "items", "minItems", "minimum", "maximum",
}  # fmt: skip
_EXACT_TYPES = {
    "string": "str", "boolean": "bool", "object": "dict", "array": "list", "integer": "int",
    "null": "NoneType",
}  # fmt: skip


def verdict(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A predicate that is True only for a value both validators accept (``compiled_refusal``'s
    verdict and ``jsonschema``'s, with the rules of this module) that also has
    ``_plain_numbers``; False means "not shown valid here": the caller judges the value by
    the validators, which give the verdict and the problems.

    Why (issue 11): the gateway's draft worker checks thousands of drafts per request, and
    ``fastjsonschema``'s code (``isinstance`` tests, a set of the keys per object, one function
    per schema, the enums as lists) plus the separate walk for ``_plain_numbers`` cost about a
    third of a draft. This writes one function per schema with exact type tests (``type(v) is
    str``: what ``json.loads`` makes; a subclass or a float is "not shown valid"), integers
    checked against 2**53 - 1 where they are read, enums as sets, and only the keywords the
    contract's schemas use: any other keyword fails the compilation, so a schema cannot be
    checked by halves. Its verdicts are compared with both validators on every mutation in
    tests/ledger/test_compiled_validation.py."""
    unknown = _unknown_keywords(schema)
    if unknown:
        raise ValueError(f"verdict() does not know the keywords {sorted(unknown)}")
    writer = _Writer()
    writer.emit(schema, "v0", 1)
    writer.lines.append(" return True")
    exec(compile("\n".join(writer.lines), f"<verdict {schema.get('$id', '')}>", "exec"), writer.names)
    compiled: Callable[[Any], bool] = writer.names["verdict"]
    return compiled


def _unknown_keywords(schema: Any) -> set[str]:
    if not isinstance(schema, Mapping):
        return {"(a schema that is not an object)"}
    found = set(schema) - _VERDICT_KEYWORDS
    for sub in (*schema.get("properties", {}).values(), schema.get("items"), schema.get("propertyNames")):
        if sub is not None:
            found |= _unknown_keywords(sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        found |= _unknown_keywords(extra)
    return found


class _Writer:
    """The source of one ``verdict`` function: its lines, and the values its code names (the
    compiled regexes, enum sets, format checks), bound as globals of the compiled function."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"_plain_numbers": _plain_numbers, "NoneType": type(None)}
        self.lines = ["def verdict(v0):"]

    def name(self, value: Any) -> str:
        """A global name for ``value`` in the generated code."""
        key = f"c{len(self.names)}"
        self.names[key] = value
        return key

    def emit(self, schema: Mapping[str, Any], var: str, depth: int) -> None:
        """Lines that ``return False`` unless ``var`` satisfies ``schema`` (indented ``depth``)."""
        pad = " " * depth
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if "enum" in schema or "const" in schema:
            allowed = schema["enum"] if "enum" in schema else [schema["const"]]
            if not all(type(a) is str for a in allowed):
                raise ValueError(f"verdict() takes enums of strings only: {allowed}")
            known = self.name(frozenset(allowed))
            self.lines.append(f"{pad}if type({var}) is not str or {var} not in {known}: return False")
            if kinds is not None and "string" not in kinds:
                self.lines.append(f"{pad}return False")
            else:
                self.emit_kind(schema, "string", var, depth)
            return
        if kinds is None:  # no type: any JSON value, whose numbers must still be plain
            if set(schema) - _ANNOTATIONS:
                raise ValueError(f"verdict() takes untyped schemas without keywords only: {schema}")
            self.lines.append(f"{pad}if not _plain_numbers({var}): return False")
            return
        if not set(kinds) <= set(_EXACT_TYPES):
            raise ValueError(f"verdict() does not take the types {kinds}")
        if len(kinds) == 1:
            self.lines.append(f"{pad}if type({var}) is not {_EXACT_TYPES[kinds[0]]}: return False")
            self.emit_kind(schema, kinds[0], var, depth)
            return
        self.lines.append(f"{pad}t{depth} = type({var})")
        for number, kind in enumerate(kinds):
            self.lines.append(f"{pad}{'if' if number == 0 else 'elif'} t{depth} is {_EXACT_TYPES[kind]}:")
            before = len(self.lines)
            self.emit_kind(schema, kind, var, depth + 1)
            if len(self.lines) == before:
                self.lines.append(f"{pad} pass")
        self.lines.append(f"{pad}else: return False")

    def emit_kind(self, schema: Mapping[str, Any], kind: str, var: str, depth: int) -> None:
        """The keywords of ``schema`` that apply to a ``var`` known to be of JSON type ``kind``."""
        pad = " " * depth
        if kind == "string":
            if "minLength" in schema or "maxLength" in schema:
                low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
                bounds = f"{low} <= len({var})" + ("" if high is None else f" <= {int(high)}")
                self.lines.append(f"{pad}if not {bounds}: return False")
            if "pattern" in schema:
                search = self.name(_ecma_regex(schema["pattern"]).search)
                self.lines.append(f"{pad}if {search}({var}) is None: return False")
            if "format" in schema:
                checker = FormatChecker()
                formats = {"uuid": partial(_uuid, checker), "date": partial(_conforms, checker, "date")}
                if schema["format"] not in formats:
                    raise ValueError(f"verdict() does not know the format {schema['format']!r}")
                self.lines.append(f"{pad}if not {self.name(formats[schema['format']])}({var}): return False")
        elif kind == "integer":
            low, high = (
                max(schema.get("minimum", -MAX_EXACT_INTEGER), -MAX_EXACT_INTEGER),
                min(schema.get("maximum", MAX_EXACT_INTEGER), MAX_EXACT_INTEGER),
            )
            self.lines.append(f"{pad}if not {low!r} <= {var} <= {high!r}: return False")
        elif kind == "array":
            if "minItems" in schema:
                self.lines.append(f"{pad}if len({var}) < {int(schema['minItems'])}: return False")
            item = f"v{depth}"
            self.lines.append(f"{pad}for {item} in {var}:")
            self.emit(schema.get("items", {}), item, depth + 1)
        elif kind == "object":
            self.emit_object(schema, var, depth)

    def emit_object(self, schema: Mapping[str, Any], var: str, depth: int) -> None:
        """The keywords of an object's ``schema`` for a ``var`` known to be a dict."""
        pad = " " * depth
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if schema.get("required"):
            required = self.name(frozenset(schema["required"]))
            self.lines.append(f"{pad}if not {var}.keys() >= {required}: return False")
        key, value = f"k{depth}", f"v{depth}"
        if extra is False:
            self.lines.append(f"{pad}if not {var}.keys() <= {self.name(frozenset(properties))}: return False")
        else:  # every member not named in ``properties`` (and every name, for ``propertyNames``)
            self.lines.append(f"{pad}for {key}, {value} in {var}.items():")
            self.lines.append(f"{pad} if type({key}) is not str: return False")
            if "propertyNames" in schema:
                self.emit(schema["propertyNames"], key, depth + 1)
            if properties:
                self.lines.append(f"{pad} if {key} in {self.name(frozenset(properties))}: continue")
            self.emit({} if extra is True else extra, value, depth + 1)
        for member, sub in properties.items():
            # _plain_numbers as the sentinel: a function is never a JSON value
            self.lines.append(f"{pad}{value} = {var}.get({member!r}, _plain_numbers)")
            self.lines.append(f"{pad}if {value} is not _plain_numbers:")
            before = len(self.lines)
            self.emit(sub, value, depth + 1)
            if len(self.lines) == before:
                self.lines.append(f"{pad} pass")
