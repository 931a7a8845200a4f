"""Tamper evidence that survives the database administrator, end to end through the command line
on a real SQLite ledger (a copy of the Child Charlie story): the partnership signs checkpoints of
both logs, an agency's witness cosigns them and keeps its copy, then someone with write access to
the database edits it the way issue 9 describes, and `audit verify --checkpoints` (or `--views`)
run against the witness's copy names what was done.

Each tamper test also runs plain `audit verify` first and asserts it does NOT see the tamper:
that is the gap these checks close, and it keeps the tests honest about what they prove.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from consumers.auditor.checkpoints import LOGS, checkpoint_files, log_trees, make_checkpoints
from consumers.auditor.verify import KeptCheckpoints, verify
from consumers.auditor.views import check_views
from consumers.projector.applier import Applier, Message
from ledger.checkpoint import origin_of
from ledger.checkpoint_store import CheckpointStore
from ledger.keystore import Keystore
from ledger.notes import ED25519, VerifierKey
from ledger.store.ledger import Ledger
from sgledger.cli import cli
from sgledger.cli.context import UserError
from tests.audit.conftest import Story
from tests.consumers.kafka_helpers import story
from transport.broker import free_port

CHILD = "C-CH-1"
PARTNERSHIP_DIR = "partnership~scenario"  # the story's partnership id, as a checkpoint folder name


@dataclass(frozen=True)
class Sealed:
    data: Path  # the partnership's data directory
    witness: Path  # the agency's witness directory
    witness_vkey: str

    @property
    def database(self) -> Path:
        return self.data / "ledger.sqlite"

    @property
    def cosigned(self) -> Path:
        return self.witness / "cosigned"


def sg(data: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(data), *args], input=stdin, catch_exceptions=False)


def cosign_latest(sealed: Sealed) -> None:
    """Witness the latest kept checkpoint of both logs, from the size the witness last saw."""
    logs = json.loads(sg(sealed.data, "witness", "show", "--dir", str(sealed.witness), "--json").output)
    for log in ("accepted", "quarantine"):
        old = next(v["size"] for k, v in logs["logs"].items() if k.endswith(f"/{log}"))
        request = sg(sealed.data, "audit", "witness-request", log, "--old", str(old))
        assert request.exit_code == 0, request.output
        cosigned = sg(sealed.data, "witness", "cosign", "--dir", str(sealed.witness), stdin=request.output)
        assert cosigned.exit_code == 0, cosigned.output


@pytest.fixture(scope="module")
def sealed_once(charlie: Story, tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    """Built once (a dozen commands, each starting the embedded broker); tests get copies."""
    tmp_path = tmp_path_factory.mktemp("sealed")
    data = tmp_path / "partnership"
    shutil.copytree(charlie.settings.data_dir, data)
    # Two messages the projector refuses, so the quarantine log has entries to lose.
    applier = Applier(
        Ledger(charlie.settings.database_url.replace(str(charlie.settings.data_dir), str(data))), charlie.root
    )
    applier.apply(
        [Message(b"not json", "safeguarding.incident/0/90"), Message(b"{}", "safeguarding.incident/0/91")]
    )
    assert sg(data, "agency", "add", "partnership/log").exit_code == 0
    for _ in range(3):  # reads (access events) after the log key's registration, then a tree head
        assert sg(data, "child", "show", CHILD).exit_code == 0
    assert sg(data, "audit", "tree-head").exit_code == 0
    signed = sg(data, "audit", "checkpoint", "--json")
    assert signed.exit_code == 0, signed.output
    assert {(s["origin"].rsplit("/", 1)[1], s["old_size"]) for s in json.loads(signed.output)["signed"]} == {
        ("accepted", 0),
        ("quarantine", 0),
    }
    witness = tmp_path / "gp-witness"
    vkey = sg(data, "witness", "init", "--dir", str(witness), "--name", "gp.L85001.example/witness").output
    log_keys = sg(data, "audit", "log-keys").output.split()
    assert sg(data, "witness", "trust", "--dir", str(witness), *log_keys).exit_code == 0
    result = Sealed(data, witness, vkey.strip())
    cosign_latest(result)
    return result


@pytest.fixture
def sealed(sealed_once: Sealed, tmp_path: Path) -> Sealed:
    """A private copy of the partnership's data and of the agency's witness: tests tamper."""
    shutil.copytree(sealed_once.data, tmp_path / "partnership")
    shutil.copytree(sealed_once.witness, tmp_path / "gp-witness")
    return Sealed(tmp_path / "partnership", tmp_path / "gp-witness", sealed_once.witness_vkey)


def run_verify(sealed: Sealed, *extra: str) -> tuple[int, dict[str, object]]:
    result = sg(sealed.data, "audit", "verify", "--json", "--workers", "1", *extra)
    return result.exit_code, json.loads(result.output)


def with_checkpoints(sealed: Sealed) -> tuple[int, dict[str, object]]:
    return run_verify(sealed, "--checkpoints", str(sealed.cosigned), "--witness", sealed.witness_vkey)


def details(report: dict[str, object]) -> list[str]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f"[{f['check']}] {f['detail']}" for f in findings]


def test_a_clean_ledger_verifies_clean_against_the_witness_copy_and_keeps_its_cosignatures(
    sealed: Sealed,
) -> None:
    code, report = with_checkpoints(sealed)
    assert code == 0, details(report)
    assert report["checkpoints"] == 2
    kept = sorted(sealed.cosigned.rglob("*.checkpoint"))
    assert [p.parent.name.rsplit("~", 1)[1] for p in kept] == ["accepted", "quarantine"]
    # The agency sends its copies back; the partnership's kept files then carry the cosignature.
    assert sg(sealed.data, "audit", "cosigned", *map(str, kept)).exit_code == 0
    code, report = run_verify(
        sealed, "--checkpoints", str(sealed.data / "checkpoints"), "--witness", sealed.witness_vkey
    )
    assert code == 0, details(report)
    # A "cosigned copy" of a different checkpoint text is not merged.
    other = sealed.data.parent / "other.checkpoint"
    lines = kept[0].read_text().split("\n")
    lines[2] = ("B" if lines[2][0] == "A" else "A") + lines[2][1:]  # another root, same size
    other.write_text("\n".join(lines))
    refused = sg(sealed.data, "audit", "cosigned", str(other))
    assert refused.exit_code == 1 and "cosigned text differs from ours" in refused.output
    # The ledger grows (a read is an access event); a new checkpoint extends the old one and the
    # witness follows it with a consistency proof from the size it cosigned.
    assert sg(sealed.data, "child", "show", CHILD).exit_code == 0
    assert sg(sealed.data, "audit", "checkpoint").exit_code == 0
    stale = sg(sealed.data, "audit", "witness-request", "accepted", "--old", "0").output
    again = sg(sealed.data, "witness", "cosign", "--dir", str(sealed.witness), stdin=stale)
    assert again.exit_code == 1
    assert "refused (409): proof is from size 0 but this witness last cosigned size" in again.output
    cosign_latest(sealed)
    code, report = with_checkpoints(sealed)
    assert code == 0 and report["checkpoints"] == 3, details(report)


def test_a_deleted_tree_head_is_detected(sealed: Sealed) -> None:
    with sqlite3.connect(sealed.database) as db:
        (position,) = db.execute(
            "SELECT position FROM ledger_accepted WHERE type = 'ledger.tree-head'"
        ).fetchone()
        db.execute("DELETE FROM ledger_events WHERE id = ?", (position,))
        db.execute("DELETE FROM ledger_accepted WHERE position = ?", (position,))
    assert run_verify(sealed)[0] == 0  # the gap: without kept checkpoints nothing is wrong
    code, report = with_checkpoints(sealed)
    assert code == 1
    assert any(
        "/accepted size" in d and "entries were deleted" in d and d.startswith("[checkpoint]")
        for d in details(report)
    ), details(report)


def test_a_truncated_tail_is_detected(sealed: Sealed) -> None:
    with sqlite3.connect(sealed.database) as db:
        (last,) = db.execute("SELECT max(position) FROM ledger_accepted").fetchone()
        db.execute("DELETE FROM ledger_events WHERE id > ?", (last - 3,))
        db.execute("DELETE FROM ledger_accepted WHERE position > ?", (last - 3,))
    assert run_verify(sealed)[0] == 0
    code, report = with_checkpoints(sealed)
    assert code == 1
    (finding,) = details(report)
    assert f"size {last}" in finding and f"now holds {last - 3}" in finding, finding


def test_a_truncation_that_takes_the_log_key_registration_still_fails_and_a_held_key_verifies(
    sealed: Sealed,
) -> None:
    log_keys = sg(sealed.data, "audit", "log-keys").output.split()
    with sqlite3.connect(sealed.database) as db:
        (registration,) = db.execute(
            "SELECT position FROM ledger_accepted WHERE type = 'agency.key.registered' "
            "AND envelope LIKE '%partnership/log%'"
        ).fetchone()
        db.execute("DELETE FROM ledger_events WHERE id >= ?", (registration,))
        db.execute("DELETE FROM ledger_accepted WHERE position >= ?", (registration,))
    assert run_verify(sealed)[0] == 0
    code, report = with_checkpoints(sealed)
    assert code == 1
    assert details(report) and all("registration deleted?" in d for d in details(report))
    code, report = run_verify(
        sealed,
        "--checkpoints",
        str(sealed.cosigned),
        "--witness",
        sealed.witness_vkey,
        *(a for k in log_keys for a in ("--log-key", k)),
    )
    assert code == 1
    assert any("/accepted size" in d and "entries were deleted" in d for d in details(report))


def test_a_deleted_quarantine_entry_is_detected(sealed: Sealed) -> None:
    with sqlite3.connect(sealed.database) as db:
        assert db.execute("SELECT count(*) FROM ledger_quarantine").fetchone() == (2,)
        db.execute("DELETE FROM ledger_quarantine WHERE id = (SELECT min(id) FROM ledger_quarantine)")
    assert run_verify(sealed)[0] == 0
    code, report = with_checkpoints(sealed)
    assert code == 1
    (finding,) = details(report)
    assert "/quarantine size 2" in finding and "quarantine entries" in finding, finding


def test_an_edited_quarantine_entry_is_a_rewritten_history(sealed: Sealed) -> None:
    with sqlite3.connect(sealed.database) as db:
        db.execute(
            "UPDATE ledger_quarantine SET raw = CAST('{\"x\": 1}' AS BLOB) WHERE raw = CAST('{}' AS BLOB)"
        )
    (finding,) = details(with_checkpoints(sealed)[1])
    assert "history was rewritten" in finding, finding


def test_a_reordered_history_is_detected(sealed: Sealed) -> None:
    """Swap two accepted events' positions in both tables: every row still verifies alone."""
    with sqlite3.connect(sealed.database) as db:
        a, b = db.execute(
            "SELECT position FROM ledger_accepted WHERE type = 'access.recorded' OR source = "
            "'partnership/scenario' ORDER BY position LIMIT 2"
        ).fetchall()
        for table, column in (("ledger_events", "id"), ("ledger_accepted", "position")):
            db.execute(f"UPDATE {table} SET {column} = -1 WHERE {column} = ?", a)
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (a[0], b[0]))
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = -1", b)
    code, report = with_checkpoints(sealed)
    assert code == 1
    assert any("history was rewritten" in d for d in details(report)), details(report)


def test_the_log_refuses_to_sign_a_shorter_history(sealed: Sealed) -> None:
    with sqlite3.connect(sealed.database) as db:
        db.execute("DELETE FROM ledger_quarantine")
    with pytest.raises(UserError, match="refusing to sign a different history"):
        sg(sealed.data, "audit", "checkpoint")


def test_checkpoints_need_the_witnesses_named(sealed: Sealed, tmp_path: Path) -> None:
    other = sg(
        sealed.data, "witness", "init", "--dir", str(tmp_path / "w2"), "--name", "school.example/w"
    ).output
    code, report = run_verify(sealed, "--checkpoints", str(sealed.cosigned), "--witness", other.strip())
    assert code == 1
    assert all("0 valid witness cosignature(s), 1 required" in d for d in details(report)), details(report)
    # A copy whose cosignature was tampered with is reported, not silently counted.
    path = next(sealed.cosigned.rglob("*.checkpoint"))
    text = path.read_text()
    last = text.rstrip("\n").rsplit(" ", 1)[1]
    path.write_text(text.replace(last, last[:20] + ("A" if last[20] != "A" else "B") + last[21:]))
    (finding,) = details(with_checkpoints(sealed)[1])
    assert "cosignature of gp.L85001.example/witness does not verify" in finding, finding


def test_an_edited_flag_row_and_a_deleted_view_row_are_reported_by_views(
    sealed: Sealed, tmp_path: Path
) -> None:
    code, report = run_verify(sealed, "--views", "--reason", "test")
    assert code == 0, details(report)  # no false difference, not even for its own access record
    with sqlite3.connect(sealed.database) as db:
        (flag,) = db.execute("SELECT id FROM flags WHERE status = 'open' ORDER BY id LIMIT 1").fetchone()
        db.execute("UPDATE flags SET status = 'dismissed' WHERE id = ?", (flag,))
        (child, person) = db.execute(
            "SELECT child, person FROM view_people ORDER BY person LIMIT 1"
        ).fetchone()
        db.execute("DELETE FROM view_people WHERE child = ? AND person = ?", (child, person))
    assert run_verify(sealed)[0] == 0
    code, report = run_verify(sealed, "--views")
    assert code == 1
    assert sorted(details(report)) == sorted(
        [
            f"[views] flags {flag}: status is 'dismissed' where the ledger gives 'open': the row was edited",
            next(
                d for d in details(report) if d.startswith(f"[views] view_people {child}/{person}: missing")
            ),
        ]
    )
    # A child whose deadline passed since the projector last swept may differ for a good reason:
    # the finding says so instead of only calling it an edit. (Through the library: any command
    # that records an access runs the projector, whose sweep re-evaluates that child first.)
    with sqlite3.connect(sealed.database) as db:
        db.execute("UPDATE flags SET status = 'dismissed' WHERE id = ?", (flag,))
        db.execute(
            "UPDATE view_children SET next_due = '2020-01-01T00:00:00.000000Z' WHERE child = ?", (child,)
        )
    url = f"sqlite:///{sealed.database}"
    root = Keystore(sealed.data / "keys").root_info().root_key()
    found = [f.detail for f in check_views(Ledger(url), root, url, tmp_path)]
    (overdue,) = [d for d in found if d.startswith(f"flags {flag}")]
    assert overdue.endswith("run the projector and verify again)"), found


@pytest.mark.postgres
def test_on_postgresql_a_truncated_tail_and_a_deleted_quarantine_entry_are_found(
    postgres_db: str, keystore: Keystore, tmp_path: Path
) -> None:
    """The same checks through the library on PostgreSQL, where positions come from a sequence."""
    root = keystore.root_info().root_key()
    ledger = Ledger(postgres_db)
    messages = [Message(json.dumps(e).encode()) for e in story(keystore, children=2, incidents_per_child=2)]
    Applier(ledger, root).apply([*messages, Message(b"garbage", "safeguarding.incident/0/7")])
    log_key = Ed25519PrivateKey.generate()
    store = CheckpointStore(tmp_path / "kept")
    make_checkpoints(log_trees(ledger), root.partnership, log_key, store)
    keys = [VerifierKey(origin_of(root.partnership, log), ED25519, log_key.public_key()) for log in LOGS]
    kept = KeptCheckpoints(checkpoint_files(store.directory), log_keys=keys)
    assert verify(ledger, root, workers=1, checkpoints=kept).ok
    with ledger.engine.begin() as db:
        last = db.execute(text("SELECT max(position) FROM ledger_accepted")).scalar_one()
        db.execute(text("DELETE FROM ledger_events WHERE id = :p"), {"p": last})
        db.execute(text("DELETE FROM ledger_accepted WHERE position = :p"), {"p": last})
        db.execute(text("DELETE FROM ledger_quarantine"))
    assert verify(ledger, root, workers=1).ok
    findings = [f.detail for f in verify(ledger, root, workers=1, checkpoints=kept).findings]
    assert len(findings) == 2 and all("entries were deleted" in f for f in findings), findings


@pytest.mark.slow  # two real processes: ~16 s on this shared machine
def test_the_checkpoint_service_signs_what_grows_serves_health_and_stops_on_a_shrunk_log(
    sealed: Sealed,
) -> None:
    """`audit checkpoint --every` as a real process: a new quarantine entry gets a new signed
    checkpoint within a round; SIGTERM ends it cleanly; started on a database that lost an entry
    it refuses (exit 2) instead of signing the shorter history."""
    port = free_port()
    command = [sys.executable, "-m", "sgledger", "--data-dir", str(sealed.data), "audit", "checkpoint"]
    service = subprocess.Popen(
        [*command, "--every", "0.3", "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _ready(port):
            assert service.poll() is None and time.monotonic() < deadline, "service did not become ready"
            time.sleep(0.2)
        ledger = Ledger(f"sqlite:///{sealed.database}")
        Applier(ledger, Keystore(sealed.data / "keys").root_info().root_key()).apply(
            [Message(b"[]", "safeguarding.incident/0/92")]
        )
        newest = sealed.data / "checkpoints" / f"{PARTNERSHIP_DIR}~quarantine" / "3.checkpoint"
        while not newest.exists():
            assert time.monotonic() < deadline, "no checkpoint of the grown quarantine log"
            time.sleep(0.2)
    finally:
        service.send_signal(signal.SIGTERM)
        output, _ = service.communicate(timeout=30)
    assert service.returncode == 0, output
    assert "signed partnership/scenario/quarantine size 3" in output
    with sqlite3.connect(sealed.database) as db:
        db.execute("DELETE FROM ledger_quarantine WHERE id = (SELECT max(id) FROM ledger_quarantine)")
    refused = subprocess.run([*command, "--every", "0.3"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to sign a different history" in refused.stderr


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def signed_roots(sealed: Sealed) -> dict[str, tuple[int, bytes]]:
    store = CheckpointStore(sealed.data / "checkpoints")
    partnership = Keystore(sealed.data / "keys").root_info().root_key().partnership
    kept = {log: store.latest(origin_of(partnership, log)) for log in LOGS}
    return {log: (c[0].size, c[0].root_hash) for log, c in kept.items() if c is not None}


def edit(sealed: Sealed, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the first stored event that holds it."""
    with sqlite3.connect(sealed.database) as db:
        (position, state) = db.execute(
            "SELECT id, state FROM ledger_events WHERE instr(state, ?) ORDER BY id LIMIT 1", (old.encode(),)
        ).fetchone()
        db.execute(
            "UPDATE ledger_events SET state = ? WHERE id = ?",
            (state.replace(old.encode(), new.encode()), position),
        )


def test_a_round_grows_each_log_from_its_frontier_to_the_tree_a_full_rebuild_gives(sealed: Sealed) -> None:
    """Issue 13: `audit checkpoint` reads only what came after the last checkpoint. Its new
    checkpoints equal the trees built from every entry, and an early row edited in place is not
    re-read (it is signed over, as the decision in docs/checkpoints.md says, and `--rebuild`
    refuses it)."""
    ledger = Ledger(f"sqlite:///{sealed.database}")
    for _ in range(3):
        assert sg(sealed.data, "child", "show", CHILD).exit_code == 0  # access events: the log grows
    Applier(ledger, Keystore(sealed.data / "keys").root_info().root_key()).apply(
        [Message(b"[1]", "safeguarding.incident/0/95")]
    )
    edit(sealed, "C-CH-1", "C-CH-9")  # an early event edited in place (it still decodes)
    signed = sg(sealed.data, "audit", "checkpoint", "--json")
    assert signed.exit_code == 0, signed.output
    grown = {s["origin"].rsplit("/", 1)[1]: s for s in json.loads(signed.output)["signed"]}
    assert grown["accepted"]["size"] > grown["accepted"]["old_size"] > 0
    assert grown["quarantine"]["size"] == grown["quarantine"]["old_size"] + 1
    edit(sealed, "C-CH-9", "C-CH-1")  # undone: the history the checkpoints were signed over
    whole = log_trees(ledger)
    assert signed_roots(sealed) == {log: (len(tree), tree.root()) for log, tree in whole.items()}
    edit(sealed, "C-CH-1", "C-CH-9")
    assert sg(sealed.data, "audit", "checkpoint").output == "no log grew since the last checkpoint\n"
    with pytest.raises(UserError, match="refusing to sign a different history"):
        sg(sealed.data, "audit", "checkpoint", "--rebuild")
    code, report = with_checkpoints(sealed)
    assert code == 1 and any("history was rewritten" in d for d in details(report)), details(report)


def test_a_missing_or_altered_frontier_means_reading_the_log_again(sealed: Sealed) -> None:
    folder = sealed.data / "checkpoints" / f"{PARTNERSHIP_DIR}~accepted"
    frontier = json.loads((folder / "frontier.json").read_text())
    (folder / "frontier.json").unlink()
    assert sg(sealed.data, "child", "show", CHILD).exit_code == 0
    assert sg(sealed.data, "audit", "checkpoint").exit_code == 0
    assert json.loads((folder / "frontier.json").read_text())["size"] > frontier["size"]  # kept again
    kept = json.loads((folder / "frontier.json").read_text())
    kept["hashes"][0] = "00" * 32  # a frontier that does not give the checkpoint's root is not used
    (folder / "frontier.json").write_text(json.dumps(kept))
    assert sg(sealed.data, "child", "show", CHILD).exit_code == 0
    assert sg(sealed.data, "audit", "checkpoint").exit_code == 0
    whole = log_trees(Ledger(f"sqlite:///{sealed.database}"))
    assert signed_roots(sealed) == {log: (len(tree), tree.root()) for log, tree in whole.items()}
