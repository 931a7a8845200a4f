"""The two canonical forms `audit verify` needs of each stored event, from one serialisation.

Per event the audit needs the whole event in RFC 8785 form (its SHA-256 is the chain digest and
the index digest, its leaf hash the Merkle leaf, and it must equal the index's ``envelope`` text
byte for byte) and the signing input (the same without ``signature``). ``canonical_forms``
(ledger/canonical.py) makes both for any event by serialising the members before and after
``signature`` separately; here the whole event is serialised once (``canonical_json``: the C
encoder whenever its bytes are provably RFC 8785's) and the signing input is that text with the
top-level ``signature`` member cut out, which RFC 8785 allows: it writes an object's members
independently, sorted and comma-joined, so removing one member and its comma leaves the
canonical form of the object without it (docs/audit.md gives the decision; ~10 us an event, a
twentieth of the audit's CPU).

The cut is taken only where it is provably at the top-level member: the signature is a
non-empty base64url string (so its canonical text is the string between quotes, and the bytes
``,"signature":"<sig>"`` can only be a member named ``signature`` with exactly that value,
not first in its object: a comma followed by a quote is always outside strings, a quote inside
a string being escaped), and every top-level member after it is a JSON scalar (so no object
that could hold such a member follows it, and the last occurrence is the top-level one; none
at all means no member sorts before it). Any other event takes ``canonical_forms``;
tests/audit/test_forms.py compares the two on generated and adversarial events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.canonical import SIGNATURE, canonical_forms, canonical_json

_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def whole_and_signed(event: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The event and its signing input, both RFC 8785: what ``canonical_forms`` returns."""
    signature = event.get(SIGNATURE)
    if type(signature) is not str or not _cuttable(event, signature):
        return canonical_forms(event)
    whole = canonical_json(event)
    member = b',"signature":"' + signature.encode("ascii") + b'"'
    at = whole.rfind(member)
    if at < 0:  # the signature is the first member (no comma before it)
        return canonical_forms(event)
    return whole, whole[:at] + whole[at + len(member) :]


def _cuttable(event: Mapping[str, Any], signature: str) -> bool:
    """The conditions of the module docstring (a loop: a generator's frame per member costs
    more than the check)."""
    if not signature or not signature.isascii() or not _BASE64URL.issuperset(signature.encode("ascii")):
        return False
    for key, value in event.items():
        if type(key) is not str:
            return False
        if key > SIGNATURE and not (value is None or isinstance(value, str | int | float)):
            return False
    return True
