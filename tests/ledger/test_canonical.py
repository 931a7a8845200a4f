"""RFC 8785 canonical JSON, checked against the RFC's own examples."""

from __future__ import annotations

import json
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_forms, canonical_json, event_digest, signing_input

# RFC 8785 section 3.2.2 (input) and its canonical output.
RFC_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 Appendix B: IEEE 754 bit patterns and their JSON serialisation.
NUMBER_VECTORS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def test_rfc_example_serialises_exactly() -> None:
    assert canonical_json(json.loads(RFC_INPUT)) == RFC_OUTPUT.encode("utf-8")


@pytest.mark.parametrize(("bits", "expected"), NUMBER_VECTORS)
def test_rfc_number_vectors(bits: str, expected: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical_json(value) == expected.encode()


def test_properties_sort_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the sorting example.
    value = {
        "€": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "😀": "Emoji: Grinning Face",
        "\u0080": "Control",
        "ö": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "ö", "€", "😀", "\ufb33"]


def test_signing_input_excludes_only_the_signature() -> None:
    event = {"b": 1, "a": "x", "signature": "sig"}
    assert signing_input(event) == b'{"a":"x","b":1}'


def test_digest_covers_the_signature() -> None:
    assert event_digest({"a": 1, "signature": "s1"}) != event_digest({"a": 1, "signature": "s2"})
    assert event_digest({"a": 1, "b": 2}) == event_digest({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"signature": "abc"},
        {"b": 1, "signature": "s", "a": [1.5, {"z": None, "y": "\u20ac"}], "subject": "C-1"},
        # RFC 8785 orders keys by UTF-16 code units: U+1F600 (a surrogate pair, D83D) sorts
        # before U+FB01 (FB01), unlike in UTF-8 or code point order.
        {"\U0001f600": 1, "\ufb01": 2, "\u00e9": 3, "signature": "s", "z": {"\ufb01": 0, "\U0001f600": 1}},
    ],
)
def test_one_pass_gives_the_whole_event_and_its_signing_input(event: dict[str, object]) -> None:
    whole, signed = canonical_forms(event)
    assert whole == canonical_json(event)
    assert signed == canonical_json({k: v for k, v in event.items() if k != "signature"})
    assert signing_input(event) == signed


# -- the fast path (the C encoder where its bytes are RFC 8785's) against the reference -------


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.integers(min_value=-(2**60), max_value=2**60)  # beyond the domain: both must refuse
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F))
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)


def _reference(value: object) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except Exception as error:  # the error's class is what is compared
        return type(error)


def _ours(value: object) -> bytes | type[Exception]:
    try:
        return canonical_json(value)
    except Exception as error:
        return type(error)


@settings(max_examples=500, deadline=None)
@given(_json_values)
def test_fast_path_writes_the_reference_bytes_or_raises_its_error(value: object) -> None:
    assert _ours(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"time": "2024-01-08T09:00:00.123Z", "n": 12},  # digits and dots inside strings only
        {"a": 1.0, "b": "x"},  # a float that json writes as 1.0 and RFC 8785 as 1
        {"a": 1e21, "b": 1e-7},  # exponents written differently
        {"a": 9007199254740991, "b": -9007199254740991},  # the domain's edges
        {"a": 9007199254740992},  # just outside: refused
        {'q"u\\o"te': 'x\\"1.5e3"', "z": [0.5]},  # escapes around a number-like string
        {"ctl": "\x00\x08\x09\x0a\x0c\x0d\x1f\x7f", "uni": "é€😀"},
        {"\U0001f600": 1, "\ufb01": 2},  # UTF-16 order differs from code point order
    ],
)
def test_fast_path_edge_cases(value: object) -> None:
    assert _ours(value) == _reference(value)


_EVENT_KEYS = st.sampled_from(["signature", "source", "\ufb01", "\U0001f600"]) | st.text(max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_EVENT_KEYS, _json_values, max_size=8))
def test_one_pass_forms_equal_the_reference_serialisations(event: dict[str, object]) -> None:
    whole = _reference(event)
    try:
        forms = canonical_forms(event)
    except Exception as error:
        assert whole is type(error)  # refused only where the reference refuses, alike
        return
    assert forms == (whole, _reference({k: v for k, v in event.items() if k != "signature"}))
