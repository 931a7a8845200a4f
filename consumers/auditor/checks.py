"""Per-event checks in worker processes: canonical JSON and Ed25519 are the audit's CPU cost.

A worker receives a chunk of stored events (with their index rows) plus the key registrations
accepted before them (already checked against the root in the parent), folds a registry in
ledger order so every event is judged with exactly the keys the ledger held at its position, and
returns findings plus, per event, the chain digest and Merkle leaf hash the parent needs (in
order). Keys travel as event dicts because ``cryptography`` key objects do not pickle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consumers.auditor.findings import Finding
from consumers.auditor.stored import IndexRow, StoredRow, check_row, offline_mapper
from ledger.canonical import canonical_forms
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.merkle import leaf_hash
from ledger.store.ledger import KEY_EVENT_TYPES
from ledger.verification import check_event

Positioned = tuple[int, dict[str, Any]]
RootArgs = tuple[str, bytes]  # partnership, raw public key


LINK_FIELDS = ("id", "source", "sequence", "prevhash")  # what the chain check keeps per event


@dataclass(frozen=True)
class ChunkResult:
    findings: list[Finding]
    links: list[tuple[dict[str, Any], int]]  # (LINK_FIELDS of the event, position) per decoded row
    digests: list[str]  # chain digest of each decoded event, in chunk order
    leaves: bytes  # concatenated 32-byte Merkle leaf hashes, in chunk order


def root_args(root: RootKey) -> RootArgs:
    return root.partnership, root.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


WireIndex = tuple[str, str, int, str, str, str]  # IndexRow's fields
WireRow = tuple[int, bytes, int, str, bytes, WireIndex | None]  # StoredRow's


def to_wire(rows: Sequence[StoredRow]) -> list[WireRow]:
    """Rows as plain tuples for the trip to a worker: pickling the named tuples (a class
    reference and a Python ``__new__`` per row and per index row) cost ~3 us an event more."""
    return [(*row[:5], row.indexed and row.indexed[:]) for row in rows]


def _from_wire(rows: Sequence[WireRow]) -> list[StoredRow]:
    return [
        StoredRow(position, originator, version, topic, state, indexed and IndexRow(*indexed))
        for position, originator, version, topic, state, indexed in rows
    ]


@dataclass
class _Folded:
    """A worker's registry and how many of one run's key events (a list that only grows, in
    ledger order) it has folded: the next chunk starts from it instead of folding every key
    again (a few hundred agencies' keys, each a key load and a time parse, per chunk)."""

    run: str
    count: int
    last_position: int  # of the last key event folded (0: none)
    registry: KeyRegistry


_folded: _Folded | None = None  # per worker process


def _registry_before(
    run: str, root: RootArgs, keys: Sequence[Positioned], position: int
) -> tuple[KeyRegistry, int]:
    """A registry holding exactly the key events before ``position``, and how many those are:
    the worker's folded one when it holds only keys before ``position`` (chunks mostly come in
    ledger order), else a fresh one."""
    global _folded
    state = _folded
    if state is None or state.run != run or state.last_position >= position:
        registry = KeyRegistry(RootKey(root[0], Ed25519PublicKey.from_public_bytes(root[1])))
        state = _folded = _Folded(run, 0, 0, registry)
    while state.count < len(keys) and keys[state.count][0] < position:
        state.registry.apply(keys[state.count][1])
        state.last_position = keys[state.count][0]
        state.count += 1
    return state.registry, state.count


def check_chunk(run: str, root: RootArgs, keys: Sequence[Positioned], wire: Sequence[WireRow]) -> ChunkResult:
    """Decode every row, then index agreement and signature of every event; key events'
    signatures were checked by the parent (they must be, before anything they sign). ``run``
    names the audit run: ``keys`` grows only within one."""
    rows = _from_wire(wire)
    mapper = offline_mapper()
    findings: list[Finding] = []
    links: list[tuple[dict[str, Any], int]] = []
    digests: list[str] = []
    leaves = bytearray()
    if not rows:
        return ChunkResult(findings, links, digests, b"")
    registry, next_key = _registry_before(run, root, keys, rows[0].position)
    for row in rows:
        event, position = check_row(mapper, row, findings), row.position
        if event is None:
            continue
        links.append(({k: event.get(k) for k in LINK_FIELDS}, position))
        canonical, signed = canonical_forms(event)  # one serialisation for digest and signature
        digests.append(hashlib.sha256(canonical).hexdigest())
        leaves += leaf_hash(canonical)
        findings.extend(_index_findings(row.indexed, event, position, canonical, digests[-1]))
        if next_key < len(keys) and keys[next_key][0] < position:
            registry, next_key = _registry_before(run, root, keys, position)
        if event.get("type") in KEY_EVENT_TYPES:
            continue
        rejection = check_event(event, registry, signed=signed)
        if rejection is not None:
            findings.append(
                Finding.about("signature", f"{rejection.reason}: {rejection.detail}", event, position)
            )
    return ChunkResult(findings, links, digests, bytes(leaves))


def _index_findings(
    indexed: IndexRow | None, event: dict[str, Any], position: int, canonical: bytes, digest: str
) -> list[Finding]:
    if indexed is None:
        return []  # reported by check_row
    if indexed.event_id != event.get("id"):
        detail = (
            f"row holds this event but the index puts event {indexed.event_id} "
            f"({indexed.source} #{indexed.sequence}) here: rows moved or swapped"
        )
        return [Finding.about("index", detail, event, position)]
    if indexed.digest != digest or indexed.envelope.encode("utf-8") != canonical:
        detail = "row's content differs from the index copy: one of them was altered"
        return [Finding.about("index", detail, event, position)]
    if indexed.type != event.get("type"):
        # The reading process picks key events and tree heads by the index's type column.
        detail = f"index gives type {indexed.type} for this event: the index was altered"
        return [Finding.about("index", detail, event, position)]
    return []


class CheckPool:
    """Chunks are submitted as the ledger is read and their results handed back in submission
    (ledger) order; at most ``AHEAD`` chunks wait in flight, so reading never runs far ahead of
    the workers (flat memory on a million events)."""

    AHEAD = 8

    def __init__(self, root: RootKey, workers: int, on_result: Callable[[ChunkResult, Any], None]) -> None:
        self.root = root_args(root)
        self.run = uuid.uuid4().hex
        self.executor = ProcessPoolExecutor(max_workers=workers)
        self.on_result = on_result
        self.pending: list[tuple[Future[ChunkResult], Any]] = []

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(cancel_futures=True)

    def submit(self, keys: Sequence[Positioned], rows: Sequence[StoredRow], context: Any) -> None:
        """``context`` is handed back with the result: what the parent kept about the chunk."""
        future = self.executor.submit(check_chunk, self.run, self.root, list(keys), to_wire(rows))
        self.pending.append((future, context))
        while len(self.pending) > self.AHEAD:
            self._collect()

    def finish(self) -> None:
        while self.pending:
            self._collect()

    def _collect(self) -> None:
        future, context = self.pending.pop(0)
        self.on_result(future.result(), context)
