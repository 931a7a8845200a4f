"""Checkpoints kept as files: the partnership's own (written by the tree-head service) and an
agency's witness's cosigned copies share one layout, so `audit verify --checkpoints` reads either
and a witness keeps its copies with the same code that the partnership keeps its own.

Files like the key store (ledger/keystore.py); no database, no broker.
"""

from __future__ import annotations

from pathlib import Path

from ledger.checkpoint import Checkpoint
from ledger.notes import Note, NoteError, parse_note

SUFFIX = ".checkpoint"


class CheckpointStore:
    """Checkpoints kept as files, ``<dir>/<origin with ~ for />/<size>.checkpoint``: the
    partnership's copy (the tree-head service writes it) or an agency's (its witness's
    ``cosigned`` folder): the same layout, so ``audit verify --checkpoints`` reads either."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, checkpoint: Checkpoint) -> Path:
        return self.directory / checkpoint.origin.replace("/", "~") / f"{checkpoint.size}{SUFFIX}"

    def latest(self, origin: str) -> tuple[Checkpoint, Note] | None:
        folder = self.directory / origin.replace("/", "~")
        sizes = sorted(int(p.stem) for p in folder.glob(f"*{SUFFIX}") if p.stem.isdigit())
        if not sizes:
            return None
        return Checkpoint.from_note((folder / f"{sizes[-1]}{SUFFIX}").read_text("utf-8"))

    def save(self, note: Note) -> Path:
        path = self.path(Checkpoint.from_text(note.text))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(note), "utf-8")
        tmp.replace(path)
        return path

    def add_cosignatures(self, cosigned: str | bytes) -> tuple[Path, int]:
        """Merge the signature lines of a cosigned copy into the kept checkpoint with the same
        text; returns the file and how many lines were new. A copy whose text differs from what
        was kept is refused: it is not a cosignature of our checkpoint."""
        checkpoint, incoming = Checkpoint.from_note(cosigned)
        path = self.path(checkpoint)
        if not path.exists():
            raise NoteError(f"no kept checkpoint of {checkpoint.origin} at size {checkpoint.size}")
        kept = parse_note(path.read_text("utf-8"))
        if kept.text != incoming.text:
            raise NoteError(f"{checkpoint.origin} size {checkpoint.size}: cosigned text differs from ours")
        merged = kept
        for signature in incoming.signatures:
            merged = merged.with_signature(signature)
        self.save(merged)
        return path, len(merged.signatures) - len(kept.signatures)
