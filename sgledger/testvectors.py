"""The signing test vectors (docs/test-vectors/chain.json): draft -> canonical bytes -> digest ->
signature, for a chain of three events, from a key derived from a published seed.

Ed25519 signatures are deterministic, so an implementation in any language that follows
docs/signing.md must produce exactly these bytes, digests and signatures. The key is TEST-ONLY:
its private half is printed in the file; never register it in a real partnership.

Regenerate with ``python -m sgledger.testvectors > docs/test-vectors/chain.json`` (a test checks
the committed file equals this output).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import canonical_json, event_digest, signing_input
from ledger.envelope import ChainSigner
from ledger.signing import public_key_text

SEED_TEXT = "safeguarding-ledger test vector key 1 (TEST ONLY, published)"
AGENCY = "police/avon-somerset"

DRAFTS: list[dict[str, Any]] = [
    {
        "id": "5f0c6a52-0d1e-4c1b-9a57-2d8c1f3e7a01",
        "type": "incident.reported",
        "subject": "C-1",
        "time": "2024-03-05T21:40:00+00:00",
        "recordedtime": "2024-03-05T23:05:12.250000+00:00",
        "data": {
            "incident_ref": "INC-1",
            "children_present": True,
            "domestic_abuse": True,
            "parties": [
                {"person": "P-m", "role": "victim"},
                {"person": "P-f", "role": "alleged-perpetrator"},
            ],
            "location": "Taunton – Café “Zoë” ☕ \u00e9\u0301 \u2028 tab\there",
        },
    },
    {
        "id": "5f0c6a52-0d1e-4c1b-9a57-2d8c1f3e7a02",
        "type": "person.status",
        "subject": "C-1",
        "time": "2024-03-06T09:00:00+01:00",
        "recordedtime": "2024-03-06T09:30:00+01:00",
        "data": {"person": "P-f", "age": 24, "care_leaver": True},
    },
    {
        "id": "5f0c6a52-0d1e-4c1b-9a57-2d8c1f3e7a03",
        "type": "referral.made",
        "subject": "C-1",
        "time": "2024-03-06T10:15:00+00:00",
        "recordedtime": "2024-03-06T10:15:00+00:00",
        "data": {"referral_ref": "REF-1", "to": "csc/somerset", "reason": "DA incident, children present"},
    },
]


def test_key() -> Ed25519PrivateKey:
    """Ed25519 private key = SHA-256 of the UTF-8 seed text (32 bytes)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED_TEXT.encode()).digest())


def vectors() -> dict[str, Any]:
    key = test_key()
    signer = ChainSigner(AGENCY, key)
    steps = []
    for draft in DRAFTS:
        event = signer.sign(
            draft["type"],
            draft["data"],
            subject=draft["subject"],
            at=datetime.fromisoformat(draft["time"]),
            recorded=datetime.fromisoformat(draft["recordedtime"]),
            event_id=draft["id"],
        )
        steps.append(
            {
                "draft": draft,
                "sequence": event["sequence"],
                "prevhash": event["prevhash"],
                "signing_input": signing_input(event).decode("utf-8"),
                "signature": event["signature"],
                "event": event,
                "canonical_event": canonical_json(event).decode("utf-8"),
                "digest": event_digest(event),
            }
        )
    return {
        "warning": "TEST ONLY. The private key below is published; never register it in a real partnership.",
        "spec": "docs/signing.md",
        "key": {
            "seed_text": SEED_TEXT,
            "derivation": "private key = SHA-256(UTF-8 seed_text), used as the raw 32-byte Ed25519 seed",
            "private_key_hex": hashlib.sha256(SEED_TEXT.encode()).hexdigest(),
            "public_key": public_key_text(key.public_key()),
            "kid": signer.kid,
        },
        "agency": AGENCY,
        "chain": steps,
    }


def main() -> None:
    print(json.dumps(vectors(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
