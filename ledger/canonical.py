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


def signing_input(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's signature covers: every attribute except ``signature`` itself."""
    return canonical_json({k: v for k, v in event.items() if k != "signature"})


def event_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the whole event in canonical form, signature included.

    This is what the next event of the same agency carries as ``prevhash``: including the
    signature means a re-signed (altered) predecessor breaks the chain too.
    """
    return digest_of_canonical(canonical_json(dict(event)))


def digest_of_canonical(canonical: bytes) -> str:
    """The digest of an event already in canonical form (saves serialising it twice)."""
    return hashlib.sha256(canonical).hexdigest()
