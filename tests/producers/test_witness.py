"""The witness library against real Merkle trees and real keys: it cosigns a log that only grows,
and refuses, with the tlog-witness status, every checkpoint that is not consistent with the last
one it cosigned, is smaller, or is badly signed; its state and kept copies are private files."""

from __future__ import annotations

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import AddCheckpoint, Checkpoint
from ledger.merkle import MerkleTree
from ledger.notes import ED25519, Note, VerifierKey, parse_note, sign_note, verify_cosignature
from ledger.private_files import NotPrivate
from producers.witness import Witness, WitnessError, WitnessRefusal, answer

ORIGIN = "partnership/test/accepted"


class Log:
    """A log as the partnership runs it: a tree and the key that signs its checkpoints."""

    def __init__(self, leaves: int, key: Ed25519PrivateKey | None = None, prefix: bytes = b"e") -> None:
        self.key = key or Ed25519PrivateKey.generate()
        self.tree = MerkleTree(prefix + str(i).encode() for i in range(leaves))

    @property
    def vkey(self) -> VerifierKey:
        return VerifierKey(ORIGIN, ED25519, self.key.public_key())

    def grow(self, count: int) -> None:
        for i in range(count):
            self.tree.append(b"more" + str(i).encode())

    def note(self, size: int | None = None) -> Note:
        size = len(self.tree) if size is None else size
        return sign_note(Checkpoint(ORIGIN, size, self.tree.root(size)).note(), ORIGIN, self.key)

    def request(self, old: int, size: int | None = None) -> str:
        size = len(self.tree) if size is None else size
        return AddCheckpoint.make(old, self.tree.consistency_proof(old, size), self.note(size)).body()


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness.create(tmp_path / "witness", "gp.L85001.example/witness")


def refusal(witness: Witness, body: str) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as caught:
        witness.add_checkpoint(body)
    return caught.value


def test_cosigns_a_growing_log_and_keeps_private_copies(witness: Witness) -> None:
    log = Log(5)
    witness.trust(log.vkey)
    first = witness.add_checkpoint(log.request(0), now=1_700_000_000)
    cosigned = log.note().with_signature(first)
    assert verify_cosignature(parse_note(str(cosigned)), witness.vkey) == 1_700_000_000
    log.grow(6)
    witness.add_checkpoint(log.request(5))
    assert witness.logs()[ORIGIN]["size"] == 11
    kept = sorted((witness.directory / "cosigned").rglob("*.checkpoint"))
    assert [p.name for p in kept] == ["11.checkpoint", "5.checkpoint"]
    verify_cosignature(parse_note(kept[0].read_text()), witness.vkey)
    assert stat.S_IMODE(witness.directory.stat().st_mode) == 0o700
    for name in ("witness.key", "state.json"):
        assert stat.S_IMODE((witness.directory / name).stat().st_mode) == 0o600


def test_a_rewritten_history_is_refused_and_not_recorded(witness: Witness) -> None:
    log = Log(8)
    witness.trust(log.vkey)
    witness.add_checkpoint(log.request(0))
    fork = Log(12, key=log.key, prefix=b"x")  # same log key, different history
    proof_from_fork = fork.request(8)
    found = refusal(witness, proof_from_fork)
    assert found.status == 422 and "not consistent with size 8" in str(found)
    assert witness.logs()[ORIGIN]["size"] == 8


def test_a_smaller_checkpoint_is_refused(witness: Witness) -> None:
    log = Log(9)
    witness.trust(log.vkey)
    witness.add_checkpoint(log.request(0))
    smaller = AddCheckpoint.make(9, [], log.note(4)).body()
    found = refusal(witness, smaller)
    assert found.status == 400 and "larger than the checkpoint's 4" in str(found)
    # The same, sent as if from the start, is a conflict naming the size to prove from.
    stale = refusal(witness, log.request(0, 4))
    assert (stale.status, stale.body) == (409, "9\n")
    assert "last cosigned size 9" in str(stale)


def test_badly_signed_or_unknown_checkpoints_are_refused(witness: Witness) -> None:
    log = Log(3)
    witness.trust(log.vkey)
    stranger = Log(3)  # the same origin signed by a key this witness does not trust
    assert refusal(witness, stranger.request(0)).status == 403
    root_line = base64.b64encode(log.tree.root()).decode()
    assert refusal(witness, log.request(0).replace(root_line, "AAAA")).status == 400  # not a checkpoint
    signed = log.note()
    tampered = Note(signed.text.replace("\n3\n", "\n2\n"), signed.signatures)
    found = refusal(witness, AddCheckpoint(0, (), Checkpoint.from_text(tampered.text), tampered).body())
    assert found.status == 403 and "does not verify" in str(found)
    other = Witness.create(witness.directory.parent / "other", "school.example/witness")
    assert refusal(other, log.request(0)).status == 404
    assert witness.logs()[ORIGIN]["size"] == 0


@pytest.mark.parametrize(
    "body",
    ["", "old 01\n\nx", "new 1\n\nx", "old 1\nnot-base64!\n\nx", "old 1\nAAAA\n\nx"],
)
def test_malformed_requests_are_bad_requests(witness: Witness, body: str) -> None:
    assert refusal(witness, body).status == 400


def test_a_proof_from_zero_must_be_empty_and_size_zero_must_be_the_empty_root(witness: Witness) -> None:
    log = Log(4)
    witness.trust(log.vkey)
    with_proof = AddCheckpoint.make(0, [log.tree.root(2)], log.note()).body()
    assert refusal(witness, with_proof).status == 422
    empty_claim = sign_note(Checkpoint(ORIGIN, 0, log.tree.root(4)).note(), ORIGIN, log.key)
    assert refusal(witness, AddCheckpoint.make(0, [], empty_claim).body()).status == 422


def test_only_one_witness_per_directory_and_names_are_checked(witness: Witness, tmp_path: Path) -> None:
    with pytest.raises(WitnessError, match="already exists"):
        Witness.create(witness.directory, "again")
    with pytest.raises(ValueError, match="no spaces"):
        Witness.create(tmp_path / "w2", "bad name")
    with pytest.raises(WitnessError, match="witness init"):
        Witness(tmp_path / "none")


def test_the_http_answer_is_the_tlog_witness_one(witness: Witness) -> None:
    log = Log(6)
    witness.trust(log.vkey)
    status, content_type, body = answer(witness, log.request(0))
    assert (status, content_type) == (200, "text/plain; charset=utf-8")
    assert body.startswith("\u2014 gp.L85001.example/witness ") and body.endswith("\n")
    verify_cosignature(parse_note(str(log.note()) + body), witness.vkey)  # appended, it verifies
    assert answer(witness, log.request(0)) == (409, "text/x.tlog.size", "6\n")
    assert answer(witness, "nonsense")[0] == 400


def test_concurrent_requests_from_the_same_size_advance_the_witness_once(witness: Witness) -> None:
    """Checking the old size and recording the new one are one step (tlog-witness's race):
    of eight requests from size 0, one is cosigned and seven get 409."""
    log = Log(5)
    witness.trust(log.vkey)
    bodies = [log.request(0)] * 8
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda b: answer(Witness(witness.directory), b)[0], bodies))
    assert statuses == [200] + [409] * 7


def test_a_witness_directory_open_to_others_is_refused(witness: Witness) -> None:
    witness.directory.chmod(0o755)
    with pytest.raises(NotPrivate, match="chmod 700"):
        Witness(witness.directory)
