"""``canonical_forms`` (one serialisation, the signature member cut out where provably safe) is
exactly its definition: the whole event in RFC 8785 form and its signing input, for honest
events and for events built to put the bytes of the signature member where a cut could take the
wrong one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_forms, canonical_json, signing_input
from ledger.envelope import ChainSigner

SIG = "AbC-_09" * 12


def check(event: dict[str, Any]) -> None:
    assert canonical_forms(event) == (canonical_json(event), signing_input(event))


def test_signed_events_of_every_shape_the_bench_writes() -> None:
    signer = ChainSigner("police/avon-somerset", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    data = {"incident_ref": "INC-1", "children_present": True, "parties": [{"person": "P-1"}]}
    at = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
    for event in (
        signer.sign("incident.reported", data, subject="C-000001", at=at),
        signer.sign("child.registered", {"dob": "2023-11-01"}, subject="C-000002", at=at),
        signer.sign("incident.reported", {"note": 'é€😀 \u2028 "quoted" \\'}, subject="C-1", at=at),
    ):
        check(event)


@pytest.mark.parametrize(
    "event",
    [
        # the same member nested before the top-level one (data sorts first)
        {"data": {"signature": SIG, "x": [{"signature": SIG}]}, "id": "e", "signature": SIG, "type": "t"},
        {"data": {"a": 1, "signature": SIG, "x": [{"a": 1, "signature": SIG}]}, "signature": SIG, "z": 1},
        # ... and after it, inside an object: not cuttable, so serialised around the signature
        {"data": 1, "signature": SIG, "zzz": {"a": 1, "signature": SIG}},
        {"data": 1, "signature": SIG, "zzz": [{"a": 1, "signature": SIG}]},
        # a later key whose escaped quote makes the bytes "signature":"<sig>" inside its name
        {"data": 1, "signature": SIG, 't\\"signature': SIG},
        {"data": 1, "signature": SIG, 't"signature': SIG, "u": f'x","signature":"{SIG}'},
        # strings holding the member's text, before and after
        {"a": f',"signature":"{SIG}"', "signature": SIG, "z": f',"signature":"{SIG}"'},
        # no member before signature: nothing to cut after a comma
        {"signature": SIG, "source": "police/x"},
        {"signature": SIG},
        # signatures that are not plain base64url text, or not text
        {"data": 1, "signature": 'a"b'},
        {"data": 1, "signature": "é"},
        {"data": 1, "signature": ""},
        {"data": 1, "signature": 7},
        {"data": 1, "signature": None},
        {"data": 1, "signature": {"signature": SIG}},
        {"data": 1},
        # numbers and text the C encoder does not write as RFC 8785 does
        {"data": {"x": 1.5, "y": 2.0, "z": 10**15}, "signature": SIG, "time": 1e21},
        {"\U0001f600": 1, "\ufb01": 2, "data": "é", "signature": SIG},
    ],
)
def test_events_built_to_mislead_a_cut(event: dict[str, Any]) -> None:
    check(event)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.just(SIG)
    | st.just(f',"signature":"{SIG}"')
)
_nested_keys = st.sampled_from(["signature", "a", "z", 't"signature']) | st.text(max_size=4)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_nested_keys, children, max_size=3),
    max_leaves=12,
)
_keys = st.sampled_from(["data", "id", "signatur", "signature0", "source", "t", 't\\"signature', "\ufb01"])
_keys |= st.text(max_size=10)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=7), st.sampled_from([SIG, "x", "", 'a"', 5]))
def test_any_object_with_any_signature(members: dict[str, Any], signature: Any) -> None:
    check({**members, "signature": signature})
