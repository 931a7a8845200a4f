"""The ledger's Merkle tree, its signed heads, and inclusion/consistency proofs against them.

The tree is not stored: it is rebuilt from ``ledger_events`` in position order whenever asked,
so a tree head can only match a ledger nobody has rewritten. Leaf index = rank of the row in
position order (positions may skip numbers on PostgreSQL after a rolled-back insert).
Publishing a head needs the root private key, so it is an operator's command
(`sgledger audit tree-head`), run periodically; the auditor checks heads with the public key.
"""

from __future__ import annotations

import json
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from consumers.auditor.stored import pages_of_envelopes
from ledger.canonical import canonical_json
from ledger.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent

TREE_HEAD = "ledger.tree-head"


class UnknownEvent(LookupError):
    """No accepted event has the id asked about."""


@dataclass
class LedgerTree:
    tree: MerkleTree
    positions: array[int]  # positions[i] = ledger position of leaf i

    def leaf_index(self, position: int) -> int:
        i = bisect_left(self.positions, position)
        if i == len(self.positions) or self.positions[i] != position:
            raise UnknownEvent(f"no ledger row at position {position}")
        return i


def leaves(ledger: Ledger, after: int = 0) -> Iterator[tuple[int, bytes]]:
    """(position, leaf data) of every stored event after position ``after``, in position order:
    the leaf is the RFC 8785 bytes of the stored envelope."""
    for page in pages_of_envelopes(ledger, after):
        for position, envelope in page:
            yield position, canonical_json(envelope)


def build_tree(ledger: Ledger) -> LedgerTree:
    """The whole tree, with each leaf's ledger position."""
    tree, positions = MerkleTree(), array("q")
    for position, data in leaves(ledger):
        tree.append(data)
        positions.append(position)
    return LedgerTree(tree, positions)


def current_head(ledger: Ledger) -> dict[str, Any]:
    """The data of a ``ledger.tree-head`` event for the ledger as it is now."""
    tree = build_tree(ledger).tree
    return {"tree_size": len(tree), "root_hash": tree.root().hex()}


def latest_head(ledger: Ledger) -> dict[str, Any] | None:
    """The newest published head: its data plus the id and position of the event carrying it."""
    with ledger.read() as session:
        row = session.scalars(
            select(AcceptedEvent)
            .where(AcceptedEvent.type == TREE_HEAD)
            .order_by(AcceptedEvent.position.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return {**json.loads(row.envelope)["data"], "event_id": row.event_id, "position": row.position}


def prove(ledger: Ledger, event_id: str) -> dict[str, Any]:
    """Inclusion proof of one event against the latest published head that covers it, or
    against the current tree when no published head covers it yet."""
    with ledger.read() as session:
        position = session.scalar(select(AcceptedEvent.position).where(AcceptedEvent.event_id == event_id))
    if position is None:
        raise UnknownEvent(f"no accepted event {event_id}")
    built = build_tree(ledger)
    index = built.leaf_index(position)
    head = latest_head(ledger)
    if head is not None and index < head["tree_size"] <= len(built.tree):
        size, against = head["tree_size"], f"published tree head {head['event_id']}"
    else:
        size, against = len(built.tree), "current tree (no published head covers this event yet)"
    proof = built.tree.inclusion_proof(index, size)
    root = built.tree.root(size)
    return {
        "event_id": event_id,
        "position": position,
        "leaf_index": index,
        "leaf_hash": built.tree.leaf(index).hex(),
        "tree_size": size,
        "root_hash": root.hex(),
        "against": against,
        "proof": [p.hex() for p in proof],
        "verified": verify_inclusion(built.tree.leaf(index), index, size, proof, root),
    }


def consistency(ledger: Ledger, old_size: int, new_size: int) -> dict[str, Any]:
    """Proof that the first ``new_size`` events extend the first ``old_size`` unchanged."""
    tree = build_tree(ledger).tree
    proof = tree.consistency_proof(old_size, new_size)
    old_root, new_root = tree.root(old_size), tree.root(new_size)
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [p.hex() for p in proof],
        "verified": verify_consistency(old_size, new_size, old_root, new_root, proof),
    }


def leaf_of(envelope: dict[str, Any]) -> bytes:
    """The leaf hash an event has in the tree: what a holder of the event checks a proof with."""
    return leaf_hash(canonical_json(envelope))
