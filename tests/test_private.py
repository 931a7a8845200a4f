"""Issue 9 item 4: private by default. State directories 0700, databases (with their -wal and
-shm files) and keys 0600 whatever the umask; existing state open to other users is refused at
start with one line naming the file and the chmod that fixes it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.alerter.store import AlertStore
from ledger.keystore import Keystore
from ledger.private_files import NotPrivate
from ledger.store.ledger import Ledger
from producers.outbox import Outbox
from sgledger.settings import Settings
from tests.test_cli import sgledger


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most systems ship (022): files 0644 and directories 0755 unless we say."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
def test_state_created_by_the_stores_is_private(tmp_path: Path) -> None:
    settings = Settings.resolve(data_dir=tmp_path / "state")
    settings.ensure_data_dir()
    ledger = Ledger(settings.database_url)
    outbox = Outbox(settings.outbox_url)
    alerts = AlertStore(f"sqlite:///{tmp_path / 'state' / 'alerts' / 'alerts.sqlite'}")
    state = tmp_path / "state"
    try:
        keystore = Keystore(settings.keys_dir)
        keystore.init_root("partnership/test")
        keystore.create_agency_key("police/avon-somerset")
        ledger.count()  # opens it (WAL: -wal and -shm appear with the database's mode)
        outbox.head("police/avon-somerset")
        modes = {str(p.relative_to(state)): mode(p) for p in [state, *state.rglob("*")]}
    finally:
        ledger.engine.dispose()
        outbox.close()
        alerts.close()
    assert set(modes) >= {
        ".", "ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "outbox.sqlite",
        "outbox.sqlite-wal", "alerts", "alerts/alerts.sqlite", "keys", "keys/root.key",
        "keys/agencies", "keys/agencies/police~avon-somerset.key",
    }  # fmt: skip
    directories = {".", "keys", "keys/agencies", "alerts"}
    assert {name: oct(m) for name, m in modes.items() if name in directories and m != 0o700} == {}
    public = directories | {"keys/root.pub.json"}  # the root public key is for auditors
    assert {name: oct(m) for name, m in modes.items() if name not in public and m != 0o600} == {}


@pytest.mark.parametrize("name", ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-writers"])
def test_an_existing_database_open_to_others_is_refused(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).engine.dispose()
    (tmp_path / name).touch()
    os.chmod(tmp_path / name, 0o644)
    with pytest.raises(NotPrivate, match=rf"{name} is open to other local users \(mode 0644\).*chmod 600"):
        Ledger(url)


def test_a_key_open_to_others_is_refused_not_used(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path / "keys")
    keystore.create_agency_key("police/avon-somerset")
    os.chmod(keystore.agency_key_path("police/avon-somerset"), 0o640)
    with pytest.raises(NotPrivate, match=r"police~avon-somerset\.key is open to other local users"):
        keystore.agency_private_key("police/avon-somerset")


@pytest.mark.kafka
def test_the_cli_refuses_a_data_directory_open_to_others_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    result = sgledger(state, "child", "show", "C-1", ok=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {state} is open to other local users (mode 0755); it holds safeguarding records or "
        f"keys: `chmod 700 {state}` (and check who may have read it), then start again"
    ]
    assert list(state.iterdir()) == []


def test_doctor_reports_a_database_open_to_others_with_the_fix(tmp_path: Path) -> None:
    from tests.test_doctor import doctor

    Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}").engine.dispose()
    os.chmod(tmp_path / "ledger.sqlite", 0o644)
    code, checks = doctor(tmp_path, None)
    assert code == 1 and checks["database"]["status"] == "fail"
    assert checks["database"]["detail"].endswith("ledger.sqlite is open to other local users (mode 0644)")
    assert checks["database"]["fix"].startswith(f"`chmod 600 {tmp_path / 'ledger.sqlite'}`")


def test_keys_init_on_a_fresh_machine_makes_the_data_directory_private(tmp_path: Path) -> None:
    """The README's first step on a machine with the usual umask (022) and no data directory yet:
    the key store used to create DATA_DIR as a missing parent of DATA_DIR/keys with 0755, so
    `keys init` stopped half-way (root key made, service key not registered) and every later
    command refused the directory it had just made."""
    data = tmp_path / "new" / "sgledger"
    env = {**os.environ, "SGLEDGER_DATA_DIR": str(data)}
    run = [sys.executable, "-m", "sgledger"]
    with_umask = {"env": env, "capture_output": True, "text": True, "timeout": 120,
                  "preexec_fn": lambda: os.umask(0o022)}  # fmt: skip
    made = subprocess.run([*run, "keys", "init", "--partnership", "partnership/somerset"], **with_umask)
    assert made.returncode == 0, made.stderr
    assert {oct(mode(p)) for p in (tmp_path / "new", data, data / "keys")} == {oct(0o700)}
    added = subprocess.run([*run, "agency", "add", "police/avon-somerset"], **with_umask)
    assert added.returncode == 0, added.stderr
