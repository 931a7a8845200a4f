"""Audit rates: `audit verify` and `audit replay` in events/s on large generated histories.

    python bench/audit.py [--json] [--sizes 100000 1000000] [--replay-limit 20000] [--keep DIR]
                          [--skip verify|replay]

Histories are signed and written straight into a SQLite ledger with ``Ledger.record`` in large
batches inside ``ledger.writer()``: the projector's path through Kafka would make generating a
million events take longer than auditing them, and the audit reads only the ledger. Replay
copies the events recorded by its as-of time into a fresh database and evaluates every child
once (views, policies, flags; one process into SQLite, see consumers/auditor/replay.py); it
is timed as of the time of event ``--replay-limit`` (0: the whole history), with its CPU time
(this process and its workers), the CPU time of PostgreSQL's backends serving it (when the
server runs on this machine) and the peak memory of the largest process. Beside the figures: the machine's
raw Ed25519 verify rate on one core and on all cores, and the machine description. Generated
data goes to a temporary directory, never into the repository. With ``--keep DIR`` the ledgers
stay there and a later run with the same ``--keep`` re-uses each complete one (its root public
key is written beside it once generation has finished), so a million-event history is signed
once, not per run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import create_engine, make_url

from bench.machine import (
    describe,
    peak_memory_mb,
    stage_costs_us,
    verify_rate,
    verify_rate_all_cores,
    verify_rate_cpu,
)
from consumers.auditor.replay import replay
from consumers.auditor.verify import verify
from ledger.envelope import ChainSigner
from ledger.keyregistry import RootKey
from ledger.merkle import MerkleTree
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Acceptance, Ledger
from ledger.vocabulary import SERVICE_AGENCY

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001", "phn/somerset")
T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
BATCH = 5000


def _story(root: ChainSigner, events: int, children: int, head_every: int) -> Iterator[Acceptance]:
    """Key registrations, then per child a registration, a GP link and incidents; a signed tree
    head every ``head_every`` events (computed over what precedes it, as the operator would)."""
    agencies = {a: ChainSigner(a, Ed25519PrivateKey.generate()) for a in (*AGENCIES, SERVICE_AGENCY)}
    service = agencies[SERVICE_AGENCY]  # tree heads are signed by the service key, not the root
    tree = MerkleTree()

    def emit(event: dict[str, Any]) -> Acceptance:
        accepted = Acceptance.of(event)
        tree.append(accepted.canonical)
        return accepted

    for agency, signer in agencies.items():
        public = signer.key.public_key()
        data: dict[str, Any] = {"agency": agency, "kid": key_id(public)}
        data["public_key"] = public_key_text(public)
        yield emit(root.sign("agency.key.registered", data, subject=agency, at=T0 - timedelta(days=1)))
    n = len(agencies)
    while n < events:
        child = f"C-{n % children:06d}"
        at = T0 + timedelta(minutes=n)
        round_ = n // children
        if head_every and n % head_every == 0:
            head = {"tree_size": len(tree), "root_hash": tree.root().hex()}
            event = service.sign("ledger.tree-head", head, subject=root.source, at=at)
        elif round_ == 0:
            event = agencies["csc/somerset"].sign(
                "child.registered", {"dob": "2023-11-01"}, subject=child, at=at
            )
        elif round_ == 1:
            data = {"person": child, "practice": "L85001"}
            event = agencies["gp/L85001"].sign("gp.registered", data, subject=child, at=at)
        else:
            data = {
                "incident_ref": f"INC-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": [{"person": f"P-{child}-m", "role": "victim"}],
            }
            event = agencies["police/avon-somerset"].sign("incident.reported", data, subject=child, at=at)
        yield emit(event)
        n += 1


def generate_history(
    ledger: Ledger,
    root_key: Ed25519PrivateKey,
    partnership: str,
    events: int,
    *,
    children: int = 1000,
    head_every: int = 0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write ``events`` signed, chained events (key registrations first) into ``ledger``."""
    batch: list[Acceptance] = []
    written = 0
    for accepted in _story(ChainSigner(partnership, root_key), events, children, head_every):
        batch.append(accepted)
        if len(batch) == BATCH:
            written += write_batch(ledger, batch, T0)
            if progress is not None:
                progress(written)
    written += write_batch(ledger, batch, T0)
    if progress is not None:
        progress(written)


def opened(url: str) -> Ledger:
    """A kept ledger (``--keep`` here, ``--cache`` in bench/growth.py), migrated first if an
    older release made it (as `sgledger db upgrade`), so a schema change does not cost a new one."""
    older = Ledger(url, check_schema=False)
    older.upgrade_schema()
    older.engine.dispose()
    return Ledger(url)


def write_batch(ledger: Ledger, batch: list[Acceptance], accepted_at: datetime) -> int:
    """Record ``batch`` in one writer transaction and empty it; returns how many were written."""
    if batch:
        with ledger.writer() as session:
            ledger.record(session, batch, accepted_at)
    count = len(batch)
    batch.clear()
    return count


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sample_stage_costs() -> dict[str, float]:
    signer = ChainSigner(AGENCIES[0], Ed25519PrivateKey.generate())
    data = {
        "incident_ref": "INC-1",
        "children_present": True,
        "domestic_abuse": True,
        "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-f", "role": "alleged-perpetrator"}],
    }
    event = signer.sign("incident.reported", data, subject="C-000001", at=T0)
    return stage_costs_us(event, signer.key.public_key())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--replay-limit", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="write the ledgers here instead of a temp dir")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip", choices=["verify", "replay"], help="leave one of the two out")
    parser.add_argument(
        "--replay-into",
        metavar="URL",
        help="an empty PostgreSQL server database to replay into (created and dropped by this run; "
        "one worker per core); default: a SQLite file beside the ledger (one worker)",
    )
    args = parser.parse_args()
    say: Callable[[str], None] = (lambda _: None) if args.json else print
    say(f"machine: {describe()}")
    one, all_cores = verify_rate(), verify_rate_all_cores()
    say(f"raw Ed25519 verify: {one:,.0f}/s on one core, {all_cores:,.0f}/s on all cores")
    one_cpu = verify_rate_cpu()
    result: dict[str, Any] = {
        "machine": describe(),
        "raw_verify_per_s_one_core": round(one),
        "raw_verify_per_s_all_cores": round(all_cores),
        "raw_verify_cpu_us": round(1e6 / one_cpu, 1),
        "stage_cpu_us_per_event": sample_stage_costs(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="sgledger-audit-bench-") as tmp:
        directory = args.keep or Path(tmp)
        for size in args.sizes:
            result["runs"].append(
                run(directory, size, args.replay_limit, one, all_cores, say, args.skip, args.replay_into)
            )
    result["peak_memory_mb"] = round(peak_memory_mb())
    if args.json:
        print(json.dumps(result, indent=2))


def run(
    directory: Path,
    size: int,
    replay_limit: int,
    one: float,
    all_cores: float,
    say: Callable[[str], None],
    skip: str | None = None,
    replay_into: str | None = None,
) -> dict[str, Any]:
    database, public = directory / f"ledger-{size}.db", directory / f"ledger-{size}.root-public-key"
    generated: float | None = None
    if database.exists() and public.exists():  # complete: the key is written after the history
        root_key = RootKey("partnership/bench", Ed25519PublicKey.from_public_bytes(public.read_bytes()))
        ledger = opened(f"sqlite:///{database}")
        say(f"\n{size:,} events: re-using {database}")
    else:
        database.unlink(missing_ok=True)  # an interrupted generation is not re-used
        root = Ed25519PrivateKey.generate()
        root_key = RootKey("partnership/bench", root.public_key())
        ledger = Ledger(f"sqlite:///{database}")
        started = time.perf_counter()
        generate_history(
            ledger, root, root_key.partnership, size, children=max(100, size // 50), head_every=10_000
        )
        generated = time.perf_counter() - started
        public.write_bytes(root.public_key().public_bytes_raw())
        say(f"\n{size:,} events: generated in {generated:,.1f} s ({size / generated:,.0f} events/s)")
    generate_s = None if generated is None else round(generated, 1)
    result: dict[str, Any] = {"events": size, "generate_s": generate_s}
    if skip != "verify":
        result |= _verify(ledger, root_key, one, all_cores, say)
    if skip != "replay":
        result |= _replay(directory, ledger, root_key, size, replay_limit, one, say, replay_into)
    return result


def _verify(
    ledger: Ledger, root_key: RootKey, one: float, all_cores: float, say: Callable[[str], None]
) -> dict[str, Any]:
    cpu_before, own_before = _cpu_seconds(), _own_cpu_seconds()
    report = verify(ledger, root_key)
    verify_cpu = _cpu_seconds() - cpu_before  # this process and its (finished) pool workers
    reader_cpu = _own_cpu_seconds() - own_before  # the reading process alone
    verdict = "clean" if report.ok else f"{len(report.findings)} findings"
    rate = report.events / report.seconds
    say(
        f"  audit verify: {report.events:,} events in {report.seconds:,.1f} s = {rate:,.0f} events/s "
        f"({verdict}); {rate / all_cores:.0%} of the raw all-core Ed25519 rate, {rate / one:.0%} of one core"
    )
    return {
        "verify_s": round(report.seconds, 1),
        "verify_events_per_s": round(rate),
        "verify_vs_raw_all_cores": round(rate / all_cores, 3),
        "verify_vs_raw_one_core": round(rate / one, 3),
        "verify_clean": report.ok,
        "verify_cpu_us_per_event": round(1e6 * verify_cpu / report.events, 1),
        "verify_reader_cpu_us_per_event": round(1e6 * reader_cpu / report.events, 1),
        # Events per CPU second over raw verifications per CPU second: on a loaded host the
        # ratio that moves least (the lead's quiet runs give the wall-clock one).
        "verify_cpu_vs_raw_cpu": round(report.events / (verify_rate_cpu() * verify_cpu), 3),
    }


def _replay(
    directory: Path,
    ledger: Ledger,
    root_key: RootKey,
    size: int,
    replay_limit: int,
    one: float,
    say: Callable[[str], None],
    replay_into: str | None = None,
) -> dict[str, Any]:
    limit = min(size, replay_limit) if replay_limit > 0 else size
    as_of = T0 + timedelta(minutes=limit)
    with _replay_target(directory, size, replay_into) as url, _BackendCpu(url) as backends:
        cpu_before, started = _cpu_seconds(), time.perf_counter()
        result = replay(ledger, root_key, as_of, url)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    say(
        f"  audit replay: {result.events:,} events (as of {as_of.isoformat()}), {result.children:,} "
        f"children in {seconds:,.1f} s = {result.events / seconds:,.0f} events/s; "
        f"{cpu:,.1f} s CPU, PostgreSQL's backends {backends.seconds or 'not measured'} s; "
        f"largest worker {workers_mb:,.0f} MB"
    )
    return {
        "replay_events": result.events,
        "replay_children": result.children,
        "replay_failed_children": result.failed,
        "replay_s": round(seconds, 1),
        "replay_cpu_s": round(cpu, 1),
        "replay_cpu_us_per_event": round(1e6 * cpu / result.events, 1),
        "replay_postgres_backend_cpu_s": backends.seconds,
        "replay_events_per_s": round(result.events / seconds),
        "replay_vs_raw_one_core": round(result.events / seconds / one, 4),
        "replay_worker_peak_memory_mb": round(workers_mb),
    }


class _BackendCpu:
    """CPU time of the PostgreSQL backends serving the replay's database, when the server runs
    on this machine (None otherwise, and into SQLite): the replay's writes cost as much again
    in the server as in its own processes, and the two share the cores. Read from /proc every
    half second by a thread (a backend's time is only visible while it lives, so up to half a
    second of each is missed: a lower bound); a backend is recognised by the database name in
    its process title."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        local = parsed.host in ("127.0.0.1", "localhost", "::1", None) and Path("/proc").is_dir()
        self._name = parsed.database if parsed.get_backend_name() == "postgresql" and local else None
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def seconds(self) -> float | None:
        return None if self._name is None else round(sum(self._seen.values()), 1)

    def __enter__(self) -> _BackendCpu:
        if self._name is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        assert self._name is not None
        title, tick = f" {self._name} ".encode(), os.sysconf("SC_CLK_TCK")
        while True:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if title not in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "):
                        continue
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # the process ended between the listing and the read
                    continue
                self._seen[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            if self._stop.wait(0.5):
                return


@contextmanager
def _replay_target(directory: Path, size: int, server_url: str | None) -> Iterator[str]:
    """An empty database to replay into: a fresh SQLite file beside the ledger (kept, for a
    look), or a database created on ``server_url``'s PostgreSQL server and dropped afterwards
    (a 1M replay writes ~10 GB)."""
    if server_url is None:
        into = directory / f"replay-{size}.db"
        for stale in (into, into.with_name(into.name + "-wal"), into.with_name(into.name + "-shm")):
            stale.unlink(missing_ok=True)
        yield f"sqlite:///{into}"
        return
    name = f"sgledger_replay_bench_{os.getpid()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()
