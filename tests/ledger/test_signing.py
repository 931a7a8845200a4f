"""One-pass signing (``Signer.sign_canonical``): the spliced payload is the RFC 8785 form of the
signed event, the signature verifies, and libsodium signs exactly as ``cryptography`` does."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json, chain_runs, digest_of_canonical, event_digest, placed
from ledger.envelope import ChainSigner, envelope_runs, new_event_id, unsigned_event
from ledger.signing import Signer, key_id, sign_event, signature_valid
from ledger.validation import _plain_numbers

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = Signer(KEY)


def check_one_pass(unsigned: dict[str, Any]) -> None:
    signature, payload = SIGNER.sign_canonical(unsigned)
    signed = {**unsigned, "signature": signature}
    assert payload == canonical_json(signed)
    assert signature_valid(signed, KEY.public_key())


@pytest.mark.parametrize(
    "unsigned",
    [
        {},
        {"a": 1},  # only members before "signature"
        {"z": 1},  # only members after it
        {"signatur": 1, "signature0": 2, "sig": [3], "signaturf": {"signature": "nested"}},
        # U+1F600 is a surrogate pair (D83D DE00) in UTF-16, U+FB01 one unit: RFC 8785 sorts the
        # first before the second, code point order the other way round; both sort after "s".
        {"\U0001f600": 1, "\ufb01": 2, "\u00e9": 3, "a": {"\ufb01": 0, "\U0001f600": 1}},
        {"data": {"x": 1.5, "y": "é€😀", "z": None}, "id": "e", "subject": "C-1", "type": "t"},
    ],
)
def test_the_spliced_payload_is_the_canonical_form_of_the_signed_event(unsigned: dict[str, Any]) -> None:
    check_one_pass(unsigned)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=15,
)
_keys = st.sampled_from(
    ["signatur", "signature0", "s", "t", "sequence", "source", "\ufb01", "\U0001f600"]
) | st.text(max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys.filter(lambda k: k != "signature"), _values, max_size=8))
def test_splicing_equals_serialising_the_signed_event_for_any_object(unsigned: dict[str, Any]) -> None:
    check_one_pass(unsigned)


def test_an_event_with_a_signature_is_not_signed_again() -> None:
    with pytest.raises(ValueError, match="already signed"):
        SIGNER.sign_canonical({"a": 1, "signature": "x"})


@pytest.mark.parametrize("message", [b"", b"x" * 300, canonical_json({"a": "é" * 1000})])
def test_libsodium_signs_exactly_as_cryptography(message: bytes) -> None:
    """Ed25519 is deterministic: switching the signing library changes no byte of any event."""
    key = Ed25519PrivateKey.generate()
    assert Signer(key).sign(message) == key.sign(message)


def test_chain_signer_events_are_the_two_pass_reference_and_chain_by_digest() -> None:
    chain = ChainSigner("police/avon-somerset", KEY)
    at = datetime(2024, 3, 5, 21, 40, tzinfo=UTC)
    first = chain.sign("incident.reported", {"incident_ref": "I-1"}, subject="C-1", at=at, event_id="1")
    second = chain.sign("incident.reported", {"incident_ref": "I-2"}, subject="C-1", at=at, event_id="2")
    reference = unsigned_event(
        kid=key_id(KEY.public_key()), source="police/avon-somerset", event_type="incident.reported",
        subject="C-1", data={"incident_ref": "I-1"}, time=at, recordedtime=at, sequence=1, prevhash="",
        event_id="1",
    )  # fmt: skip
    assert first == {**reference, "signature": sign_event(reference, KEY)}
    assert second["sequence"] == 2 and second["prevhash"] == event_digest(first)
    assert chain.prevhash == event_digest(second)


def check_placed(unsigned: dict[str, Any], sequence: int, prevhash: str) -> None:
    """Runs written without the chain position, then placed and signed, give exactly what
    serialising and signing the placed event gives."""
    runs = chain_runs({**unsigned, "sequence": 999, "prevhash": "placeholder"})
    event = {**unsigned, "sequence": sequence, "prevhash": prevhash}
    payload, digest = SIGNER.sign_placed(runs, sequence, prevhash)
    assert payload == SIGNER.sign_canonical(event)[1]
    assert digest == digest_of_canonical(payload)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        (_keys | st.sampled_from(["prevhash0", "recordedtime", "sequenc", "sequence0", "a", "z"])).filter(
            lambda k: k not in ("signature", "sequence", "prevhash")
        ),
        _values,
        max_size=8,
    ),
    st.integers(min_value=1, max_value=2**53 - 1),
    st.sampled_from(["", "0" * 64, "9f" * 32]),
)
def test_placing_runs_equals_serialising_the_placed_event(
    unsigned: dict[str, Any], sequence: int, prevhash: str
) -> None:
    check_placed(unsigned, sequence, prevhash)


def test_placed_envelope_is_the_envelope_signed_in_one_pass() -> None:
    at = datetime(2024, 3, 5, 21, 40, tzinfo=UTC)
    unsigned = unsigned_event(
        kid=SIGNER.kid, source="police/avon-somerset", event_type="incident.reported", subject="C-1",
        data={"incident_ref": "I-1", "note": "é😀"}, time=at, recordedtime=at, sequence=1, prevhash="",
        event_id="1",
    )  # fmt: skip
    check_placed(unsigned, 1, "")
    check_placed(unsigned, 7, "ab" * 32)


@pytest.mark.parametrize(
    "unsigned",
    [
        # the placeholders' bytes nested before the top-level members, and inside strings after
        {"data": {"prevhash": "", "sequence": 1, "x": [{"prevhash": ""}]}, "source": '"prevhash":""'},
        {"a": '"sequence":1', "recordedtime": '","sequence":1,"', "type": '\\"prevhash":""'},
        # not cut: an object after prevhash, a member between sequence and signature
        {"data": 1, "subject": {"prevhash": "", "sequence": 1}},
        {"sequence0": "x", "z": 1},
    ],
)
def test_the_cut_serialisation_is_exact_where_the_placeholders_appear_elsewhere(
    unsigned: dict[str, Any],
) -> None:
    check_placed(unsigned, 3, "cd" * 32)


@pytest.mark.parametrize(
    ("sequence", "prevhash"), [(0, ""), (True, ""), (2**53, ""), (1, '"x'), (1, "AB" * 32), (1, "a" * 63)]
)
def test_a_chain_position_that_is_not_a_sequence_and_digest_is_refused(sequence: Any, prevhash: str) -> None:
    with pytest.raises(ValueError):
        placed(chain_runs({"a": 1}), sequence, prevhash)


_texts = st.text(max_size=12) | st.sampled_from(["C-1", "é", '"', "\\", "\x00", "\U0001f600", "a b"])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=4), _values, max_size=5),
    _texts,
    _texts,
    st.sampled_from(["2024-03-05T21:40:00+00:00", "2024-03-05T21:40:00.123456+05:30", 'x"y', "é"]),
    st.sampled_from(["5f0c6a52-0d1e-4c1b-9a57-2d8c1f3e7a01", "1", '\u00e9"']),
)
def test_envelope_runs_write_what_serialising_the_envelope_writes(
    data: dict[str, Any], subject: str, event_type: str, time: str, event_id: str
) -> None:
    """The gateway's drafts are framed from their parts (``envelope_runs``): the bytes must be
    those of ``chain_runs`` over the envelope ``unsigned_event`` builds, for any data (floats,
    non-ASCII, escapes) and any strings, including ones the envelope's patterns refuse (then
    ``envelope_runs`` falls back to ``chain_runs``)."""
    parts = {
        "kid": SIGNER.kid, "source": "police/avon-somerset", "event_type": event_type,
        "subject": subject, "data": data, "time": time, "recordedtime": time, "event_id": event_id,
    }  # fmt: skip
    expected = chain_runs(unsigned_event(**parts, sequence=1, prevhash=""))
    assert envelope_runs(**parts) == expected
    if _plain_numbers(data):
        assert envelope_runs(**parts, data_plain_numbers=True) == expected
    signed = SIGNER.sign_placed(envelope_runs(**parts), 4, "ab" * 32)
    assert signed == SIGNER.sign_placed(expected, 4, "ab" * 32)


def test_new_event_ids_are_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # the creation time, in ms, leads the id
    # in creation order up to the millisecond (what keeps index inserts at the right edge)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
    # and random within one: 74 random bits, not a counter
    assert len({i[14:] for i in ids}) == len(ids)


def test_a_forked_process_makes_ids_of_its_own() -> None:
    """Ids are made from random bytes read ahead (one system call per 256 ids): a forked
    child must not make the ids its parent makes next from the bytes both hold."""
    new_event_id()  # the parent now holds 255 unread random chunks
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(writer, "".join(new_event_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader, "rb") as pipe:
        theirs = pipe.read().decode()
    ours = [new_event_id() for _ in range(10)]
    assert len(theirs) == 360
    assert not {theirs[at + 14 : at + 36] for at in range(0, 360, 36)} & {i[14:] for i in ours}
