"""Ed25519 signatures over canonical JSON, and the key id (``kid``) derived from a public key.

The kid is a fingerprint of the key itself, so nobody can register two keys under one kid and an
auditor can recompute it from the registration event alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ledger.canonical import SIGNATURE, ChainRuns, around_signature, joined, placed, signing_input


def b64url(raw: bytes) -> str:
    return b64url_bytes(raw).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_bytes(raw: bytes) -> bytes:
    """Base64url without padding, as bytes: ``b64url`` without the two extra copies of
    ``base64.urlsafe_b64encode`` (it runs once per signature on the gateway's chain)."""
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_URLSAFE)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64url: the form carried in ``agency.key.registered``."""
    return b64url(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(b64url_decode(text))


def key_id(key: Ed25519PublicKey) -> str:
    """First 128 bits of SHA-256 over the raw public key, hex."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:32]


def sign_event(event: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """The ``signature`` attribute for an event (every other attribute must already be set)."""
    return b64url(key.sign(signing_input(event)))


class Signer:
    """An Ed25519 private key held for signing many events, by libsodium (PyNaCl).

    Why libsodium: it signs about 1.6x faster than ``cryptography`` (OpenSSL) on this machine
    (about 21 us against 34 us for a 535-byte event, CPU time, bench/RESULTS.md), and the
    gateway's batch ingest is bound by one signature per event. Ed25519 signatures are
    deterministic (RFC 8032), so both libraries give the same bytes for the same key and message
    (tests/ledger/test_signing.py checks it); keys stay ``cryptography`` objects everywhere else.
    """

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key()
        self.kid = key_id(self.public_key)
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self._secret = crypto_sign_seed_keypair(seed)[1]

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message``."""
        return crypto_sign(message, self._secret)[:64]

    def sign_canonical(self, unsigned: Mapping[str, Any]) -> tuple[str, bytes]:
        """The ``signature`` for an event without one, and the signed event's canonical bytes,
        with one RFC 8785 pass instead of two (one for the signing input, one for the payload):
        see ``around_signature``. tests/ledger/test_signing.py proves the result equal to
        ``canonical_json`` of the signed event, Hypothesis included."""
        if SIGNATURE in unsigned:
            raise ValueError("the event is already signed")
        return self._sign_runs(*around_signature(unsigned))

    def sign_placed(self, runs: ChainRuns, sequence: int, prevhash: str) -> tuple[bytes, str]:
        """The signed event of ``runs`` placed at ``sequence`` after ``prevhash``, as its
        canonical bytes (``sign_canonical``'s payload) and their SHA-256 (the next event's
        ``prevhash``), with no serialisation at all: what an agency's chain does per event
        (``chain_runs``): two joins of bytes around one signature, and the digest the chain
        needs next. Both at once, and libsodium called here rather than through ``sign``,
        because this runs once per event on the gateway's signing core (issue 11: 0.2-0.6 us of
        calls and properties an event, least and median of 15 alternated 3,000-event chains)."""
        prefix, closing = placed(runs, sequence, prevhash)
        signature = b64url_bytes(crypto_sign(prefix + closing, self._secret)[:64])
        payload = b"".join((prefix, b',"signature":"', signature, b'"', closing))
        return payload, hashlib.sha256(payload).hexdigest()

    def _sign_runs(self, before: bytes, after: bytes) -> tuple[str, bytes]:
        signature = b64url(self.sign(joined(before, after)))
        return signature, joined(before, b'"signature":"' + signature.encode("ascii") + b'"', after)


def signature_valid(event: Mapping[str, Any], key: Ed25519PublicKey, signed: bytes | None = None) -> bool:
    """Does ``signature`` verify over the event's signing input (``signed``, when the caller
    already has it from ``canonical_forms``)?

    Verification uses libsodium (PyNaCl), about twice as fast as ``cryptography`` here for the
    same Ed25519; keys stay ``cryptography`` objects everywhere else. libsodium is the stricter
    of the two (it refuses small-order keys and non-canonical signature encodings, which no
    honest signer produces), so nothing it accepts would be refused by another verifier.
    """
    signature = event.get("signature")
    if not isinstance(signature, str):
        return False
    try:
        raw = b64url_decode(signature)
        message = signing_input(event) if signed is None else signed
        VerifyKey(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).verify(message, raw)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
