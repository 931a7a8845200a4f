"""RFC 8785 (JSON Canonicalization Scheme) and the event digest that chains an agency's events.

Signatures and hashes are over canonical bytes so that any JSON library, in any language, on the
agency side or the auditor's, produces the same bytes from the same event. ``rfc8785`` is the
maintained implementation; we never hand-roll number or string serialisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical serialisation of a JSON value."""
    return rfc8785.dumps(value)


def canonical_forms(event: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The whole event and its signing input (every attribute except ``signature``), both in
    canonical form, from one serialisation pass.

    Verifying an event needs both (the signature covers one, the chain digest and the Merkle
    leaf hash the other) and serialising is, after validation, the largest cost per event in the
    pure-Python ``rfc8785``. Each top-level member is serialised once by the library; the two
    forms are the same members, in RFC 8785 order (UTF-16 code units of the key), joined with
    and without the signature.
    """
    members = [
        (key, canonical_json({key: value})[1:-1])
        for key, value in sorted(event.items(), key=lambda item: str(item[0]).encode("utf-16be"))
    ]
    whole = b"{" + b",".join(member for _, member in members) + b"}"
    signed = b"{" + b",".join(member for key, member in members if key != "signature") + b"}"
    return whole, signed


def signing_input(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's signature covers: every attribute except ``signature`` itself."""
    return canonical_forms(event)[1]


def event_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the whole event in canonical form, signature included.

    This is what the next event of the same agency carries as ``prevhash``: including the
    signature means a re-signed (altered) predecessor breaks the chain too.
    """
    return digest_of_canonical(canonical_json(dict(event)))


def digest_of_canonical(canonical: bytes) -> str:
    """The digest of an event already in canonical form (saves serialising it twice)."""
    return hashlib.sha256(canonical).hexdigest()
