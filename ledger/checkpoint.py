"""C2SP tlog-checkpoints (c2sp.org/tlog-checkpoint): a log's tree size and root hash as the text of
a signed note, ``<origin>\\n<size>\\n<base64 root>\\n``.

The partnership keeps two logs, each with its own origin and checkpoint (docs/checkpoints.md):
``<partnership>/accepted`` (every accepted event, the Merkle tree of ``ledger/merkle.py``) and
``<partnership>/quarantine`` (one leaf per quarantine entry), so that every received message is
covered by a signed, witnessed size.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ledger.merkle import HASH_SIZE
from ledger.notes import Note, NoteError, parse_note

ACCEPTED_LOG = "accepted"
MAX_PROOF_LINES = 63  # tlog-witness: a client MUST NOT send more
QUARANTINE_LOG = "quarantine"


def origin_of(partnership: str, log: str) -> str:
    """The origin line (and the log key's name) of one of the partnership's logs."""
    return f"{partnership}/{log}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode()}\n"

    def note(self) -> Note:
        return Note(self.text())

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse the first three lines; extension lines are refused (we never write them and the
        spec says they are not auditable)."""
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise NoteError("checkpoint text is not exactly origin, size and root hash lines")
        origin, size, root = lines[:3]
        if not origin:
            raise NoteError("checkpoint has an empty origin")
        if not size.isdigit() or (size != "0" and size.startswith("0")) or not size.isascii():
            raise NoteError(f"checkpoint size {size!r} is not a decimal without leading zeroes")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root hash is not base64") from exc
        if len(digest) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(digest)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size), digest)

    @classmethod
    def from_note(cls, data: str | bytes) -> tuple[Checkpoint, Note]:
        note = parse_note(data)
        return cls.from_text(note.text), note


@dataclass(frozen=True)
class AddCheckpoint:
    """A c2sp.org/tlog-witness ``add-checkpoint`` request: ``old <size>``, one base64 line per
    consistency-proof hash, a blank line, the signed checkpoint. The partnership writes them, the
    witnesses read them; a malformed one raises :class:`NoteError`."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: Checkpoint
    note: Note

    def body(self) -> str:
        proof = "".join(base64.b64encode(p).decode() + "\n" for p in self.proof)
        return f"old {self.old_size}\n{proof}\n{self.note}"

    @classmethod
    def make(cls, old_size: int, proof: list[bytes], note: Note) -> AddCheckpoint:
        return cls(old_size, tuple(proof), Checkpoint.from_text(note.text), note)

    @classmethod
    def parse(cls, body: str | bytes) -> AddCheckpoint:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        head, sep, rest = text.partition("\n\n")
        if not sep:
            raise NoteError("request has no blank line between the proof and the checkpoint")
        lines = head.split("\n")
        size = lines[0].removeprefix("old ")
        if not lines[0].startswith("old ") or not size.isdigit() or (size != "0" and size[0] == "0"):
            raise NoteError("request does not start with 'old <size>'")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise NoteError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            proof = tuple(base64.b64decode(line, validate=True) for line in lines[1:])
        except binascii.Error as exc:
            raise NoteError("a consistency proof line is not base64") from exc
        if any(len(p) != HASH_SIZE for p in proof):
            raise NoteError(f"a consistency proof line is not a {HASH_SIZE}-byte hash")
        checkpoint, note = Checkpoint.from_note(rest)
        return cls(int(size), proof, checkpoint, note)
