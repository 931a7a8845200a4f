"""The partnership's kept checkpoints as files, without a database: the newest is the largest
size (not the last name in text order), a log is signed only when it grew, a damaged or foreign
file is a finding rather than a crash, and the signature rules hold (log key, witness quorum)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.auditor.checkpoints import LOGS, check_checkpoints, make_checkpoints
from ledger.checkpoint import origin_of
from ledger.checkpoint_store import CheckpointStore
from ledger.merkle import MerkleTree
from ledger.notes import COSIGNATURE_V1, ED25519, NoteError, VerifierKey, cosign, parse_note

PARTNERSHIP = "partnership/test"


def trees(accepted: int, quarantined: int) -> dict[str, MerkleTree]:
    return {
        "accepted": MerkleTree(b"a%d" % i for i in range(accepted)),
        "quarantine": MerkleTree(b"q%d" % i for i in range(quarantined)),
    }


def log_keys(key: Ed25519PrivateKey) -> list[VerifierKey]:
    return [VerifierKey(origin_of(PARTNERSHIP, log), ED25519, key.public_key()) for log in LOGS]


def test_signs_only_what_grew_and_the_newest_is_the_largest(tmp_path: Path) -> None:
    key, store = Ed25519PrivateKey.generate(), CheckpointStore(tmp_path)
    assert len(make_checkpoints(trees(9, 0), PARTNERSHIP, key, store)) == 2
    assert make_checkpoints(trees(9, 0), PARTNERSHIP, key, store) == []
    (request,) = make_checkpoints(trees(10, 0), PARTNERSHIP, key, store)
    assert (request.old_size, request.checkpoint.size) == (9, 10)
    latest = store.latest(origin_of(PARTNERSHIP, "accepted"))
    assert latest is not None and latest[0].size == 10  # "10" sorts before "9" as text


def test_damaged_foreign_and_unsigned_files_are_findings(tmp_path: Path) -> None:
    key, store = Ed25519PrivateKey.generate(), CheckpointStore(tmp_path / "kept")
    make_checkpoints(trees(4, 1), PARTNERSHIP, key, store)
    files = sorted((tmp_path / "kept").rglob("*.checkpoint"))
    damaged = tmp_path / "damaged.checkpoint"
    damaged.write_bytes(b"\xff\xfe not a note")
    stranger = Ed25519PrivateKey.generate()
    foreign = tmp_path / "foreign"
    make_checkpoints(trees(4, 1), "partnership/other", stranger, CheckpointStore(foreign))
    paths = [*files, damaged, *sorted(foreign.rglob("*.checkpoint"))]
    found = check_checkpoints(paths, trees(4, 1), PARTNERSHIP, log_keys(key)).findings
    assert [f.detail.split(": ", 1)[1] for f in found] == [
        "not a readable checkpoint ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)",
        *["not signed by a partnership/log key registered in this ledger or given with --log-key "
          "(was the key's registration deleted?)"] * 2,
    ]  # fmt: skip
    files[0].write_text("edited")  # a kept file someone changed: the log will not sign past it
    with pytest.raises(NoteError):
        make_checkpoints(trees(5, 1), PARTNERSHIP, key, store)


def test_the_quorum_counts_distinct_valid_witnesses(tmp_path: Path) -> None:
    key, store = Ed25519PrivateKey.generate(), CheckpointStore(tmp_path)
    make_checkpoints(trees(3, 0), PARTNERSHIP, key, store)
    path = store.directory / "partnership~test~accepted" / "3.checkpoint"
    witnesses = [Ed25519PrivateKey.generate() for _ in range(3)]
    names = ["a.example/w", "b.example/w", "c.example/w"]
    note = parse_note(path.read_text())
    for name, witness in zip(names[:2], witnesses[:2], strict=True):
        note = note.with_signature(cosign(note, name, witness, 1_700_000_000))
    path.write_text(str(note))
    vkeys = [VerifierKey(n, COSIGNATURE_V1, w.public_key()) for n, w in zip(names, witnesses, strict=True)]
    assert check_checkpoints([path], trees(3, 0), PARTNERSHIP, log_keys(key), vkeys, quorum=2).findings == []
    (short,) = check_checkpoints([path], trees(3, 0), PARTNERSHIP, log_keys(key), vkeys, quorum=3).findings
    assert "2 valid witness cosignature(s), 3 required" in short.detail
