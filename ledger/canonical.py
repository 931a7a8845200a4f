"""RFC 8785 (JSON Canonicalization Scheme) and the event digest that chains an agency's events.

Signatures and hashes are over canonical bytes so that any JSON library, in any language, on the
agency side or the auditor's, produces the same bytes from the same event. ``rfc8785`` is the
maintained implementation and the reference here; we never hand-roll number or string
serialisation.

Speed (issues 11 and 13): ``rfc8785`` is pure Python, about 35-60 us per event, as much as an
Ed25519 verification, and every event is serialised on signing, on acceptance and in the audit.
For the values events actually carry, the standard library's C encoder already writes RFC 8785
bytes, so it is used when that is provably so and ``rfc8785`` otherwise:

- sorted keys: Python sorts by code point, RFC 8785 by UTF-16 code unit; the two orders differ
  only between characters above U+FFFF and U+E000-U+FFFF, so an all-ASCII output is in RFC 8785
  order (and has no lone surrogates, which RFC 8785 refuses);
- strings: ``json`` with ``ensure_ascii=False`` escapes exactly ``"``, ``\\`` and U+0000-U+001F,
  as ``\\b \\t \\n \\f \\r`` or lowercase ``\\u00xx``, which is RFC 8785's table;
- numbers: integers print the same in both while within +-(2**53 - 1); any float (a digit then
  ``.``, ``e`` or ``E`` outside strings) or 16-digit integer sends the value to ``rfc8785``,
  which writes ECMAScript numbers and refuses integers outside that range;
- ``true``, ``false``, ``null``, arrays and separators are the same.

Anything else (non-ASCII text, NaN, a value ``json`` refuses) goes to ``rfc8785`` too, so the
result and the errors are the reference's. One difference is left on purpose: ``json`` writes a
non-string mapping key (``{1: 2}``) as a string where ``rfc8785`` refuses it; parsed JSON never
has one, so only a programming error could, and checking every key would cost the saving.
``tests/ledger/test_canonical.py`` compares the two on the RFC's vectors and generated values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import rfc8785

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
)


def _c_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` as the C encoder it builds on every call, built once.

    Why (issues 11 and 13): ``JSONEncoder.encode`` makes a new C encoder object per call
    (``iterencode``'s one-shot path), which cost more than encoding an event's ``data``
    (4.3 against 1.7 us, measured): every event is serialised on signing, acceptance and
    audit. These are the arguments ``iterencode`` passes for ``_ENCODER``'s settings, so the
    text and the errors are the same; without the C accelerator, the encoder itself."""
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None:  # a Python without the _json accelerator
        return _ENCODER.encode
    # markers (None: no circular check), default, strings as they are (ensure_ascii=False),
    # indent, the two separators, sort_keys, skipkeys, allow_nan
    encode = make(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False)

    def encoded(value: Any) -> str:
        return "".join(encode(value, 0))

    return encoded


_ENCODE = _c_encoder()
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
# Outside strings: a float, or an integer that may be beyond RFC 8785's domain.
_NOT_PLAIN_NUMBER = re.compile(r"\d[.eE]|\d{16}")


def canonical_json(value: Any, *, plain_numbers: bool = False) -> bytes:
    """The RFC 8785 canonical serialisation of a JSON value. ``plain_numbers``: the caller has
    seen ``ledger.validation._plain_numbers(value)`` hold (no float, no integer beyond
    2**53 - 1: what a checked draft's ``data`` has), so the search for numbers the standard
    encoder may write differently is skipped (a third of this function's cost)."""
    try:
        text = _ENCODE(value)
    except (TypeError, ValueError, RecursionError):
        return rfc8785.dumps(value)  # raises the reference's error (or serialises what json cannot)
    if text.isascii() and (plain_numbers or not _NOT_PLAIN_NUMBER.search(_outside_strings(text))):
        return text.encode("ascii")
    return rfc8785.dumps(value)


def _outside_strings(text: str) -> str:
    """The JSON text with every string removed: what is left is punctuation, literals and
    numbers. Without escapes, every other piece between quotes is outside a string."""
    if "\\" not in text:
        return "".join(text.split('"')[::2])
    return _STRING.sub("", text)


SIGNATURE = "signature"


def around_signature(event: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The event's canonical members that sort before ``signature`` and those after it, each
    run without braces, from one serialisation of the event's other members.

    RFC 8785 writes an object's members independently, sorted by key (UTF-16 code units) and
    joined by commas, so the signing input is the two runs joined and the whole event is the
    two runs with the signature member between them: signing and verifying need one pass, not
    two. Comparing a key with the ASCII word ``signature`` by code point gives the UTF-16 order
    too (the orders differ only between two characters at or above U+E000)."""
    before = canonical_json({k: v for k, v in event.items() if k < SIGNATURE})[1:-1]
    after = canonical_json({k: v for k, v in event.items() if k > SIGNATURE})[1:-1]
    return before, after


PREVHASH, SEQUENCE = "prevhash", "sequence"
_DIGEST = re.compile("[0-9a-f]{64}")
_PREVHASH_PLACEHOLDER, _SEQUENCE_PLACEHOLDER = b'"prevhash":""', b'"sequence":1'  # see chain_runs


class ChainRuns(NamedTuple):
    """An unsigned event's canonical form cut around the two members that only the chain decides
    (``prevhash`` and ``sequence``) and the ``signature``: written before the chain position is
    known, so the chain's critical path only splices (``placed``) and signs. Why: an agency's
    chain is sequential (each ``prevhash`` names the previous signed event), so everything that
    can be serialised without the position is done off that path (issue 11,
    producers/gateway/worker.py).

    Held as the literal bytes between the spliced values (braces, commas and member names
    included), not as runs of members: placing an event is then one ``bytes.join`` of a tuple,
    with no test for empty runs, and the signed payload a second one (``placed``)."""

    opening: bytes  # "{", the members sorting before "prevhash", then '"prevhash":"'
    between: bytes  # '"', the members between "prevhash" and "sequence", then ',"sequence":'
    before_signature: bytes  # the members between "sequence" and "signature", each after a comma
    closing: bytes  # the members after "signature", each after a comma, then "}"


def chain_frame(head: bytes, middle: bytes, rest: bytes, after: bytes) -> ChainRuns:
    """``ChainRuns`` from the runs of canonical members (without braces, empty when none)
    around ``prevhash``, ``sequence`` and ``signature``, in key order."""
    return ChainRuns(
        b"{" + head + b',"prevhash":"' if head else b'{"prevhash":"',
        b'",' + middle + b',"sequence":' if middle else b'","sequence":',
        b"," + rest if rest else b"",
        b"," + after + b"}" if after else b"}",
    )


def chain_runs(unsigned: Mapping[str, Any]) -> ChainRuns:
    """The frame of an event without ``signature``, ``prevhash`` and ``sequence`` (any values
    they have are ignored): the same ordering argument as ``around_signature``.

    An envelope's members after ``prevhash`` are all JSON scalars and none sorts between
    ``sequence`` and ``signature``: then one serialisation with placeholder values is cut at
    the placeholders (about half the cost of serialising each run). The cut is exact: the
    bytes ``"prevhash":""`` can only be a member (a quote inside a string is escaped), and the
    last such member is the top-level one when nothing after it is an object or array; the same
    for ``"sequence":1`` after it. Any other object is serialised run by run. (The gateway's
    drafts do not come here: ``ledger.envelope.envelope_runs`` writes their frame from the
    parts.)"""
    if SIGNATURE in unsigned:
        raise ValueError("the event is already signed")
    if _scalars_after_prevhash(unsigned):
        text = canonical_json({**unsigned, PREVHASH: "", SEQUENCE: 1})
        start = text.rfind(_PREVHASH_PLACEHOLDER)
        end = text.rfind(_SEQUENCE_PLACEHOLDER, start)
        middle_start = start + len(_PREVHASH_PLACEHOLDER) + 1
        after_start = end + len(_SEQUENCE_PLACEHOLDER) + 1
        return chain_frame(
            text[1 : max(start - 1, 1)],
            text[middle_start : max(end - 1, middle_start)],
            b"",
            text[after_start:-1],
        )

    def run(low: str | None, high: str | None) -> bytes:
        members = {
            k: v for k, v in unsigned.items() if (low is None or low < k) and (high is None or k < high)
        }
        return canonical_json(members)[1:-1] if members else b""

    return chain_frame(
        run(None, PREVHASH), run(PREVHASH, SEQUENCE), run(SEQUENCE, SIGNATURE), run(SIGNATURE, None)
    )


def _scalars_after_prevhash(unsigned: Mapping[str, Any]) -> bool:
    """``chain_runs``'s condition for cutting one serialisation: every member after ``prevhash``
    is a string, number, boolean or null, and none sorts between ``sequence`` and ``signature``
    (a loop: a generator's frame per member cost as much as the cut saves)."""
    for k, v in unsigned.items():
        scalar = v is None or isinstance(v, str | int | float)
        if k > PREVHASH and k != SEQUENCE and (SEQUENCE < k < SIGNATURE or not scalar):
            return False
    return True


MAX_SEQUENCE = 2**53 - 1


def placed(runs: ChainRuns, sequence: int, prevhash: str) -> tuple[bytes, bytes]:
    """The event of ``runs`` placed at ``sequence`` after ``prevhash`` (a digest: 64 lowercase
    hex, or "" for the first event; anything else is refused rather than written unescaped), as
    ``(prefix, closing)``: its signing input is ``prefix + closing``, the signed event
    ``prefix + ',"signature":"..."' + closing``."""
    if type(sequence) is not int or not 0 < sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be a positive integer, not {sequence!r}")
    if prevhash and not _DIGEST.fullmatch(prevhash):
        raise ValueError(f"prevhash must be a SHA-256 hex digest or empty, not {prevhash!r}")
    prefix = b"".join(
        (runs.opening, prevhash.encode("ascii"), runs.between, b"%d" % sequence, runs.before_signature)
    )
    return prefix, runs.closing


def joined(*members: bytes) -> bytes:
    """Runs of canonical members (empty ones skipped) as one canonical object."""
    return b"{" + b",".join(m for m in members if m) + b"}"


def canonical_forms(event: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The whole event and its signing input (every attribute except ``signature``), both in
    canonical form, from one serialisation pass.

    Verifying an event needs both (the signature covers one, the chain digest and the Merkle
    leaf hash the other). A signed event is serialised whole once and the signing input is that
    text with the top-level ``signature`` member cut out, which RFC 8785 allows: it writes an
    object's members independently, sorted and comma-joined, so removing one member and its
    comma leaves the canonical form of the object without it (~12 us an event against ~15 for
    ``around_signature``'s two runs; the projector, the gateway and the audit all verify here).

    The cut is taken only where it is provably at the top-level member: the signature is a
    non-empty base64url string (so its canonical text is the string between quotes, and the
    bytes ``,"signature":"<sig>"`` can only be a member named ``signature`` with exactly that
    value, not first in its object: a comma followed by a quote is always outside strings, a
    quote inside a string being escaped), and every top-level member after it is a JSON scalar
    (so no object that could hold such a member follows it, and the last occurrence is the
    top-level one; none at all means no member sorts before it). Any other event is serialised
    around its signature (``around_signature``); tests/ledger/test_canonical_forms.py compares
    the result with the definitions on generated events and events built to mislead the cut."""
    signature = event.get(SIGNATURE)
    if type(signature) is str and _cuttable(event, signature):
        whole = canonical_json(event)
        member = b',"signature":"' + signature.encode("ascii") + b'"'
        at = whole.rfind(member)
        if at >= 0:  # else the signature is the first member (no comma before it)
            return whole, whole[:at] + whole[at + len(member) :]
    before, after = around_signature(event)
    signed = joined(before, after)
    if SIGNATURE not in event:
        return signed, signed
    return joined(before, b'"signature":' + canonical_json(event[SIGNATURE]), after), signed


_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _cuttable(event: Mapping[str, Any], signature: str) -> bool:
    """``canonical_forms``'s conditions for the cut (a loop: a generator's frame per member
    costs more than the check)."""
    if not signature or not signature.isascii() or not _BASE64URL.issuperset(signature.encode("ascii")):
        return False
    for key, value in event.items():
        if type(key) is not str:
            return False
        if key > SIGNATURE and not (value is None or isinstance(value, str | int | float)):
            return False
    return True


def signing_input(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's signature covers: every attribute except ``signature`` itself."""
    return canonical_json({k: v for k, v in event.items() if k != SIGNATURE})


def event_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the whole event in canonical form, signature included.

    This is what the next event of the same agency carries as ``prevhash``: including the
    signature means a re-signed (altered) predecessor breaks the chain too.
    """
    return digest_of_canonical(canonical_json(dict(event)))


def digest_of_canonical(canonical: bytes) -> str:
    """The digest of an event already in canonical form (saves serialising it twice)."""
    return hashlib.sha256(canonical).hexdigest()
