"""SQLite's write lock handed over in turn (ledger.store.turns), between real processes on a real
database file: a writer that wants the lock gets it at the next commit of a writer that takes it
again and again, and a writer that cannot get it still fails after the busy timeout."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError as PersistenceOperationalError

from ledger.store.ledger import Ledger

# Another process's writer that takes the write lock again as soon as it has committed, holding
# it 50 ms each time (as intake does with a batch verified ahead), for up to 20 s.
GREEDY_WRITER = textwrap.dedent(
    """
    import sys, time
    from ledger.store.ledger import Ledger
    ledger = Ledger(sys.argv[1])
    announced = False
    ends = time.monotonic() + 20
    while time.monotonic() < ends:
        with ledger.writer():
            if not announced:
                print("holding", flush=True)
                announced = True
            time.sleep(0.05)
    """
)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).engine.dispose()  # the schema, before two processes open it
    yield url


def greedy(url: str) -> subprocess.Popen[str]:
    writer = subprocess.Popen([sys.executable, "-c", GREEDY_WRITER, url], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "holding"
    return writer


def test_a_waiting_writer_gets_the_lock_when_the_holder_commits(url: str) -> None:
    """With SQLite's busy handler alone the waiting writer slept 25-100 ms between tries and the
    greedy writer, which re-takes the lock within a fraction of a millisecond, kept it for all
    its 20 s; in turn, it is this writer's after the current holder's 50 ms."""
    ledger = Ledger(url)
    writer = greedy(url)
    try:
        for _ in range(3):  # each time: the greedy writer has the lock, we wait our turn
            started = time.monotonic()
            with ledger.writer():
                waited = time.monotonic() - started
            assert waited < 2.0, f"waited {waited:.2f} s for a writer that holds the lock 50 ms at a time"
            time.sleep(0.1)  # the greedy writer takes the lock again
        assert ledger.write_lock_wait_s >= 0.01  # it did wait for the holder each time
        assert writer.poll() is None  # the greedy writer was still at it throughout
    finally:
        writer.kill()
        writer.wait()
        ledger.engine.dispose()


def test_a_writer_still_gives_up_after_the_busy_timeout(url: str) -> None:
    """A writer that does not take turns (here plain sqlite3) holds the lock: the writer waits
    for it as long as its busy timeout, then fails as SQLite does."""
    ledger = Ledger(url + "?timeout=0.5")
    ledger.count()  # its first transaction sets WAL mode (eventsourcing), which fails at once when locked
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        # as SQLAlchemy raises it, wrapped by the eventsourcing transaction it ends
        with pytest.raises(PersistenceOperationalError, match="database is locked"), ledger.writer():
            pass
        assert 0.45 < time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with ledger.writer():  # free again: the failed try left nothing behind
        pass
    ledger.engine.dispose()
