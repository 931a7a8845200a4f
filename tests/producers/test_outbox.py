"""The outbox keeps each agency's chain unforked, also with concurrent publishing processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from ledger.canonical import canonical_json, event_digest
from ledger.envelope import SignedEvent
from ledger.keystore import Keystore
from producers.gateway.tokens import TokenStore
from producers.outbox import (
    CHECKPOINT_ROWS,
    IDLE,
    INSERT_ROWS,
    LOOKUP,
    PAGE_BYTES,
    SAFETY_AUTOCHECKPOINT_PAGES,
    Outbox,
)
from producers.sdk import Draft, Prepared, Producer
from tests.ledger.factory import INCIDENT
from tests.producers.conftest import GP, POLICE


def assert_chain(outbox: Outbox, agency: str, length: int) -> None:
    """Sequences 1..length without gaps, each prevhash the digest of its predecessor, and the
    head pointing at the last event."""
    rows = outbox.events(agency)
    assert [r.sequence for r in rows] == list(range(1, length + 1))
    prevhash = ""
    for row in rows:
        event = Outbox.decode(row.payload)
        assert row.payload == canonical_json(event)
        assert (event["sequence"], event["prevhash"], event["source"]) == (
            row.sequence, prevhash, agency,
        )  # fmt: skip
        prevhash = event_digest(event)
    assert outbox.head(agency) == (length, prevhash)


def test_chain_per_agency_across_producer_instances(agencies: Keystore, outbox_url: str) -> None:
    outbox = Outbox(outbox_url)
    first = Producer(POLICE, agencies, outbox)
    second = Producer(POLICE, agencies, outbox_url)  # another engine on the same outbox
    gp = Producer(GP, agencies, outbox)
    for n in range(3):
        first.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": f"INC-{n}a"})
        second.publish("incident.reported", "C-2", {**INCIDENT, "incident_ref": f"INC-{n}b"})
        gp.publish("gp.registered", "C-1", {"person": "C-1", "practice": "L85001"})
    assert_chain(outbox, POLICE, 6)
    assert_chain(outbox, GP, 3)
    assert outbox.pending_count() == 9
    pending = outbox.pending()
    assert [(p.agency, p.sequence) for p in pending] == sorted((p.agency, p.sequence) for p in pending)
    second.outbox.close()
    outbox.close()


def _publish_many(keys_dir: str, outbox_url: str, worker: int, count: int, start: BarrierType) -> None:
    producer = Producer(POLICE, Keystore(Path(keys_dir)), outbox_url)
    start.wait(60)  # all processes publish at the same moment
    for n in range(count):
        producer.publish("incident.reported", f"C-{worker}", {**INCIDENT, "incident_ref": f"{worker}-{n}"})
    producer.outbox.close()


def test_two_processes_publishing_for_one_agency_never_fork(agencies: Keystore, outbox_url: str) -> None:
    Outbox(outbox_url).close()  # create the tables before the race
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [
        context.Process(target=_publish_many, args=(str(agencies.directory), outbox_url, w, 30, start))
        for w in range(3)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    outbox = Outbox(outbox_url)
    assert_chain(outbox, POLICE, 90)
    outbox.close()


def test_mark_sent_and_unsent(agencies: Keystore, outbox_url: str) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    for n in range(4):
        producer.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": f"INC-{n}"})
    outbox = producer.outbox
    outbox.mark_sent([(p.id, "t.intake", 0, n) for n, p in enumerate(outbox.pending())])
    assert outbox.pending_count() == 0
    assert [(r.topic, r.kafka_partition, r.kafka_offset) for r in outbox.events(POLICE)] == [
        ("t.intake", 0, n) for n in range(4)
    ]
    assert all(r.sent_at is not None for r in outbox.events(POLICE))
    ids = [r.event_id for r in outbox.events(POLICE)]
    assert outbox.sent_event_ids() == set(ids)
    assert outbox.mark_unsent(agency=POLICE, from_sequence=3) == 2
    assert [p.sequence for p in outbox.pending()] == [3, 4]
    assert outbox.mark_unsent(agency=GP) == 0
    assert outbox.sent_event_ids() == set(ids[:2])
    assert outbox.mark_unsent([ids[0], "not-in-the-outbox"]) == 1
    assert [p.event_id for p in outbox.pending()] == [ids[0], ids[2], ids[3]]
    outbox.close()


def test_sqlite_outbox_is_durable(tmp_path: Path) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path / 'o.sqlite'}")
    with outbox.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    outbox.close()


def test_a_new_sqlite_outbox_has_16_kib_pages_and_an_older_one_keeps_its_own(
    agencies: Keystore, tmp_path: Path
) -> None:
    """New outbox files get ``PAGE_BYTES`` pages (fewer log frames per commit, issue 11), also
    when the gateway's token store made the file; a
    file made before with SQLite's 4 KiB keeps them (SQLite cannot change a WAL database's
    page size in place) and appends, reads and reopens as before."""
    new = Outbox(f"sqlite:///{tmp_path / 'new.sqlite'}")
    with new.engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == PAGE_BYTES == 16_384
    new.close()
    # ``gateway token create`` before the gateway's first start makes the file: the same pages
    tokens_first = f"sqlite:///{tmp_path / 'tokens-first.sqlite'}"
    TokenStore(tokens_first).close()
    assert stat.S_IMODE((tmp_path / "tokens-first.sqlite").stat().st_mode) == 0o600
    gateway_outbox = Outbox(tokens_first)
    with gateway_outbox.engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == PAGE_BYTES
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    gateway_outbox.close()
    older = tmp_path / "older.sqlite"
    with sqlite3.connect(older) as made_before:  # as an outbox of an earlier release was made
        made_before.execute("PRAGMA page_size=4096")
        made_before.execute("PRAGMA journal_mode=WAL")
        made_before.execute("CREATE TABLE earlier (x)")
    made_before.close()
    older.chmod(0o600)
    outbox = Outbox(f"sqlite:///{older}")
    producer = Producer(POLICE, agencies, outbox)
    ids = [
        producer.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": f"INC-{n}"})["id"]
        for n in range(3)
    ]
    with outbox.engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == 4096
    outbox.close()
    reopened = Outbox(f"sqlite:///{older}")
    assert [p.event_id for p in reopened.pending()] == ids
    reopened.close()


def test_a_service_outbox_checkpoints_its_log_in_a_thread_of_its_own(
    agencies: Keystore, tmp_path: Path
) -> None:
    """``checkpoint_in_background`` (the gateway's outbox): the appending connections leave the
    write-ahead log to the checkpointing thread (their own limit is only a safety net), which
    is poked once per ``CHECKPOINT_ROWS`` rows, not per commit, moves every page into the
    database file while nothing is appending, loses nothing, and stops with the outbox."""
    database = tmp_path / "o.sqlite"
    outbox = Outbox(f"sqlite:///{database}", checkpoint_in_background=True)
    producer = Producer(POLICE, agencies, outbox)
    with outbox.engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == SAFETY_AUTOCHECKPOINT_PAGES
    checkpointer = outbox._checkpointer
    assert checkpointer is not None
    producer.append_prepared(_prepared(producer, 10))
    time.sleep(0.2)
    assert checkpointer.checkpoints == 0  # a few rows: no checkpoint (no sync of the file) yet
    events = producer.append_prepared(_prepared(producer, CHECKPOINT_ROWS))
    deadline = time.monotonic() + 30
    while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpointer.checkpoints == 1
    reader = sqlite3.connect(database)
    busy, logged, moved = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    reader.close()
    assert busy == 0 and logged == moved > 0  # every page of the log is in the database file
    assert_chain(outbox, POLICE, CHECKPOINT_ROWS + 10)
    assert [r.payload for r in outbox.events(POLICE)[10:]] == [e.payload for e in events]
    outbox.close()
    assert not checkpointer._thread.is_alive()


def test_the_relay_reads_pending_rows_while_a_publisher_holds_the_write_lock(
    agencies: Keystore, outbox_url: str
) -> None:
    """A publisher holds the outbox's write lock for its whole batch (it signs inside the
    transaction); the relay's look for pending rows must not queue behind it (issue 13: it did,
    with BEGIN IMMEDIATE for every read, and the publishers queued behind the relay's looks)."""
    relay_side = Outbox(outbox_url, busy_timeout_s=1.0)
    assert not relay_side.has_pending()
    first = Producer(POLICE, agencies, outbox_url).publish("incident.reported", "C-1", INCIDENT)
    publisher = Outbox(outbox_url)
    with publisher._transaction() as session:  # a publisher's transaction, still open
        session.execute(text("UPDATE outbox_heads SET last_sequence = last_sequence"))
        assert [row.event_id for row in relay_side.pending()] == [first["id"]]
        assert relay_side.pending_count() == 1
        assert relay_side.has_pending()
        assert relay_side.head(POLICE)[0] == 1
    relay_side.mark_sent([(relay_side.pending()[0].id, "t", 0, 0)])
    assert not relay_side.has_pending()


def _prepared(producer: Producer, count: int) -> list[Prepared]:
    drafts = [
        Draft("incident.reported", f"C-{n % 7}", {**INCIDENT, "incident_ref": f"INC-{n}"})
        for n in range(count)
    ]
    prepared = [producer.prepare(draft)[0] for draft in drafts]
    assert all(p is not None for p in prepared)
    return [p for p in prepared if p is not None]


def test_a_long_append_inserts_every_row_once_in_chain_order(agencies: Keystore, outbox_url: str) -> None:
    """Rows go in ``INSERT_ROWS`` at a time while the next are signed: every row is stored once,
    inserted in chain order (the row ids follow the sequences), with the bytes the append
    returned."""
    producer = Producer(POLICE, agencies, outbox_url)
    count = 3 * INSERT_ROWS + 17
    events = producer.append_prepared(_prepared(producer, count))
    assert_chain(producer.outbox, POLICE, count)
    rows = producer.outbox.events(POLICE)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.payload for r in rows] == [e.payload for e in events]
    assert [r.event_id for r in rows] == [e.event_id for e in events]
    producer.outbox.close()


def test_an_insert_that_fails_after_others_went_in_stores_nothing(
    agencies: Keystore, outbox_url: str
) -> None:
    """An event id used twice in one append (a draft sent twice without its id: a bug, never a
    retry) is refused by the table when its chunk is inserted, after earlier chunks went in:
    the error reaches the caller and the whole append is rolled back. Then an entry stream that
    fails after two chunks were inserted: the same."""
    producer = Producer(POLICE, agencies, outbox_url)
    prepared = _prepared(producer, 2 * INSERT_ROWS + 40)
    prepared[INSERT_ROWS + 30] = prepared[3]  # in the second chunk
    with pytest.raises(IntegrityError):
        producer.append_prepared(prepared)
    assert producer.outbox.events(POLICE) == [] and producer.outbox.head(POLICE) == (0, "")

    def failing() -> Iterator[Prepared]:
        yield from _prepared(producer, 2 * INSERT_ROWS + 1)
        raise RuntimeError("the draft worker stopped")

    with pytest.raises(RuntimeError, match="worker stopped"):
        producer.append_prepared(failing())
    assert producer.outbox.events(POLICE) == [] and producer.outbox.head(POLICE) == (0, "")
    producer.append_prepared(_prepared(producer, INSERT_ROWS + 1))
    assert_chain(producer.outbox, POLICE, INSERT_ROWS + 1)
    producer.outbox.close()


@pytest.mark.parametrize(
    "idle_after",
    [
        pytest.param((0, 8, 18, 18, 30), id="idle-first-and-twice-in-a-row"),
        pytest.param((INSERT_ROWS - 1, INSERT_ROWS + 3, LOOKUP + 7), id="around-insert-rows-and-lookup"),
        pytest.param((LOOKUP + 60,), id="idle-last"),
    ],
)
def test_a_source_that_waits_has_what_it_gave_signed_and_nothing_lost_doubled_or_reordered(
    agencies: Keystore, outbox_url: str, idle_after: tuple[int, ...]
) -> None:
    """``IDLE`` in the items (the gateway's draft worker has not sent its next chunk yet):
    every item read before it is signed before the source is read again, so the serving
    process signs its first drafts as soon as they arrive, not once ``LOOKUP`` have (issue 11:
    it waited for the worker's first 500); the rows signed so far go in meanwhile. The chain
    is the one the same items make without ``IDLE``: each once, in order, one transaction."""
    producer = Producer(POLICE, agencies, outbox_url)
    prepared = _prepared(producer, LOOKUP + 60)
    signed: list[str] = []

    def sign(item: Prepared, sequence: int, prevhash: str) -> SignedEvent:
        signed.append(item.id)
        return producer._sign(item, sequence, prevhash)

    def same(item: Prepared, stored: Mapping[str, Any]) -> bool:
        return producer._same(item, stored)

    def source() -> Iterator[Prepared | None]:
        for index in range(len(prepared) + 1):
            for _ in range(idle_after.count(index)):
                yield IDLE
                assert signed == [p.id for p in prepared[:index]]  # all it gave, nothing more
            if index < len(prepared):
                yield prepared[index]

    events = producer.outbox.append_each(POLICE, source(), sign, same)
    assert [e.event_id for e in events] == [p.id for p in prepared] == signed
    assert_chain(producer.outbox, POLICE, len(prepared))
    assert [r.event_id for r in producer.outbox.events(POLICE)] == [p.id for p in prepared]
    producer.outbox.close()


def test_a_source_that_fails_after_waiting_stores_nothing(agencies: Keystore, outbox_url: str) -> None:
    """Rows inserted while the source waited (``IDLE``) are still inside the transaction: a
    source that fails afterwards (the draft worker died) leaves nothing stored."""
    producer = Producer(POLICE, agencies, outbox_url)

    def failing() -> Iterator[Prepared | None]:
        yield from _prepared(producer, 30)
        yield IDLE
        yield from _prepared(producer, INSERT_ROWS + 5)
        yield IDLE
        raise RuntimeError("the draft worker stopped")

    with pytest.raises(RuntimeError, match="worker stopped"):
        producer.append_prepared(failing())
    assert producer.outbox.events(POLICE) == [] and producer.outbox.head(POLICE) == (0, "")
    producer.outbox.close()


def _held_append(
    producer: Producer, items: list[Prepared], release: threading.Event, done: dict[str, float]
) -> threading.Thread:
    """An append on a thread of its own that holds its transaction (the write lock) after its
    first item until ``release`` is set; ``done["at"]`` is when it returned (committed)."""

    def source() -> Iterator[Prepared]:
        yield items[0]
        release.wait(30)
        yield from items[1:]

    def run() -> None:
        producer.outbox.append_each(POLICE, source(), producer._sign, producer._same)
        done["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_waiting_sqlite_writer_begins_as_soon_as_the_one_before_commits(
    agencies: Keystore, tmp_path: Path
) -> None:
    """Two appends of one outbox object on SQLite: the second begins its transaction at once
    when the first commits, not when SQLite's busy handler next polls (its sleeps grow to
    100 ms). Why (issue 11): the gateway keeps two batch requests in flight, and the second
    one's signing starts at the first one's commit; each late start was serial time."""
    producer = Producer(POLICE, agencies, f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    prepared = _prepared(producer, 40)
    lags = []
    for trial in range(5):
        first, second = prepared[trial * 8 : trial * 8 + 4], prepared[trial * 8 + 4 : trial * 8 + 8]
        release, done, began = threading.Event(), dict[str, float](), []
        holder = _held_append(producer, first, release, done)
        time.sleep(0.1)  # the first holds the write lock

        def source(items: list[Prepared] = second, began: list[float] = began) -> Iterator[Prepared]:
            began.append(time.monotonic())  # read inside the second's transaction
            yield from items

        waiter = threading.Thread(
            target=lambda: producer.outbox.append_each(POLICE, source(), producer._sign, producer._same)
        )
        waiter.start()
        time.sleep(0.4)  # the second waits (SQLite's busy handler would be sleeping 100 ms at a time)
        release.set()
        holder.join(30)
        waiter.join(30)
        lags.append(began[0] - done["at"])
    assert sorted(lags)[2] < 0.015, lags  # the median lag: SQLite's polling gave 28 ms, in turn 1-2
    assert_chain(producer.outbox, POLICE, 40)
    producer.outbox.close()


def test_a_sqlite_writer_kept_waiting_past_the_busy_timeout_fails_as_sqlite_does(
    agencies: Keystore, tmp_path: Path
) -> None:
    """Writers of one outbox object that wait for each other in the process still give up
    after the outbox's busy timeout with SQLite's own "database is locked" (the gateway
    answers it 503 with Retry-After), and the retry, once the lock is free, stores once."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}", busy_timeout_s=0.3)
    producer = Producer(POLICE, agencies, outbox)
    prepared = _prepared(producer, 3)
    release, done = threading.Event(), dict[str, float]()
    holder = _held_append(producer, prepared[:2], release, done)
    time.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        outbox.append_each(POLICE, iter(prepared[2:]), producer._sign, producer._same)
    assert 0.25 < time.monotonic() - started < 5
    release.set()
    holder.join(30)
    outbox.append_each(POLICE, iter(prepared[2:]), producer._sign, producer._same)
    assert_chain(outbox, POLICE, 3)
    outbox.close()
