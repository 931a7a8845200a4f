"""Events/s from `publish` to flag, through the real path, on the embedded default.

    python bench/ingest.py [--json] [--events 10000] [--children 500] [--database-url URL]
                           [--verify-workers N] [--no-stages]
    python bench/ingest.py --offered-rate 100 --duration 60 [--json] [--database-url URL] [--verify-workers N]

Publishes N signed events from four agencies about many children into the durable outbox
(one transaction per 500 events), relays them to the embedded tansu broker, and runs the
projector until every event is in the ledger, its child's view rebuilt and its policies
evaluated. Prints each stage's rate, the end-to-end rate and latency percentiles (outbox write
to ledger acceptance), peak memory, and the machine's raw Ed25519 verify rate beside them.

The topics are then replayed twice into empty ledgers: by one projector process (intake and
child projection in one transaction per batch, "projection alone"), and with the stages apart as
deployed for two cores (docs/stages.md): intake in this process with its verification workers,
and two child shards (``--stage children --shard 1/2`` and ``2/2``) as their own processes,
started together; that run is done when intake holds every event and both shards have projected
them all ("stages", skipped with ``--no-stages``).

With ``--offered-rate R --duration S`` it measures latency under a steady load instead: events
are published at R per second for S seconds, one outbox transaction each (as agency systems
publish), while ``sgledger relay`` and ``sgledger project`` run as their own processes against
the embedded broker, exactly as deployed; a reader polls the ledger every 10 ms and notes when
each event became visible. The projector writes the event, the child's view and its flags in one
transaction, so that moment is when the flag is there for a lead to read. It prints p50 / p95 /
p99 / max of publish (outbox commit) -> visible, the projector's and relay's peak memory and CPU.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from bench.machine import (
    canonical_rate,
    describe,
    peak_memory_mb,
    verify_rate,
    verify_rate_all_cores,
    verify_rate_cpu,
)
from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, ApplyStats
from consumers.projector.collector import collect_less
from consumers.projector.runner import Projector
from consumers.projector.verifier import DEFAULT_WORKERS, Verifier
from ledger.keyregistry import RootKey
from ledger.keystore import Keystore, RootInfo
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from producers.outbox import Outbox, OutboxRow
from producers.relay import Relay
from producers.sdk import Draft, Producer
from transport.broker import EmbeddedBroker
from transport.kafka import KafkaSettings

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001", "phn/somerset")
T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


def drafts(events: int, children: int) -> dict[str, list[Draft]]:
    """A realistic mix per child: registration, GP link, incidents, notifications, referrals."""
    by_agency: dict[str, list[Draft]] = {a: [] for a in AGENCIES}
    n = 0
    while n < events:
        child = f"C-{n % children:05d}"
        at = T0 + timedelta(minutes=n)
        kind = (n // children) % 5
        if kind == 0:
            by_agency["csc/somerset"].append(Draft("child.registered", child, {"dob": "2023-11-01"}, at, at))
        elif kind == 1:
            by_agency["gp/L85001"].append(
                Draft("gp.registered", child, {"person": child, "practice": "L85001"}, at, at)
            )
        elif kind in (2, 3):
            data = {
                "incident_ref": f"INC-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": [{"person": f"P-{child}-m", "role": "victim"}],
            }
            by_agency["police/avon-somerset"].append(Draft("incident.reported", child, data, at, at))
        else:
            data = {"to": "gp/L85001", "about": [f"INC-{n - children}"], "channel": "secure email"}
            by_agency["police/avon-somerset"].append(Draft("notification.sent", child, data, at, at))
        n += 1
    return by_agency


def publish_all(
    plan: dict[str, list[Draft]], keystore: Keystore, outbox: Outbox, kafka: KafkaSettings
) -> None:
    """Agencies publish in chunks of 500 (one outbox transaction each), interleaved."""
    producers = {a: Producer(a, keystore, outbox, topics=kafka.topics) for a in plan}
    longest = max(len(items) for items in plan.values())
    for start in range(0, longest, 500):
        for agency, items in plan.items():
            if items[start : start + 500]:
                producers[agency].publish_many(items[start : start + 500])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=500)
    parser.add_argument("--database-url", help="ledger database (default: SQLite in a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--offered-rate", type=float, help="events/s published steadily (latency mode, with --duration)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load (latency mode)")
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"verification worker processes of the in-process projectors (default {DEFAULT_WORKERS}, as "
        "`sgledger project`; 0: verify in the projector's process)",
    )
    parser.add_argument("--no-stages", action="store_true", help="skip the replay with the stages apart")
    parser.add_argument("--shard-worker", nargs=4, help=argparse.SUPPRESS)  # URL ROOT-HEX PARTNERSHIP i/n
    args = parser.parse_args()
    if args.shard_worker:
        shard_worker(*args.shard_worker)
        return
    say: Callable[[str], None] = (lambda _: None) if args.json else print
    if args.offered_rate:
        offered_load(
            args.offered_rate, args.duration, args.children, args.database_url, args.json, args.verify_workers
        )
        return
    work = scratch_dir()
    keystore = Keystore(work / "keys")
    root = keystore.init_root("partnership/bench")
    outbox = Outbox(f"sqlite:///{work / 'outbox.sqlite'}")
    ledger = Ledger(args.database_url or f"sqlite:///{work / 'ledger.sqlite'}")
    say(f"machine: {describe()}")
    with EmbeddedBroker(work / "broker") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="bench")
        partnership = Producer(root.partnership, keystore, outbox, topics=kafka.topics)
        for agency in AGENCIES:
            public = keystore.create_agency_key(agency).public_key()
            partnership.publish(
                "agency.key.registered",
                agency,
                {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)},
                time=T0 - timedelta(days=1),
                recorded=T0 - timedelta(days=1),
            )
        plan = drafts(args.events, args.children)
        total = args.events + len(AGENCIES)
        stop = threading.Event()
        relay = Relay(outbox, kafka)
        relay_thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"poll_interval_s": 0.05})
        verifier = Verifier(args.verify_workers)
        projector = Projector(Applier(ledger, root.root_key(), verifier=verifier), kafka, group_id=None)
        started = time.perf_counter()
        publisher = threading.Thread(target=publish_all, args=(plan, keystore, outbox, kafka))
        publisher.start()
        relay_thread.start()
        try:
            while ledger.count() < total:
                projector.poll_once(timeout_ms=100)
            streamed = time.perf_counter()
            publisher.join()
        finally:  # a failure must not leave the relay thread (and the process) running
            stop.set()
            relay_thread.join()
            projector.close()
            verifier.close()
            relay.close()
        # Projection alone: a second projector replays the same topics into an empty ledger.
        replay_ledger = Ledger(f"sqlite:///{work / 'replay.sqlite'}")
        verifier = Verifier(args.verify_workers)
        replayer = Projector(Applier(replay_ledger, root.root_key(), verifier=verifier), kafka, group_id=None)
        time.sleep(1.0 if args.verify_workers else 0)  # the workers' start is not the replay's
        replay_started, replay_cpu = time.perf_counter(), time.process_time()
        workers_cpu = _children_cpu()
        while replay_ledger.count() < total:
            replayer.poll_once(timeout_ms=100)
        replayed, replay_main_cpu = time.perf_counter(), time.process_time() - replay_cpu
        replayer.close()
        verifier.close()  # reaps the workers: their CPU time is then in RUSAGE_CHILDREN
        workers_cpu = _children_cpu() - workers_cpu
        replay_cpu = replay_main_cpu + workers_cpu
        with replay_ledger.read() as session:  # held for a predecessor in a later batch
            replay_held = session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0
        stages = None if args.no_stages else stages_replay(kafka, root, work, total, args.verify_workers)
    with ledger.read() as session:
        accepted = dict(
            session.execute(select(AcceptedEvent.event_id, AcceptedEvent.accepted_at)).tuples().all()
        )
    with outbox._transaction() as session:
        written = dict(session.execute(select(OutboxRow.event_id, OutboxRow.created_at)).tuples().all())
    latencies = sorted(
        (accepted[i] - written[i].replace(tzinfo=written[i].tzinfo or UTC)).total_seconds()
        for i in accepted
        if i in written
    )
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p95, p99 = quantiles[49], quantiles[94], quantiles[98]
    sample = {"id": "x" * 36, "data": {"a": [1, 2, 3]}}
    end_to_end = args.events / (streamed - started)
    projection = total / (replayed - replay_started)
    one, both = verify_rate(), verify_rate_all_cores()
    # CPU time: on a shared host the wall-clock rates measure the load as much as the code.
    one_cpu = verify_rate_cpu()
    projection_cpu = total / replay_cpu
    canonical = canonical_rate(sample)
    if args.json:
        figures = {
            "machine": describe(),
            "events": args.events,
            "children": args.children,
            "end_to_end_events_per_s": round(end_to_end),
            "projection_events_per_s": round(projection),
            "projection_vs_raw_verify_one_core": round(projection / one, 4),
            "projection_cpu_ms_per_event": round(1000 / projection_cpu, 3),
            "projection_main_process_cpu_ms_per_event": round(1000 * replay_main_cpu / total, 3),
            "projection_workers_cpu_ms_per_event": round(1000 * workers_cpu / total, 3),
            "verify_workers": args.verify_workers,
            "projection_held_for_a_predecessor": replay_held,
            "projection_vs_raw_verify_cpu": round(projection_cpu / one_cpu, 4),
            "raw_verify_per_cpu_s": round(one_cpu),
            "latency_s": {"p50": round(p50, 2), "p95": round(p95, 2), "p99": round(p99, 2)},
            "peak_memory_mb": round(peak_memory_mb()),
            "raw_verify_per_s_one_core": round(one),
            "raw_verify_per_s_both_cores": round(both),
            "canonical_json_per_s_one_core": round(canonical),
        }
        if stages is not None:
            figures["stages"] = stages | {
                "vs_raw_verify_one_core": round(stages["events_per_s"] / one, 4),
                "vs_one_process": round(stages["events_per_s"] / projection, 2),
            }
        print(json.dumps(figures, indent=2))
        return
    print(f"events: {args.events} about {args.children} children from {len(AGENCIES)} agencies")
    print(f"end to end, publish -> flag (streaming):     {end_to_end:9.0f} events/s")
    print(f"projection alone (verify, ledger, views, flags): {projection:6.0f} events/s")
    print(
        f"projection CPU: {1000 / projection_cpu:.3f} ms/event, {projection_cpu / one_cpu:.3f} of a raw "
        f"verify per CPU second ({one_cpu:.0f}/s)"
    )
    print(
        f"  of which the projector process {1000 * replay_main_cpu / total:.3f} ms/event, "
        f"{args.verify_workers} verification workers {1000 * workers_cpu / total:.3f}"
    )
    if stages is not None:
        print(
            f"stages apart (intake + 2 child shards): {stages['events_per_s']:6.0f} events/s = "
            f"{stages['events_per_s'] / projection:.2f}x one process; "
            f"CPU {stages['cpu_ms_per_event']:.3f} ms/event"
        )
    print(f"latency outbox -> ledger: p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s")
    print(f"peak memory: {peak_memory_mb():.0f} MB")
    print(f"raw Ed25519 verify (cryptography): {one:9.0f}/s one core, {both:.0f}/s both")
    print(f"RFC 8785 canonical JSON:           {canonical:9.0f}/s one core")


def stages_replay(
    kafka: KafkaSettings, root: RootInfo, work: Path, total: int, workers: int
) -> dict[str, Any]:
    """Replay the topics with the stages apart (module docstring): wall and CPU seconds, the
    CPU split between intake, its verification workers and the two shards."""
    url = f"sqlite:///{work / 'stages.sqlite'}"
    ledger = Ledger(url)  # the schema exists before the shards connect
    public = root.root_key().public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    shards = [
        subprocess.Popen(
            [sys.executable, __file__, "--shard-worker", url, public, root.partnership, f"{i}/2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for shard in shards:
        assert shard.stdout is not None and shard.stdout.readline().strip() == "ready"
    verifier = Verifier(workers)
    intake = Projector(
        Applier(ledger, root.root_key(), children=False, verifier=verifier), kafka, group_id=None
    )
    time.sleep(1.0 if workers else 0)  # the workers' start is not the replay's
    started, cpu, children_cpu = time.perf_counter(), time.process_time(), _children_cpu()
    for shard in shards:
        assert shard.stdin is not None
        shard.stdin.write("go\n")
        shard.stdin.flush()
    while ledger.count() < total:
        intake.poll_once(timeout_ms=100)
    intake_wall, intake_cpu = time.perf_counter() - started, time.process_time() - cpu
    intake.close()
    verifier.close()  # reaped before the shards: RUSAGE_CHILDREN then holds only the workers
    workers_cpu = _children_cpu() - children_cpu
    for shard in shards:  # intake is done: each shard finishes what is left, then reports
        assert shard.stdin is not None
        shard.stdin.write("finish\n")
        shard.stdin.flush()
    reports = [json.loads(shard.communicate()[0]) for shard in shards]
    ledger.engine.dispose()
    wall = max(intake_wall, *(r["wall_s"] for r in reports))
    cpu_total = intake_cpu + workers_cpu + sum(r["cpu_s"] for r in reports)
    return {
        "events_per_s": round(total / wall),
        "wall_s": round(wall, 2),
        "intake_wall_s": round(intake_wall, 2),
        "cpu_ms_per_event": round(1000 * cpu_total / total, 3),
        "intake_cpu_ms_per_event": round(1000 * intake_cpu / total, 3),
        "verify_workers_cpu_ms_per_event": round(1000 * workers_cpu / total, 3),
        "shards": reports,
    }


def shard_worker(url: str, root_hex: str, partnership: str, shard: str) -> None:
    """One child shard of ``stages_replay``: ready, then project from "go" until "finish" and
    every notification after it is projected; prints its own wall and CPU seconds."""
    root = RootKey(partnership, Ed25519PublicKey.from_public_bytes(bytes.fromhex(root_hex)))
    collect_less()  # as `sgledger project --stage children` does
    stage = ChildProjection(Ledger(url), root, shard=Shard.parse(shard))
    stage.lag()  # connected before the start
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, wall = time.process_time(), time.perf_counter()
    finish = threading.Event()

    def wait_for_finish() -> None:
        sys.stdin.readline()
        finish.set()

    threading.Thread(target=wait_for_finish, daemon=True).start()
    stats = ApplyStats()
    stage.run(finish, lambda batch, _: stats.add(batch), idle_wait_s=0.05)
    stats.add(stage.catch_up())
    report = {
        "shard": shard,
        "children": len(stats.children),
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "peak_mb": round(peak_memory_mb(), 1),
    }
    print(json.dumps(report), flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def offered_load(
    rate: float, duration: float, children: int, database_url: str | None, as_json: bool, workers: int
) -> None:
    """Publish at ``rate`` for ``duration`` s with relay and projector as separate processes;
    print the publish -> visible latency (see the module docstring)."""
    work = scratch_dir()
    keystore = Keystore(work / "keys")
    root = keystore.init_root("partnership/bench")
    outbox = Outbox(f"sqlite:///{work / 'outbox.sqlite'}")
    url = database_url or f"sqlite:///{work / 'ledger.sqlite'}"
    ledger = Ledger(url)
    count = int(rate * duration)
    plan = sorted(
        ((agency, draft) for agency, items in drafts(count, children).items() for draft in items),
        key=lambda pair: pair[1].time or T0,
    )
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    with EmbeddedBroker(work / "broker") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        partnership = Producer(root.partnership, keystore, outbox, topics=kafka.topics)
        for agency in AGENCIES:
            public = keystore.create_agency_key(agency).public_key()
            event = partnership.publish(
                "agency.key.registered",
                agency,
                {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)},
                time=T0 - timedelta(days=1),
                recorded=T0 - timedelta(days=1),
            )
            published[event["id"]] = time.time()
        registrations = set(published)
        producers = {a: Producer(a, keystore, outbox, topics=kafka.topics) for a in AGENCIES}
        command = [sys.executable, "-m", "sgledger", "--data-dir", str(work), "--database-url", url,
                   "--bootstrap-servers", broker.bootstrap_servers]  # fmt: skip
        logs = [(work / f"{name}.log").open("wb") for name in ("relay", "project")]
        services = [
            subprocess.Popen([*command, *name.split()], stdout=log, stderr=subprocess.STDOUT)
            for name, log in zip(("relay", f"project --verify-workers {workers}"), logs, strict=True)
        ]
        stop = threading.Event()
        reader = threading.Thread(target=_watch, args=(ledger, seen, stop))
        reader.start()
        try:
            _wait_until(lambda: len(seen) >= len(AGENCIES), 120, services, "the key registrations")
            started = time.perf_counter()
            # One publishing thread per agency (each agency's system publishes on its own), every
            # event at its place in the schedule: event n at n / rate seconds.
            publishers = [
                threading.Thread(
                    target=_publish_on_schedule,
                    args=(producers[agency], [(n, d) for n, (a, d) in enumerate(plan) if a == agency]),
                    kwargs={"rate": rate, "started": started, "published": published},
                )
                for agency in AGENCIES
            ]
            for publisher in publishers:
                publisher.start()
            for publisher in publishers:
                publisher.join()
            offered = len(plan) / (time.perf_counter() - started)
            _wait_until(lambda: len(seen) >= len(published), 300, services, "every event")
        finally:
            stop.set()
            reader.join()
            for service in services:
                if service.poll() is None:
                    service.send_signal(signal.SIGINT)
            for service in services:
                try:
                    service.wait(30)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait()
            for log in logs:
                log.close()
    children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with outbox._transaction() as session:
        rows = session.execute(select(OutboxRow.event_id, OutboxRow.sent_at)).tuples().all()
    sent = {i: (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() for i, t in rows if t is not None}
    measured = [i for i in published if i in seen and i not in registrations]
    latencies = sorted(seen[i] - published[i] for i in measured)
    relayed = sorted(sent[i] - published[i] for i in measured if i in sent)
    q, r = statistics.quantiles(latencies, n=100), statistics.quantiles(relayed, n=100)
    one = verify_rate()
    figures: dict[str, Any] = {
        "machine": describe(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "offered_events_per_s": round(offered, 1),
        "verify_workers": workers,
        "duration_s": duration,
        "events": len(plan),
        "children": children,
        "latency_publish_to_flag_s": {
            "p50": round(q[49], 3),
            "p95": round(q[94], 3),
            "p99": round(q[98], 3),
            "max": round(latencies[-1], 3),
        },
        # the relay's part: publish -> acknowledged by the broker (outbox sent_at)
        "latency_publish_to_broker_s": {
            "p50": round(r[49], 3),
            "p95": round(r[94], 3),
            "p99": round(r[98], 3),
        },
        # the largest resident set among the services (relay, projector): the projector's
        "services_peak_memory_mb": round(children_usage.ru_maxrss / 1024),
        "services_cpu_s": round(children_usage.ru_utime + children_usage.ru_stime, 1),
        "raw_verify_per_s_one_core": round(one),
    }
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    latency = figures["latency_publish_to_flag_s"]
    print(f"machine: {figures['machine']} (load average {figures['load_average_1m']})")
    print(f"offered: {offered:.1f} events/s for {duration:.0f} s ({len(plan)} events, {children} children)")
    print("latency publish -> flag visible: " + ", ".join(f"{k} {v:.3f} s" for k, v in latency.items()))
    relay = figures["latency_publish_to_broker_s"]
    print("of which publish -> broker (relay): " + ", ".join(f"{k} {v:.3f} s" for k, v in relay.items()))
    print(f"services: peak memory {figures['services_peak_memory_mb']} MB, CPU {figures['services_cpu_s']} s")
    print(f"raw Ed25519 verify (cryptography): {one:9.0f}/s one core")


def _publish_on_schedule(
    producer: Producer,
    schedule: list[tuple[int, Draft]],
    rate: float,
    started: float,
    published: dict[str, float],
) -> None:
    for n, draft in schedule:
        time.sleep(max(0.0, started + n / rate - time.perf_counter()))
        event = producer.publish(
            draft.event_type, draft.child, draft.data, time=draft.time, recorded=draft.recorded
        )
        published[event["id"]] = time.time()


def _watch(ledger: Ledger, seen: dict[str, float], stop: threading.Event) -> None:
    """Note when each accepted event becomes visible to a reader (polled every 10 ms)."""
    position = 0
    while not stop.is_set():
        with ledger.read() as session:
            rows = session.execute(
                select(AcceptedEvent.position, AcceptedEvent.event_id)
                .where(AcceptedEvent.position > position)
                .order_by(AcceptedEvent.position)
            ).all()
        now = time.time()
        for row_position, event_id in rows:
            seen.setdefault(event_id, now)
            position = max(position, row_position)
        stop.wait(0.01)


def _wait_until(
    done: Callable[[], bool], timeout_s: float, services: list[subprocess.Popen[bytes]], what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if any(s.poll() is not None for s in services):
            raise SystemExit(f"a service exited while waiting for {what}: see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not reach the ledger within {timeout_s:.0f} s")
        time.sleep(0.05)


_SCRATCH: list[Path] = []


def scratch_dir() -> Path:
    """A directory for one run's ledger, outbox, broker and service logs (~175 MB): removed when
    the run succeeds (runs were filling /tmp), kept with its logs when it fails."""
    work = Path(tempfile.mkdtemp(prefix="sgledger-bench-"))
    _SCRATCH.append(work)
    return work


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        for kept in _SCRATCH:
            print(f"kept for its logs: {kept}", file=sys.stderr)
        raise
    for done in _SCRATCH:
        shutil.rmtree(done, ignore_errors=True)
