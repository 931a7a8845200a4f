"""C2SP signed notes (c2sp.org/signed-note), Ed25519 note signatures and timestamped Ed25519
cosignatures (c2sp.org/tlog-cosignature, ``cosignature/v1``).

Why a standard format rather than our own JSON: a checkpoint must be checkable by people who do
not run this code (an agency's own witness, a review author, a regulator), with tools that
already exist (golang.org/x/mod/sumdb/note, transparency-dev/formats, sigsum). The byte layouts
here are the specifications' and are pinned by their own examples in
``tests/ledger/test_notes.py``.

Pure: bytes in, bytes out; no files, no clock (callers pass the cosignature time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01  # signature type of a plain Ed25519 note signature (the log's)
COSIGNATURE_V1 = 0x04  # signature type of a timestamped Ed25519 cosignature (a witness's)
DASH = "\u2014 "  # em dash + space opens every signature line
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify; the message says which."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or any(ord(c) < 0x20 for c in name):
        raise NoteError(f"key name {name!r} must be non-empty with no spaces or '+'")


def key_hash(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    check_key_name(name)
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """``name+hex(key ID)+base64(type || public key)``: how a public key is handed to verifiers."""

    name: str
    sig_type: int
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_hash(self.name, self.sig_type, raw_public(self.public_key))

    def __str__(self) -> str:
        material = base64.b64encode(bytes([self.sig_type]) + raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # the base64 key material may itself hold a "+"
        if len(parts) != 3:
            raise NoteError(f"verifier key {text!r} is not name+hash+key")
        name, hex_id, material = parts
        try:
            raw = base64.b64decode(material, validate=True)
            claimed = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"verifier key {text!r}: bad hex or base64") from exc
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1) or len(claimed) != 4:
            raise NoteError(f"verifier key {text!r} is not an Ed25519 (0x01) or cosignature (0x04) key")
        key = cls(name, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key.key_id != claimed:
            raise NoteError(f"verifier key {text!r}: key hash {hex_id} does not match its name and key")
        return key


@dataclass(frozen=True)
class Signature:
    """One signature line: the key name, the key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str  # ends in a newline; the signed bytes
    signatures: tuple[Signature, ...] = ()

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signature(self, signature: Signature) -> Note:
        """Add (or replace, for the same name and key ID) one signature line."""
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) != (signature.name, signature.key_id))
        return Note(self.text, (*kept, signature))


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signature lines (the last blank line separates them)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note holds a control character")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise NoteError("note has no blank line before its signatures")
    body, lines = text[: split + 1], text[split + 2 :].splitlines()
    if not lines:
        raise NoteError("note has no signature")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"signature line {line[:40]!r} does not start with an em dash")
        name, _, encoded = line[len(DASH) :].partition(" ")
        check_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature of {name} is not base64") from exc
        if len(raw) < 5:
            raise NoteError(f"signature of {name} is too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return Note(body, tuple(signatures))


def sign_note(note: Note, name: str, key: Ed25519PrivateKey) -> Note:
    """Add the Ed25519 (type 0x01) signature of ``name``'s key over the note text."""
    if not note.text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    key_id = key_hash(name, ED25519, raw_public(key.public_key()))
    signature = Signature(name, key_id, key.sign(note.text.encode()))
    return note.with_signature(signature)


def _verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def signature_of(note: Note, vkey: VerifierKey) -> Signature | None:
    """The note's signature line by ``vkey`` (same name and key ID), if any; others are ignored,
    as the spec requires of unknown keys."""
    for signature in note.signatures:
        if signature.name == vkey.name and signature.key_id == vkey.key_id:
            return signature
    return None


def verify_note(note: Note, vkey: VerifierKey) -> None:
    """Raise :class:`NoteError` unless ``vkey`` (type 0x01) signed the note text."""
    signature = signature_of(note, vkey)
    if signature is None:
        raise NoteError(f"note is not signed by {vkey.name}+{vkey.key_id.hex()}")
    if not _verify(vkey.public_key, signature.signature, note.text.encode()):
        raise NoteError(f"signature of {vkey.name} does not verify: the note was altered or forged")


# -- cosignature/v1 ------------------------------------------------------------------------------
def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a witness signs: ``cosignature/v1``, ``time <t>``, then the checkpoint text."""
    if not 0 <= timestamp < 2**63:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(note: Note, name: str, key: Ed25519PrivateKey, timestamp: int) -> Signature:
    """A witness's cosignature line over the note: key ID (type 0x04) || u64 time || Ed25519."""
    key_id = key_hash(name, COSIGNATURE_V1, raw_public(key.public_key()))
    signed = key.sign(cosigned_message(note.text, timestamp))
    return Signature(name, key_id, struct.pack(">Q", timestamp) + signed)


def cosignature_time(signature: Signature) -> int:
    """The POSIX time a cosignature/v1 was made (its first eight bytes after the key ID)."""
    if len(signature.signature) != 8 + 64:
        raise NoteError(f"signature of {signature.name} is not a cosignature/v1 (72 bytes)")
    return int(struct.unpack(">Q", signature.signature[:8])[0])


def verify_cosignature(note: Note, vkey: VerifierKey) -> int:
    """The time of ``vkey``'s valid cosignature on the note; :class:`NoteError` if absent or bad."""
    signature = signature_of(note, vkey)
    if signature is None:
        raise NoteError(f"no cosignature by {vkey.name}+{vkey.key_id.hex()}")
    timestamp = cosignature_time(signature)
    if not _verify(vkey.public_key, signature.signature[8:], cosigned_message(note.text, timestamp)):
        raise NoteError(f"cosignature of {vkey.name} does not verify")
    return timestamp
