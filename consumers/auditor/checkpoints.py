"""The partnership's two logs, their signed checkpoints, and checking a ledger against checkpoints
kept outside its database.

Two logs, each an RFC 9162 tree with its own C2SP checkpoint (decision, docs/checkpoints.md):

- ``<partnership>/accepted``: every accepted event, leaf = its RFC 8785 bytes, in ledger order:
  exactly the tree ``ledger.tree-head`` events and ``audit prove`` already use, so an inclusion
  proof checks against a checkpoint unchanged;
- ``<partnership>/quarantine``: one leaf per quarantine entry, in entry order; the leaf is the
  canonical JSON of what never changes about the entry (its number, when and where it was
  received, and the SHA-256 of its exact bytes). Its status and reason do change (held, then
  readmitted) and are deliberately not in the leaf.

Together they account for every received message: accepted, or quarantined (a duplicate
delivery of an accepted event is neither, and is the same message as the one accepted). A second
log rather than quarantine leaves mixed into the accepted tree keeps existing inclusion proofs,
tree heads and the projector's write path exactly as they were.

The checkpoints are signed by the partnership's **log key** (agency id ``partnership/log``,
registered by the root key like any agency), not by ``partnership/service``: the service key is
held by the servers people use (the web workspace signs reads with it), and a key that states
"this is the whole history" should sit with the one job that publishes checkpoints. An auditor
finds the log key the same way as every other key: in the root-signed registrations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from consumers.auditor.findings import Finding
from consumers.auditor.tree_heads import build_tree
from ledger.canonical import canonical_json
from ledger.checkpoint import ACCEPTED_LOG, QUARANTINE_LOG, AddCheckpoint, Checkpoint, origin_of
from ledger.checkpoint_store import SUFFIX, CheckpointStore
from ledger.keyregistry import KeyRegistry
from ledger.merkle import MerkleTree, ProofError
from ledger.notes import (
    ED25519,
    Note,
    NoteError,
    VerifierKey,
    sign_note,
    signature_of,
    verify_cosignature,
    verify_note,
)
from ledger.store.ledger import Ledger
from ledger.store.models import QuarantineEntry
from ledger.timeutil import format_time

LOG_AGENCY = "partnership/log"
LOGS = (ACCEPTED_LOG, QUARANTINE_LOG)


def quarantine_leaf(entry: QuarantineEntry) -> bytes:
    return canonical_json(
        {
            "entry": entry.id,
            "received_at": format_time(entry.received_at),
            "origin": entry.origin,
            "sha256": hashlib.sha256(entry.raw).hexdigest(),
        }
    )


def quarantine_tree(ledger: Ledger) -> MerkleTree:
    tree = MerkleTree()
    with ledger.read() as session:
        for entry in session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)):
            tree.append(quarantine_leaf(entry))
    return tree


def log_trees(ledger: Ledger, accepted: MerkleTree | None = None) -> dict[str, MerkleTree]:
    """Log name -> its tree as the database holds it now (``accepted``: one already built)."""
    return {
        ACCEPTED_LOG: accepted if accepted is not None else build_tree(ledger).tree,
        QUARANTINE_LOG: quarantine_tree(ledger),
    }


def log_verifier_keys(registry: KeyRegistry, partnership: str) -> list[VerifierKey]:
    """Every key ever registered for ``partnership/log``, as note keys for each log's origin."""
    return [
        VerifierKey(origin_of(partnership, log), ED25519, record.public_key)
        for record in registry.keys_of(LOG_AGENCY)
        for log in LOGS
    ]


def make_checkpoints(
    trees: Mapping[str, MerkleTree], partnership: str, key: Ed25519PrivateKey, store: CheckpointStore
) -> list[AddCheckpoint]:
    """Sign a checkpoint of each log that grew since the last one kept, keep it, and return the
    witness requests (with a consistency proof from the previous kept size) to send out."""
    requests = []
    for log, tree in trees.items():
        origin = origin_of(partnership, log)
        latest = store.latest(origin)
        old_size = latest[0].size if latest else 0
        if len(tree) < old_size or (latest is not None and tree.root(old_size) != latest[0].root_hash):
            # A log must never sign a checkpoint inconsistent with one it signed (tlog-checkpoint).
            raise ProofError(
                f"{origin}: the database no longer holds the {old_size} entries of the last kept "
                "checkpoint unchanged; refusing to sign a different history (run `audit verify "
                "--checkpoints`)"
            )
        if latest is not None and len(tree) == old_size:
            continue
        checkpoint = Checkpoint(origin, len(tree), tree.root())
        note = sign_note(checkpoint.note(), origin, key)
        store.save(note)
        requests.append(AddCheckpoint.make(old_size, tree.consistency_proof(old_size), note))
    return requests


def checkpoint_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.checkpoint`` under it."""
    return [path] if path.is_file() else sorted(path.rglob(f"*{SUFFIX}"))


@dataclass(frozen=True)
class CheckpointCheck:
    """What checking the ledger against kept checkpoints found."""

    checked: int
    findings: list[Finding]


def check_checkpoints(
    paths: Iterable[Path],
    trees: Mapping[str, MerkleTree],
    partnership: str,
    log_keys: Sequence[VerifierKey],
    witnesses: Sequence[VerifierKey] = (),
    quorum: int = 1,
) -> CheckpointCheck:
    """Each checkpoint must be signed by the log key and, when witness keys are given, carry
    ``quorum`` valid cosignatures among them; then the database's tree must be at least as large
    and have the same root at that size. A smaller tree is a truncation (or deleted entries); a
    different root at the same size is a rewritten history."""
    findings: list[Finding] = []
    by_origin = {origin_of(partnership, log): (log, tree) for log, tree in trees.items()}
    checked = 0
    for path in paths:
        checked += 1
        try:
            checkpoint, note = Checkpoint.from_note(path.read_text("utf-8"))
        except (NoteError, UnicodeDecodeError, OSError) as exc:
            findings.append(Finding("checkpoint", f"{path}: not a readable checkpoint ({exc})"))
            continue
        where = f"{path.name} ({checkpoint.origin} size {checkpoint.size})"
        problem = _signatures(note, checkpoint.origin, log_keys, witnesses, quorum)
        if problem:
            findings.append(Finding("checkpoint", f"{where}: {problem}"))
            continue
        if checkpoint.origin not in by_origin:
            findings.append(Finding("checkpoint", f"{where}: not a log of {partnership}"))
            continue
        log, tree = by_origin[checkpoint.origin]
        what = "events" if log == ACCEPTED_LOG else "quarantine entries"
        if checkpoint.size > len(tree):
            findings.append(
                Finding(
                    "checkpoint",
                    f"{where}: signed when the log held {checkpoint.size} {what}, the database now "
                    f"holds {len(tree)}: entries were deleted (a truncated tail or deleted rows)",
                )
            )
        elif tree.root(checkpoint.size) != checkpoint.root_hash:
            findings.append(
                Finding(
                    "checkpoint",
                    f"{where}: the first {checkpoint.size} {what} in the database do not have the "
                    "signed root: history was rewritten (rows altered, deleted or reordered)",
                )
            )
    return CheckpointCheck(checked, findings)


def _signatures(
    note: Note, origin: str, log_keys: Sequence[VerifierKey], witnesses: Sequence[VerifierKey], quorum: int
) -> str | None:
    """Why the note's signatures are not enough, or None."""
    mine = [k for k in log_keys if k.name == origin and signature_of(note, k) is not None]
    if not mine:
        return (
            f"not signed by a {LOG_AGENCY} key registered in this ledger or given with --log-key "
            "(was the key's registration deleted?)"
        )
    for key in mine:
        try:
            verify_note(note, key)
        except NoteError as exc:
            return str(exc)
    if not witnesses:
        return None
    good, bad = 0, []
    for witness in witnesses:
        if signature_of(note, witness) is None:
            continue
        try:
            verify_cosignature(note, witness)
            good += 1
        except NoteError as exc:
            bad.append(str(exc))
    if bad:
        return "; ".join(bad)
    if good < quorum:
        return f"{good} valid witness cosignature(s), {quorum} required"
    return None
