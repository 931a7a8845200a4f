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
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, func, select

from consumers.auditor.findings import Finding
from consumers.auditor.tree_heads import build_tree, leaves
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


def quarantine_tree(ledger: Ledger, tree: MerkleTree | None = None, after: int = 0) -> tuple[MerkleTree, int]:
    """The quarantine log's tree (``tree`` with the entries after entry ``after`` appended) and
    the id of its last entry (``after`` if none came)."""
    tree = MerkleTree() if tree is None else tree
    with ledger.read() as session:
        query = select(QuarantineEntry).where(QuarantineEntry.id > after).order_by(QuarantineEntry.id)
        for entry in session.scalars(query.execution_options(yield_per=1000)):
            tree.append(quarantine_leaf(entry))
            after = entry.id
    return tree, after


def accepted_tree(ledger: Ledger, tree: MerkleTree | None = None, after: int = 0) -> tuple[MerkleTree, int]:
    """The accepted log's tree (``tree`` with the events after position ``after`` appended, as
    ``build_tree`` builds it) and the position of its last event."""
    tree = MerkleTree() if tree is None else tree
    for position, data in leaves(ledger, after):
        tree.append(data)
        after = position
    return tree, after


@dataclass(frozen=True)
class GrownLogs:
    """Each log's tree as the database holds it now, and where its last leaf came from (ledger
    position, quarantine entry id): what the next round grows from."""

    trees: dict[str, MerkleTree]
    lasts: dict[str, int]


FRONTIER = "frontier.json"


def grow_logs(
    ledger: Ledger, store: CheckpointStore, partnership: str, *, rebuild: bool = False
) -> GrownLogs:
    """Both logs, each grown from the frontier kept beside its latest checkpoint: only entries
    after it are read (issue 13: a round read the whole history, a million events, every few
    minutes). Without a usable frontier (none yet, ``rebuild``, one that does not match the
    latest kept checkpoint's size and root, or fewer entries up to its last one than it covers)
    the log is read from its first entry, and ``make_checkpoints`` compares that history with
    the checkpoint (and refuses a different one) as before.

    Decision (docs/checkpoints.md): a deleted or truncated entry under the frontier is still
    refused at once (the count of entries up to the frontier's last one, an index count, falls
    short of its size); an entry edited in place under it is not re-read, so the round signs the
    log as the last checkpoint and the new entries make it (built from that checkpoint's own
    hashes, so it always extends it) and `audit verify --checkpoints` reports the edit.
    ``--rebuild`` reads everything and refuses that too."""
    trees, lasts = {}, {}
    for log, read, count in (
        (ACCEPTED_LOG, accepted_tree, _events_up_to),
        (QUARANTINE_LOG, quarantine_tree, _entries_up_to),
    ):
        kept = None if rebuild else _kept_frontier(store, origin_of(partnership, log))
        if kept is not None and count(ledger, kept[1]) != len(kept[0]):
            kept = None  # entries under the frontier are gone: read it all, and refuse
        trees[log], lasts[log] = read(ledger, *(kept or (None, 0)))
    return GrownLogs(trees, lasts)


def _events_up_to(ledger: Ledger, position: int) -> int:
    events = cast(Table, ledger.recorder.events_record_cls.__table__)
    with ledger.read() as session:
        return session.scalar(select(func.count()).select_from(events).where(events.c.id <= position)) or 0


def _entries_up_to(ledger: Ledger, entry: int) -> int:
    with ledger.read() as session:
        return session.scalar(select(func.count()).where(QuarantineEntry.id <= entry)) or 0


def _kept_frontier(store: CheckpointStore, origin: str) -> tuple[MerkleTree, int] | None:
    """The tree of the latest kept checkpoint of ``origin``, from the frontier file beside it,
    and the last leaf's place; None unless the frontier has that checkpoint's size and root."""
    latest = store.latest(origin)
    if latest is None:
        return None
    checkpoint = latest[0]
    try:
        kept = json.loads(store.path(checkpoint).with_name(FRONTIER).read_text("utf-8"))
        tree = MerkleTree.from_frontier(kept["size"], [bytes.fromhex(h) for h in kept["hashes"]])
        last = int(kept["last"])
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: read it all
        return None
    if kept.get("origin") != origin or len(tree) != checkpoint.size or tree.root() != checkpoint.root_hash:
        return None
    return tree, last


def _keep_frontier(store: CheckpointStore, checkpoint: Checkpoint, tree: MerkleTree, last: int) -> None:
    path = store.path(checkpoint).with_name(FRONTIER)
    kept = {
        "origin": checkpoint.origin,
        "size": len(tree),
        "last": last,
        "hashes": [h.hex() for h in tree.frontier()],
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept), "utf-8")
    tmp.replace(path)


def log_trees(ledger: Ledger, accepted: MerkleTree | None = None) -> dict[str, MerkleTree]:
    """Log name -> its tree as the database holds it now (``accepted``: one already built)."""
    return {
        ACCEPTED_LOG: accepted if accepted is not None else build_tree(ledger).tree,
        QUARANTINE_LOG: quarantine_tree(ledger)[0],
    }


def log_verifier_keys(registry: KeyRegistry, partnership: str) -> list[VerifierKey]:
    """Every key ever registered for ``partnership/log``, as note keys for each log's origin."""
    return [
        VerifierKey(origin_of(partnership, log), ED25519, record.public_key)
        for record in registry.keys_of(LOG_AGENCY)
        for log in LOGS
    ]


def make_checkpoints(
    trees: Mapping[str, MerkleTree],
    partnership: str,
    key: Ed25519PrivateKey,
    store: CheckpointStore,
    lasts: Mapping[str, int] | None = None,
) -> list[AddCheckpoint]:
    """Sign a checkpoint of each log that grew since the last one kept, keep it, and return the
    witness requests (with a consistency proof from the previous kept size) to send out. With
    ``lasts`` (``GrownLogs``), each log's frontier is kept beside its latest checkpoint for the
    next round to grow from."""
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
        if latest is None or len(tree) != old_size:
            checkpoint = Checkpoint(origin, len(tree), tree.root())
            note = sign_note(checkpoint.note(), origin, key)
            store.save(note)
            requests.append(AddCheckpoint.make(old_size, tree.consistency_proof(old_size), note))
        else:
            checkpoint = latest[0]
        if lasts is not None:  # after the checkpoint: a frontier ahead of every kept one is not used
            _keep_frontier(store, checkpoint, tree, lasts[log])
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
