"""Checkpoints and cosignatures over the real broker: the tree-head service publishes each new
checkpoint with its consistency proof, two agencies' witnesses (`witness run`'s loop) cosign
them in order, the service folds their copies back into its kept files; a forked checkpoint
signed with the real log key is refused by both and kept by each as evidence."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.auditor.checkpoints import make_checkpoints
from consumers.auditor.witnessing import collect_cosignatures, publish_requests
from ledger.checkpoint import AddCheckpoint, Checkpoint, origin_of
from ledger.checkpoint_store import CheckpointStore
from ledger.merkle import MerkleTree
from ledger.notes import ED25519, VerifierKey, parse_note, sign_note, verify_cosignature, verify_note
from producers.witness import Witness
from producers.witness_service import run_witness
from tests.audit.conftest import Story
from tests.audit.test_checkpoints import sg
from transport.kafka import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # six witness runs, each a group join
PARTNERSHIP = "partnership/test"


def test_witnesses_cosign_over_kafka_and_refuse_a_fork(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    trees = {"accepted": MerkleTree(b"e%d" % i for i in range(7)), "quarantine": MerkleTree([b"q0"])}
    store = CheckpointStore(tmp_path / "kept")
    witnesses = [
        Witness.create(tmp_path / "gp", "gp.L85001.example/witness"),
        Witness.create(tmp_path / "school", "school.100001.example/witness"),
    ]
    for witness in witnesses:
        for log in trees:
            witness.trust(VerifierKey(origin_of(PARTNERSHIP, log), ED25519, key.public_key()))

    def witness_round() -> list[list[str]]:
        never = threading.Event()
        return [run_witness(kafka_settings, w, never, idle_exit_s=3).cosigned for w in witnesses]

    publish_requests(kafka_settings, make_checkpoints(trees, PARTNERSHIP, key, store))
    assert [sorted(c) for c in witness_round()] == [
        [f"{PARTNERSHIP}/accepted 7", f"{PARTNERSHIP}/quarantine 1"]
    ] * 2
    trees["accepted"].append(b"e7")
    trees["accepted"].append(b"e8")
    publish_requests(kafka_settings, make_checkpoints(trees, PARTNERSHIP, key, store))
    assert witness_round() == [[f"{PARTNERSHIP}/accepted 9"]] * 2  # from size 7, in order

    assert collect_cosignatures(kafka_settings, store) == 6  # 3 checkpoints x 2 witnesses
    checkpoint, note = store.latest(origin_of(PARTNERSHIP, "accepted")) or pytest.fail("none kept")
    assert checkpoint.size == 9
    verify_note(note, VerifierKey(checkpoint.origin, ED25519, key.public_key()))
    for witness in witnesses:
        verify_cosignature(note, witness.vkey)

    fork = MerkleTree(b"forged%d" % i for i in range(12))
    forged = Checkpoint(origin_of(PARTNERSHIP, "accepted"), 12, fork.root()).note()

    request = AddCheckpoint.make(
        9, fork.consistency_proof(9), sign_note(forged, forged.text.split("\n")[0], key)
    )
    publish_requests(kafka_settings, [request])
    never = threading.Event()
    for witness in witnesses:
        stats = run_witness(kafka_settings, witness, never, idle_exit_s=3)
        assert stats.cosigned == [] and len(stats.refused) == 1
        assert "422" in stats.refused[0] and "history was rewritten" in stats.refused[0]
        (evidence,) = (witness.directory / "refused").iterdir()
        assert parse_note(evidence.read_text().split("\n\n", 1)[1]).text == forged.text
        assert witness.logs()[origin_of(PARTNERSHIP, "accepted")]["size"] == 9


def test_the_commands_exchange_checkpoints_over_kafka(
    charlie: Story, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """`audit checkpoint` publishes, `witness run --once` cosigns, the next `audit checkpoint`
    collects: the partnership's kept file then carries the witness's cosignature."""
    data = tmp_path / "partnership"
    shutil.copytree(charlie.settings.data_dir, data)
    kafka = [
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--topic-prefix",
        kafka_settings.topic_prefix,
    ]
    assert sg(data, "agency", "add", "partnership/log").exit_code == 0
    witness = tmp_path / "witness"
    vkey = sg(data, "witness", "init", "--dir", str(witness), "--name", "gp.example/w").output.strip()
    assert (
        sg(
            data, "witness", "trust", "--dir", str(witness), *sg(data, "audit", "log-keys").output.split()
        ).exit_code
        == 0
    )
    first = sg(data, *kafka, "audit", "checkpoint")
    assert first.exit_code == 0 and first.output.count("signed ") == 2, first.output
    ran = sg(data, *kafka, "witness", "run", "--dir", str(witness), "--once")
    assert ran.exit_code == 0 and ran.output.count("cosigned ") == 2, ran.output
    collected = sg(data, *kafka, "audit", "checkpoint")
    assert "no log grew" in collected.output and "added 2 witness cosignature(s)" in collected.output
    result = sg(
        data, "audit", "verify", "--json", "--checkpoints", str(data / "checkpoints"), "--witness", vkey
    )
    assert result.exit_code == 0, result.output
