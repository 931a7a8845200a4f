"""A partnership's history at scale (100,000 children, 2,000,000 events), signed and written into a
PostgreSQL ledger in minutes rather than hours.

What is generated:

- **Agencies**: children's social care, one police force, health visiting, 20 GP practices and
  40 schools, each with its own Ed25519 key, registered first by the root key (through
  ``Ledger.record`` itself), and the partnership's service key.
- **Story**: event ``n`` is about child ``n mod children`` in round ``n div children``, at
  ``T0 + n minutes`` (recorded at the same time). Per child: registration (social care, naming
  mother and father), a domestic-abuse incident (police, both parents as parties), GP
  registration, the mother linked, school enrolment, then in turn a health-visitor contact, an
  incident, a GP contact, a school contact and a police referral to social care. 20 events per
  child at the issue's size, from five agencies. Event ids are ``uuid5(n)``, so the view rows
  below can cite real events as evidence.
- **Every event is real**: the producer's envelope, Ed25519-signed over its RFC 8785 form and
  chained per agency (``ledger.envelope.ChainSigner``); stored as ``Ledger.record`` stores it
  (the ``ledger_events`` row made by the ledger application's own eventsourcing mapper, and the
  ``ledger_accepted`` index row with the canonical envelope). `audit verify` finds such a
  ledger clean (tests/bench). Envelopes are schema-valid (tested on a sample).

How it is fast: an agency's chain is sequential (each event names its predecessor's digest),
different agencies' chains are not, so the agencies are shared out between worker processes
(one per core), balanced by their number of events; each worker signs its agencies' events and
writes its own rows with PostgreSQL ``COPY``, committing every ``CHUNK`` events. An event's
ledger position is fixed by the story (``keys + n + 1``), so ledger order is time order and
every chain's positions grow with its sequence without the workers talking to each other.

Not generated here: the per-child view tables and flags, which ``bench/web.py`` writes in bulk
(the projector's path, through Kafka and the rules, is what the ingest benchmarks measure).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from ledger.envelope import ChainSigner
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Acceptance, EventAccepted, Ledger, stream_id
from ledger.store.types import UTCTime
from ledger.timeutil import parse_time
from ledger.vocabulary import SERVICE_AGENCY

CSC, POLICE, PHN = "csc/somerset", "police/avon-somerset", "phn/somerset"
GPS = tuple(f"gp/L85{n:03d}" for n in range(1, 21))
SCHOOLS = tuple(f"school/{n}" for n in range(100001, 100041))
AGENCIES = (CSC, POLICE, PHN, *GPS, *SCHOOLS)
T0 = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
EVENT_NAMESPACE = uuid.UUID("6f1c3f0e-8a53-4d43-9d55-2a7a4f6b1c20")
CHUNK = 20_000  # events per COPY and commit, per worker
# A child's first five events, one per round; after them its events cycle through CYCLE.
FIRST = ("registered", "incident", "gp", "linked", "school")
CYCLE = ("phn-contact", "incident", "gp-contact", "school-contact", "referral")
# Who records each kind (GP and school kinds: the child's own practice and school).
BY = {"registered": CSC, "incident": POLICE, "linked": CSC, "phn-contact": PHN, "referral": POLICE}
_TIME = UTCTime()
_DIALECT = postgresql.dialect()


def child_id(c: int) -> str:
    return f"C-{c:06d}"


def mother(c: int) -> str:
    return f"P-{c:06d}-m"


def father(c: int) -> str:
    return f"P-{c:06d}-f"


def dob(c: int) -> str:
    return f"{2010 + c % 12}-{1 + c % 12:02d}-{1 + c % 28:02d}"


def event_id(n: int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, str(n)))


def event_time(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def gp_of(c: int) -> str:
    return GPS[c % len(GPS)]


def school_of(c: int) -> str:
    return SCHOOLS[c % len(SCHOOLS)]


def step(n: int, children: int) -> tuple[str, str]:
    """(agency, kind) of story event ``n``."""
    round_, c = divmod(n, children)
    kind = FIRST[round_] if round_ < len(FIRST) else CYCLE[(round_ - len(FIRST)) % len(CYCLE)]
    if kind in ("gp", "gp-contact"):
        return gp_of(c), kind
    if kind in ("school", "school-contact"):
        return school_of(c), kind
    return BY[kind], kind


def child_story(c: int, children: int, events: int) -> list[tuple[int, str, str]]:
    """Child ``c``'s story events: (n, agency, kind), in time order."""
    return [(n, *step(n, children)) for n in range(c, events, children)]


def payload(kind: str, n: int, children: int) -> tuple[str, dict[str, Any]]:
    """The event type and data of story event ``n`` of ``kind``."""
    c = n % children
    if kind == "registered":
        return "child.registered", {"dob": dob(c), "mother": mother(c), "father": father(c)}
    if kind == "incident":
        parties = [
            {"person": mother(c), "role": "victim"},
            {"person": father(c), "role": "alleged-perpetrator"},
        ]
        return "incident.reported", {
            "incident_ref": f"INC-{n}",
            "children_present": True,
            "domestic_abuse": True,
            "parties": parties,
            "reported_by": "neighbour",
            "dash_risk": "medium",
        }
    if kind == "gp":
        return "gp.registered", {"person": child_id(c), "practice": gp_of(c).split("/")[1]}
    if kind == "linked":
        return "person.linked", {
            "person": mother(c),
            "role": "mother",
            "lives_with_child": True,
            "parental_responsibility": True,
        }
    if kind == "school":
        return "school.enrolled", {"school": school_of(c).split("/")[1]}
    if kind == "referral":
        reason = "domestic abuse with the child present"
        return "referral.made", {"referral_ref": f"REF-{n}", "to": CSC, "reason": reason}
    person, practitioner, purpose = {
        "phn-contact": (mother(c), "HV-12", "health visit"),
        "gp-contact": (child_id(c), "GP-3", "consultation"),
        "school-contact": (child_id(c), "DSL-1", "welfare check"),
    }[kind]
    return "contact.recorded", {
        "person": person,
        "practitioner": practitioner,
        "mode": "in-person",
        "purpose": purpose,
    }


def story_event(signer: ChainSigner, n: int, children: int) -> dict[str, Any]:
    kind = step(n, children)[1]
    event_type, data = payload(kind, n, children)
    return signer.sign(
        event_type, data, subject=child_id(n % children), at=event_time(n), event_id=event_id(n)
    )


@dataclass(frozen=True)
class Generated:
    events: int  # including the key registrations
    seconds: float
    cpu_seconds: float  # this process and its workers (user + system), PostgreSQL's not included
    workers: int


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def shares(events: int, children: int, workers: int) -> list[list[str]]:
    """Agencies per worker, balanced by their number of events (largest first, to the least
    loaded worker)."""
    counts = Counter(step(n, children)[0] for n in range(events))
    loads = [0] * workers
    shared: list[list[str]] = [[] for _ in range(workers)]
    for agency, count in counts.most_common():
        least = loads.index(min(loads))
        shared[least].append(agency)
        loads[least] += count
    return [s for s in shared if s]


def generate(
    ledger: Ledger,
    root: ChainSigner,
    service_key: Ed25519PrivateKey,
    events: int,
    children: int,
    *,
    workers: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Generated:
    """Register the agencies' keys, then write ``events`` story events (``events`` counts the
    story only) into ``ledger`` (PostgreSQL)."""
    if not ledger.is_postgres:
        raise ValueError("the fast generator writes with PostgreSQL COPY: give a postgresql URL")
    started, cpu = time.perf_counter(), _cpu()
    keys = {agency: Ed25519PrivateKey.generate() for agency in AGENCIES}
    registrations = []
    for agency, key in [*keys.items(), (SERVICE_AGENCY, service_key)]:
        public = key.public_key()
        data = {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)}
        registrations.append(
            Acceptance.of(root.sign("agency.key.registered", data, subject=agency, at=T0 - timedelta(days=1)))
        )
    with ledger.writer() as session:
        ledger.record(session, registrations, T0)
    first = len(registrations) + 1
    workers = workers or os.cpu_count() or 1
    plan = shares(events, children, workers)
    url = make_url(ledger.url).set(drivername="postgresql").render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")  # no copy of this process's open connections
    with _indexes_built_after(url, LOADED), ProcessPoolExecutor(len(plan), mp_context=context) as pool:
        jobs = [
            pool.submit(
                write_share, ledger.url, url, {a: _raw(keys[a]) for a in share}, events, children, first
            )
            for share in plan
        ]
        written = 0
        for job in as_completed(jobs):
            written += job.result()
            progress(f"  a worker finished: {written:,} of {events:,} story events written")
        progress("  building the indexes")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_events', 'id'), %s)", (first + events - 1,)
        )
        connection.execute("ANALYZE")
    return Generated(events + len(registrations), time.perf_counter() - started, _cpu() - cpu, len(plan))


LOADED = ("ledger_events", "ledger_accepted")


@contextmanager
def _indexes_built_after(conninfo: str, tables: Sequence[str]) -> Iterator[None]:
    """Drop ``tables``' indexes and key constraints, and build them again, exactly as they were
    defined, once the rows are in: PostgreSQL's advice for bulk loads (one sort per index
    instead of millions of random B-tree inserts). The definitions are read from the catalog,
    so the schema afterwards is the one the ledger created."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        constraints = connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('p', 'u')",
            (list(tables),),
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) AND indexrelid NOT IN (SELECT conindid FROM pg_constraint)",
            (list(tables),),
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        for table, name, _ in constraints:
            connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    yield
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '256MB'")
        for table, name, definition in constraints:
            connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            connection.execute(definition)


def write_share(
    ledger_url: str, conninfo: str, keys: dict[str, bytes], events: int, children: int, first: int
) -> int:
    """Worker: sign the story events of ``keys``' agencies in order and COPY them in chunks."""
    signers = {a: ChainSigner(a, Ed25519PrivateKey.from_private_bytes(raw)) for a, raw in keys.items()}
    mapper = Ledger(ledger_url, check_schema=False).app.mapper
    accepted_at = _TIME.process_bind_param(T0, _DIALECT)
    written = 0
    with psycopg.connect(conninfo) as connection:
        # A benchmark database, dropped afterwards: a crash loses a chunk, never a real record.
        connection.execute("SET synchronous_commit = off")
        for start in range(0, events, CHUNK):
            stored_rows: list[tuple[Any, ...]] = []
            index_rows: list[tuple[Any, ...]] = []
            for n in range(start, min(events, start + CHUNK)):
                signer = signers.get(step(n, children)[0])
                if signer is None:
                    continue
                accepted = Acceptance.of(story_event(signer, n, children))
                event = accepted.event
                stored = mapper.to_stored_event(
                    EventAccepted(
                        originator_id=stream_id(event["source"]),
                        originator_version=event["sequence"],
                        timestamp=T0,
                        envelope=dict(event),
                    )
                )
                position = first + n
                stored_rows.append(
                    (position, stored.originator_id, stored.originator_version, stored.topic, stored.state)
                )
                at = _TIME.process_bind_param(parse_time(event["time"]), _DIALECT)
                index_rows.append(
                    (
                        event["id"], position, event["source"], event["sequence"], event["subject"],
                        event["type"], at, at, accepted_at, accepted.digest,
                        accepted.canonical.decode("utf-8"), False,
                    )
                )  # fmt: skip
            _copy(
                connection, "ledger_events (id, originator_id, originator_version, topic, state)", stored_rows
            )
            _copy(
                connection,
                "ledger_accepted (event_id, position, source, sequence, subject, type, time, recordedtime, "
                "accepted_at, digest, envelope, over_hole)",
                index_rows,
            )
            connection.commit()
            written += len(index_rows)
    return written


def _copy(connection: psycopg.Connection[Any], target: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
