"""`audit verify`: check the whole history from the partnership root public key alone.

One pass over the ledger in position order: rows missing or undecodable (stored.py); key
registrations against the root (here, sequentially: few, and every later signature depends on
them); canonical form, index agreement and every other signature in worker processes
(checks.py), whose results come back in ledger order to extend the chains (chains.py:
sequences, prevhash links, equivocation) and the Merkle tree every published tree head must
match; and, when the topics are read too, that the topics and the ledger hold the same accepted
events. Per-event signatures alone cannot show a deleted or reordered row; the index and the
signed tree heads can.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.auditor.chains import ChainChecker
from consumers.auditor.checkpoints import check_checkpoints, log_trees, log_verifier_keys
from consumers.auditor.checks import CheckPool, ChunkResult, Positioned
from consumers.auditor.findings import Finding
from consumers.auditor.stored import check_row, last_position, read_pages
from consumers.auditor.topics import read_topics
from consumers.projector.runner import received_at
from ledger.canonical import event_digest
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.merkle import HASH_SIZE, MerkleTree
from ledger.notes import VerifierKey
from ledger.store.ledger import KEY_EVENT_TYPES, Ledger
from ledger.verification import check_event, parse_message
from transport.kafka import KafkaSettings

CHUNK = 1000
SEQUENTIAL_TYPES = frozenset({*KEY_EVENT_TYPES, "ledger.tree-head"})  # judged in the reading process
Progress = Callable[[int, int], None]  # events verified so far, total expected


@dataclass(frozen=True)
class KeptCheckpoints:
    """Checkpoint files held outside the database, and the witnesses whose cosignatures count."""

    paths: list[Path]
    witnesses: list[VerifierKey] = field(default_factory=list)
    quorum: int = 1
    log_keys: list[VerifierKey] = field(default_factory=list)  # given out of band, beside the ledger's


@dataclass
class AuditReport:
    events: int = 0
    sources: int = 0
    key_events: int = 0
    tree_heads: int = 0
    topic_messages: int | None = None
    topic_rejected: int = 0  # messages on the topics the projector rightly refused
    checkpoints: int | None = None  # kept checkpoints checked (None: not asked)
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "sources": self.sources,
            "key_events": self.key_events,
            "tree_heads": self.tree_heads,
            "topic_messages": self.topic_messages,
            "topic_rejected": self.topic_rejected,
            "checkpoints": self.checkpoints,
            "findings": len(self.findings),
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
        }


def verify(
    ledger: Ledger,
    root: RootKey,
    *,
    kafka: KafkaSettings | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    checkpoints: KeptCheckpoints | None = None,
) -> AuditReport:
    started = time.perf_counter()
    report = AuditReport()
    total = last_position(ledger)
    registry = KeyRegistry(root)
    keys: list[Positioned] = []  # valid key events, in ledger order
    chains = ChainChecker()
    tree = MerkleTree()
    heads: list[tuple[dict[str, Any], int]] = []
    ledger_digests: dict[str, tuple[str, int]] = {}  # event id -> digest, position (topics check)
    stored_findings: list[Finding] = []

    def on_result(result: ChunkResult, _: object) -> None:
        """Results arrive in ledger order: extend the tree and the chains with them."""
        report.findings.extend(result.findings)
        links = result.links
        for i, ((link, position), digest) in enumerate(zip(links, result.digests, strict=True)):
            tree.append_hash(result.leaves[i * HASH_SIZE : (i + 1) * HASH_SIZE])
            chains.add(link, position, digest)
            if kafka is not None:
                ledger_digests[str(link.get("id"))] = (digest, position)
        report.events += len(links)
        if progress is not None:
            progress(report.events, total)

    mapper = ledger.app.mapper
    with CheckPool(root, workers or os.cpu_count() or 1, on_result) as pool:
        for page in read_pages(ledger, stored_findings):
            # Only key events and tree heads are decoded here (found by the index's type, which
            # the workers check against each row; a row without an index entry is decoded in
            # case it is one); every other row goes to the workers as stored.
            for row in page:
                hint = row.indexed.type if row.indexed is not None else None
                if hint is not None and hint not in SEQUENTIAL_TYPES:
                    continue
                envelope = check_row(mapper, row, [])  # its findings come from the workers
                event_type = envelope.get("type") if envelope is not None else None
                if envelope is None or event_type not in SEQUENTIAL_TYPES:
                    continue
                if event_type in KEY_EVENT_TYPES:
                    report.key_events += 1
                    _check_key_event(envelope, row.position, registry, keys, report)
                else:
                    heads.append((envelope, row.position))
            for chunk_start in range(0, len(page), CHUNK):
                pool.submit(keys, page[chunk_start : chunk_start + CHUNK], None)
        pool.finish()
    report.findings[:0] = stored_findings
    report.findings.extend(chains.finish())
    report.sources = chains.sources
    report.tree_heads = len(heads)
    report.findings.extend(_check_heads(heads, tree))
    if kafka is not None:
        _compare_topics(kafka, ledger_digests, registry, report)
    if checkpoints is not None:  # beside the hot loop: it reuses the tree that loop built
        checked = check_checkpoints(
            checkpoints.paths,
            log_trees(ledger, tree),
            root.partnership,
            [*log_verifier_keys(registry, root.partnership), *checkpoints.log_keys],
            checkpoints.witnesses,
            checkpoints.quorum,
        )
        report.checkpoints = checked.checked
        report.findings.extend(checked.findings)
    report.seconds = time.perf_counter() - started
    return report


def _check_key_event(
    event: dict[str, Any], position: int, registry: KeyRegistry, keys: list[Positioned], report: AuditReport
) -> None:
    """Key events are judged against the root alone, in ledger order, before anything they sign."""
    rejection = check_event(event, registry)
    if rejection is not None:
        report.findings.append(
            Finding.about("key-registration", f"{rejection.reason}: {rejection.detail}", event, position)
        )
        return
    try:
        registry.apply(event)
    except ValueError as exc:
        report.findings.append(Finding.about("key-registration", str(exc), event, position))
        return
    keys.append((position, event))


def _check_heads(heads: list[tuple[dict[str, Any], int]], tree: MerkleTree) -> list[Finding]:
    findings: list[Finding] = []
    for event, position in heads:
        data = event.get("data") or {}
        size, claimed = data.get("tree_size"), data.get("root_hash")
        if not isinstance(size, int) or size > len(tree):
            findings.append(
                Finding.about(
                    "tree-head",
                    f"tree_size {size} exceeds the {len(tree)} events in the ledger",
                    event,
                    position,
                )
            )
        elif tree.root(size).hex() != claimed:
            findings.append(
                Finding.about(
                    "tree-head",
                    f"signed root of the first {size} events does not match the ledger's "
                    "events: an earlier row was altered, deleted or reordered",
                    event,
                    position,
                )
            )
    return findings


def _compare_topics(
    kafka: KafkaSettings,
    ledger_digests: dict[str, tuple[str, int]],
    registry: KeyRegistry,
    report: AuditReport,
) -> None:
    """Every accepted event must be on the topics, and every acceptable event on the topics in
    the ledger; a different event under one id or one (source, sequence) is reported.

    "Acceptable" is judged as the projector judged it, with the key's validity at receipt (the
    record's time, docs/keys.md): a back-dated event signed with a revoked key is rightly on the
    topics and not in the ledger, and is counted with the refused, not reported as missing."""
    messages = read_topics(kafka)
    now = datetime.now(UTC)
    report.topic_messages = len(messages)
    on_topics: dict[str, str] = {}
    by_place: dict[tuple[str, int], str] = {}
    for message in messages:
        event = parse_message(message.value)
        received = received_at(message.timestamp_ms, now)
        if not isinstance(event, dict) or check_event(event, registry, received) is not None:
            report.topic_rejected += 1
            continue
        event_id, digest = str(event.get("id")), event_digest(event)
        if on_topics.get(event_id) == digest:
            continue  # a redelivery: the same event sent again
        place = (str(event.get("source")), int(event.get("sequence") or 0))
        if by_place.setdefault(place, digest) != digest:
            report.findings.append(
                Finding.about(
                    "equivocation",
                    f"two different signed events at {place[0]} sequence {place[1]} "
                    f"on the topics ({message.origin})",
                    event,
                    None,
                )
            )
        previous = on_topics.setdefault(event_id, digest)
        in_ledger = ledger_digests.get(event_id)
        if previous != digest or (in_ledger is not None and in_ledger[0] != digest):
            report.findings.append(
                Finding.about(
                    "topics",
                    f"event on the topics ({message.origin}) differs from the one accepted under the same id",
                    event,
                    in_ledger[1] if in_ledger else None,
                )
            )
        elif in_ledger is None and previous == digest and by_place[place] == digest:
            report.findings.append(
                Finding.about(
                    "topics",
                    f"valid event on the topics ({message.origin}) is not in the ledger",
                    event,
                    None,
                )
            )
    for event_id, (_, position) in sorted(ledger_digests.items(), key=lambda item: item[1][1]):
        if event_id not in on_topics:
            report.findings.append(
                Finding("topics", "accepted event is on no topic", event_id=event_id, position=position)
            )
