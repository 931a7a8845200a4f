"""RFC 9162 hashing against the Certificate Transparency reference vectors, and every proof of
small trees against a naive transcription of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest

from ledger.merkle import (
    MerkleTree,
    ProofError,
    empty_root,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, path) from the CT reference tests
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (old size, new size, proof) from the CT reference tests
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert MerkleTree().root() == empty_root() == hashlib.sha256(b"").digest()


def test_roots_match_reference_vectors() -> None:
    tree = MerkleTree(LEAVES)
    assert [tree.root(n).hex() for n in range(1, 9)] == ROOTS


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_reference_vectors(index: int, size: int, path: list[str]) -> None:
    tree = MerkleTree(LEAVES)
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, tree.root(size))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_reference_vectors(old: int, new: int, path: list[str]) -> None:
    tree = MerkleTree(LEAVES)
    proof = tree.consistency_proof(old, new)
    assert [p.hex() for p in proof] == path
    assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)


# -- the RFC's definitions, transcribed naively, as the oracle --------------------------------
def naive_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return empty_root()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], whole), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def test_every_proof_of_small_trees_agrees_with_the_naive_definitions() -> None:
    leaves = [n.to_bytes(4, "big") for n in range(40)]
    tree = MerkleTree(leaves)
    for size in range(1, 41):
        root = naive_mth(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == naive_path(index, leaves[:size])
            assert verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
        for old in range(1, size):
            proof = tree.consistency_proof(old, size)
            assert proof == naive_subproof(old, leaves[:size], True)
            assert verify_consistency(old, size, tree.root(old), root, proof)


def test_tampered_inclusion_proofs_fail() -> None:
    tree = MerkleTree(LEAVES)
    proof = tree.inclusion_proof(5, 8)
    root = tree.root()
    assert not verify_inclusion(leaf_hash(b"altered"), 5, 8, proof, root)
    assert not verify_inclusion(leaf_hash(LEAVES[5]), 4, 8, proof, root)  # wrong position
    flipped = [proof[0], bytes([proof[1][0] ^ 1]) + proof[1][1:], proof[2]]
    assert not verify_inclusion(leaf_hash(LEAVES[5]), 5, 8, flipped, root)
    assert not verify_inclusion(leaf_hash(LEAVES[5]), 5, 8, proof[:-1], root)


def test_tampered_consistency_proofs_fail() -> None:
    tree = MerkleTree(LEAVES)
    proof = tree.consistency_proof(6, 8)
    assert not verify_consistency(6, 8, tree.root(5), tree.root(8), proof)
    assert not verify_consistency(6, 8, tree.root(6), tree.root(7), proof)
    assert not verify_consistency(6, 8, tree.root(6), tree.root(8), list(reversed(proof)))
    assert not verify_consistency(6, 8, tree.root(6), tree.root(8), [])
    other = MerkleTree([*LEAVES[:3], b"rewritten", *LEAVES[4:]])  # history rewritten at leaf 3
    assert not verify_consistency(6, 8, tree.root(6), other.root(8), other.consistency_proof(6, 8))


def test_out_of_range_requests_are_refused() -> None:
    tree = MerkleTree(LEAVES)
    with pytest.raises(ProofError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ProofError):
        tree.consistency_proof(5, 9)


def grown(old: int, leaves: list[bytes]) -> MerkleTree:
    """The tree of ``leaves`` built as an incremental checkpoint round does: from the frontier of
    the first ``old`` leaves, then the rest appended."""
    tree = MerkleTree.from_frontier(old, MerkleTree(leaves[:old]).frontier())
    for leaf in leaves[old:]:
        tree.append(leaf)
    return tree


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_a_tree_grown_from_a_frontier_gives_the_reference_roots_and_proofs(
    old: int, new: int, path: list[str]
) -> None:
    tree = grown(old, LEAVES[:new])
    assert [p.hex() for p in tree.consistency_proof(old)] == path
    assert tree.root().hex() == ROOTS[new - 1] and tree.root(old).hex() == ROOTS[old - 1]


def test_a_tree_grown_from_any_frontier_equals_the_tree_built_whole() -> None:
    leaves = [bytes([n]) * (n % 5) for n in range(70)]
    for old in range(40):
        for new in range(old, 70):
            whole, tree = MerkleTree(leaves[:new]), grown(old, leaves[:new])
            assert len(tree) == new
            assert tree.root() == whole.root() and tree.root(old) == whole.root(old)
            assert tree.consistency_proof(old) == whole.consistency_proof(old, new)
            assert tree.frontier() == whole.frontier()
            if old and old < new:
                assert verify_consistency(
                    old, new, whole.root(old), whole.root(), tree.consistency_proof(old)
                )


def test_a_grown_tree_refuses_what_lies_under_its_frontier() -> None:
    tree = grown(6, LEAVES)
    with pytest.raises(ProofError, match="under the frontier"):
        tree.inclusion_proof(1)
    with pytest.raises(ProofError, match="under the frontier"):
        tree.consistency_proof(3)
    with pytest.raises(ProofError, match="frontier of 6 leaves"):
        MerkleTree.from_frontier(6, [b"\0" * 32])
