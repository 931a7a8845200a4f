"""`audit verify` on a generated history: clean, then tampered with directly in SQLite (one byte
of one stored event, one row deleted, two rows swapped), each reported with the event named."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.audit import generate_history
from consumers.auditor.checks import _registry_before, root_args
from consumers.auditor.verify import verify
from ledger.envelope import ChainSigner
from ledger.keyregistry import RootKey
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger

PARTNERSHIP = "partnership/test"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RootKey]:
    """2,000 events with a signed tree head every 500, generated once and copied per test."""
    path = tmp_path_factory.mktemp("history") / "ledger.db"
    root = Ed25519PrivateKey.generate()
    generate_history(Ledger(f"sqlite:///{path}"), root, PARTNERSHIP, 2000, children=40, head_every=500)
    return path, RootKey(PARTNERSHIP, root.public_key())


@pytest.fixture
def ledger_copy(history: tuple[Path, RootKey], tmp_path: Path) -> tuple[Path, Ledger, RootKey]:
    path, root = history
    copy = tmp_path / "ledger.db"
    copy.touch(mode=0o600)  # a ledger open to other users is refused (ledger.private_files)
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # the generator's writes may still sit in the WAL file
    return copy, Ledger(f"sqlite:///{copy}"), root


def row(db: Path, position: int) -> tuple[str, int, bytes]:
    with sqlite3.connect(db) as conn:
        originator, version, state = conn.execute(
            "SELECT originator_id, originator_version, state FROM ledger_events WHERE id = ?", (position,)
        ).fetchone()
    return originator, version, state


def event_id_at(db: Path, position: int) -> str:
    with sqlite3.connect(db) as conn:
        return str(
            conn.execute("SELECT event_id FROM ledger_accepted WHERE position = ?", (position,)).fetchone()[0]
        )


def test_a_generated_history_verifies_clean(ledger_copy: tuple[Path, Ledger, RootKey]) -> None:
    _, ledger, root = ledger_copy
    seen: list[tuple[int, int]] = []
    report = verify(ledger, root, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert report.ok, [str(f) for f in report.findings]
    assert report.events == 2000
    assert report.tree_heads == 3
    assert report.key_events == 5  # four agencies and the service key
    assert seen[-1] == (2000, 2000)


def test_one_changed_byte_is_reported_with_the_event_named(ledger_copy: tuple[Path, Ledger, RootKey]) -> None:
    db, ledger, root = ledger_copy
    _, _, state = row(db, 1234)
    at = state.index(b"INC-") + 4  # a digit of the incident reference: still valid JSON
    altered = state[:at] + bytes([state[at] ^ 1]) + state[at + 1 :]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ledger_events SET state = ? WHERE id = 1234", (altered,))
    named = event_id_at(db, 1234)
    report = verify(ledger, root, workers=2)
    assert not report.ok
    checks = {f.check for f in report.findings if f.event_id == named and f.position == 1234}
    assert {"signature", "index"} <= checks
    assert any(f.check == "chain" and "prevhash" in f.detail for f in report.findings)  # its successor
    assert any(f.check == "tree-head" for f in report.findings)  # the head after it no longer matches


def test_a_deleted_row_is_reported_with_the_event_named(ledger_copy: tuple[Path, Ledger, RootKey]) -> None:
    db, ledger, root = ledger_copy
    named = event_id_at(db, 777)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ledger_events WHERE id = 777")
    report = verify(ledger, root, workers=2)
    deleted = [f for f in report.findings if f.check == "storage"]
    assert [(f.event_id, f.position) for f in deleted] == [(named, 777)]
    assert "deleted" in deleted[0].detail
    assert any(f.check == "chain" and "missing" in f.detail for f in report.findings)
    assert any(f.check == "tree-head" for f in report.findings)


def test_two_swapped_rows_are_reported_with_both_events_named(
    ledger_copy: tuple[Path, Ledger, RootKey],
) -> None:
    db, ledger, root = ledger_copy
    first, second = row(db, 600), row(db, 900)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ledger_events SET originator_version = -1 WHERE id = 600")
        conn.execute(
            "UPDATE ledger_events SET originator_id = ?, originator_version = ?, state = ? WHERE id = 900",
            first,
        )
        conn.execute(
            "UPDATE ledger_events SET originator_id = ?, originator_version = ?, state = ? WHERE id = 600",
            second,
        )
    ids = {event_id_at(db, 600), event_id_at(db, 900)}
    report = verify(ledger, root, workers=2)
    swapped = [f for f in report.findings if f.check == "index"]
    assert {f.position for f in swapped} == {600, 900}
    assert {f.event_id for f in swapped} == ids
    assert all("swapped" in f.detail for f in swapped)
    assert any(f.check == "tree-head" for f in report.findings)


def test_an_index_that_hides_a_key_registration_is_reported(
    ledger_copy: tuple[Path, Ledger, RootKey],
) -> None:
    """The reading process decodes only the rows the index calls key events or tree heads (the
    others go to the workers undecoded); an index lying about a row's type must not pass."""
    db, ledger, root = ledger_copy
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ledger_accepted SET type = 'incident.reported' WHERE position = 1")
    named = event_id_at(db, 1)
    report = verify(ledger, root, workers=2)
    lies = [f for f in report.findings if f.check == "index" and f.position == 1]
    assert [f.event_id for f in lies] == [named]
    assert "type" in lies[0].detail


def test_an_index_copy_that_is_the_same_json_but_not_canonical_is_reported(
    ledger_copy: tuple[Path, Ledger, RootKey],
) -> None:
    """The index's ``envelope`` is the event's canonical text, the bytes the chain digest and the
    Merkle leaf are over: the audit compares it with the canonical form of the stored event byte
    for byte, so an equivalent but non-canonical text (members reordered, a space) is caught."""
    db, ledger, root = ledger_copy
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT envelope FROM ledger_accepted WHERE position = 1500").fetchone()
        members = json.loads(text)
        reordered = json.dumps(dict(reversed(members.items())), separators=(",", ":"), ensure_ascii=False)
        conn.execute("UPDATE ledger_accepted SET envelope = ? WHERE position = 1500", (reordered,))
        spaced = "UPDATE ledger_accepted SET envelope = replace(envelope, ',\"id\":', ', \"id\":')"
        conn.execute(spaced + " WHERE position = 1600")
    report = verify(ledger, root, workers=2)
    altered = [(f.check, f.position) for f in report.findings]
    assert altered == [("index", 1500), ("index", 1600)]
    assert all("differs from the index copy" in f.detail for f in report.findings)


def test_a_worker_folds_keys_on_from_its_last_chunk_and_afresh_for_an_earlier_one() -> None:
    root_key = Ed25519PrivateKey.generate()
    root = RootKey(PARTNERSHIP, root_key.public_key())
    signer = ChainSigner(PARTNERSHIP, root_key)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    kids, keys = [], []
    for position, agency in ((1, "police/a"), (5, "police/b"), (9, "police/c")):
        public = Ed25519PrivateKey.generate().public_key()
        kids.append(key_id(public))
        data = {"agency": agency, "kid": kids[-1], "public_key": public_key_text(public)}
        keys.append((position, signer.sign("agency.key.registered", data, subject=agency, at=at)))
    args = root_args(root)

    def known(run: str, position: int) -> list[bool]:
        registry, count = _registry_before(run, args, keys, position)
        assert count == sum(p < position for p, _ in keys)
        return [registry.get(kid) is not None for kid in kids]

    assert known("run-1", 6) == [True, True, False]
    assert known("run-1", 3) == [True, False, False]  # an earlier chunk: not the later keys
    assert known("run-1", 10) == [True, True, True]
    assert known("run-2", 2) == [True, False, False]  # another run starts afresh
