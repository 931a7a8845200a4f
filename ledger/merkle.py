"""RFC 9162 (Certificate Transparency v2) Merkle trees over the ledger's accepted events.

Per-event signatures prove who said what; they cannot show that a row was deleted or that two
rows were swapped, because each surviving row still verifies. A Merkle tree over every accepted
event in ledger order, with its root periodically signed by the partnership, makes the order and
the completeness of the history itself verifiable, and lets anyone prove one event's inclusion
(or that a later tree extends an earlier one) with a logarithmic number of hashes.

Hashing follows RFC 9162 section 2.1: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left
|| right), so a leaf can never be passed off as a node. Proof construction and verification are
the RFC's algorithms (2.1.3 and 2.1.4) transcribed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    return hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2): the RFC's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class ProofError(ValueError):
    """A proof was asked for sizes or indices the tree cannot answer."""


class MerkleTree:
    """An append-only tree holding every perfect subtree's hash, packed in bytearrays.

    Level ``h`` holds the roots of the aligned subtrees of ``2**h`` leaves, so any MTH over a
    prefix, and every proof, is assembled from O(log n) stored hashes. Packed storage costs
    64 bytes per leaf in total (a million leaves: 64 MB) instead of a Python object per hash.
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        # Nodes at the start of each level that are not held: none, except in a tree grown from
        # a frontier (``from_frontier``), which holds no node under its frontier's subtrees.
        self._skipped: list[int] = [0]
        for data in leaves:
            self.append(data)

    @classmethod
    def from_frontier(cls, size: int, hashes: Sequence[bytes]) -> MerkleTree:
        """A tree of ``size`` leaves known only by its frontier (``frontier()``: the roots of its
        perfect subtrees, largest first), to append to.

        Why: a log that signs a checkpoint every few minutes need not re-read its whole history
        each time. Every root and consistency proof from ``size`` on is built from those hashes
        and nodes over later leaves (RFC 9162's decompositions of ``[0, n)`` for ``n >= size``
        meet the first ``size`` leaves only in the subtrees the frontier holds); anything else
        under them (an inclusion proof of an early leaf, a consistency proof from a smaller
        size) raises ``ProofError``."""
        heights = [h for h in reversed(range(size.bit_length())) if size >> h & 1]
        if size < 0 or len(hashes) != len(heights) or any(len(h) != HASH_SIZE for h in hashes):
            raise ProofError(f"a frontier of {size} leaves has {len(heights)} hashes of {HASH_SIZE} bytes")
        tree = cls()
        tree._levels = [bytearray() for _ in range(max(size.bit_length(), 1))]
        tree._skipped = [size >> h for h in range(len(tree._levels))]
        for height, digest in zip(heights, hashes, strict=True):
            tree._levels[height] += digest
            tree._skipped[height] -= 1
        return tree

    def frontier(self) -> list[bytes]:
        """The roots of the perfect subtrees the leaves split into, largest first: all a later
        round needs to carry on from this size (``from_frontier``)."""
        size = len(self)
        return [self._stored(h, (size >> h) - 1) for h in reversed(range(size.bit_length())) if size >> h & 1]

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH_SIZE + self._skipped[0]

    def append(self, data: bytes) -> None:
        """Add a leaf's data (not its hash); completes every perfect subtree it closes."""
        self.append_hash(leaf_hash(data))

    def append_hash(self, digest: bytes) -> None:
        level, current = 0, digest
        while True:
            row = self._levels[level]
            row += current
            count = len(row) // HASH_SIZE + self._skipped[level]
            if count % 2:
                return
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
                self._skipped.append(0)
            current = node_hash(bytes(row[-2 * HASH_SIZE : -HASH_SIZE]), bytes(row[-HASH_SIZE:]))
            level += 1

    def _stored(self, height: int, index: int) -> bytes:
        index -= self._skipped[height]
        if index < 0:
            raise ProofError("that node lies under the frontier this tree was grown from, and is not held")
        return bytes(self._levels[height][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); ``start`` is always aligned as the RFC's recursion produces it."""
        n = end - start
        if n == 0:
            return empty_root()
        if n & (n - 1) == 0:
            height = n.bit_length() - 1
            return self._stored(height, start >> height)
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = len(self) if size is None else size
        if not 0 <= size <= len(self):
            raise ProofError(f"tree has {len(self)} leaves; no root for size {size}")
        return self._subtree(0, size)

    def leaf(self, index: int) -> bytes:
        return self._stored(0, index)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 2.1.3.1."""
        size = len(self) if size is None else size
        if not 0 <= index < size <= len(self):
            raise ProofError(f"no leaf {index} in a tree of size {size} (have {len(self)})")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._subtree(start + k, end)]
        return [*self._path(m - k, start + k, end), self._subtree(start, start + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 2.1.4.1."""
        new_size = len(self) if new_size is None else new_size
        if not 0 <= old_size <= new_size <= len(self):
            raise ProofError(f"no consistency proof from {old_size} to {new_size} (have {len(self)})")
        if old_size in (0, new_size):
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self._subtree(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self._subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._subtree(start, start + k)]


def verify_inclusion(leaf_digest: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` place the leaf hash at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_digest
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``new_size`` leaves an extension of the older one?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
