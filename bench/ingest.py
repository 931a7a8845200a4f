"""Events/s from `publish` to flag, through the real path, on the embedded default.

    python bench/ingest.py [--json] [--events 10000] [--children 500] [--database-url URL]

Publishes N signed events from four agencies about many children into the durable outbox
(one transaction per 500 events), relays them to the embedded tansu broker, and runs the
projector until every event is in the ledger, its child's view rebuilt and its policies
evaluated. Prints each stage's rate, the end-to-end rate and latency percentiles (outbox write
to ledger acceptance), peak memory, and the machine's raw Ed25519 verify rate beside them.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from bench.machine import canonical_rate, describe, peak_memory_mb, verify_rate, verify_rate_all_cores
from consumers.projector.applier import Applier
from consumers.projector.runner import Projector
from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
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
    args = parser.parse_args()
    say: Callable[[str], None] = (lambda _: None) if args.json else print
    work = Path(tempfile.mkdtemp(prefix="sgledger-bench-"))
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
        projector = Projector(Applier(ledger, root.root_key()), kafka, group_id=None)
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
            relay.close()
        # Projection alone: a second projector replays the same topics into an empty ledger.
        replay_ledger = Ledger(f"sqlite:///{work / 'replay.sqlite'}")
        replayer = Projector(Applier(replay_ledger, root.root_key()), kafka, group_id=None)
        replay_started = time.perf_counter()
        while replay_ledger.count() < total:
            replayer.poll_once(timeout_ms=100)
        replayed = time.perf_counter()
        replayer.close()
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
    canonical = canonical_rate(sample)
    if args.json:
        figures = {
            "machine": describe(),
            "events": args.events,
            "children": args.children,
            "end_to_end_events_per_s": round(end_to_end),
            "projection_events_per_s": round(projection),
            "projection_vs_raw_verify_one_core": round(projection / one, 4),
            "latency_s": {"p50": round(p50, 2), "p95": round(p95, 2), "p99": round(p99, 2)},
            "peak_memory_mb": round(peak_memory_mb()),
            "raw_verify_per_s_one_core": round(one),
            "raw_verify_per_s_both_cores": round(both),
            "canonical_json_per_s_one_core": round(canonical),
        }
        print(json.dumps(figures, indent=2))
        return
    print(f"events: {args.events} about {args.children} children from {len(AGENCIES)} agencies")
    print(f"end to end, publish -> flag (streaming):     {end_to_end:9.0f} events/s")
    print(f"projection alone (verify, ledger, views, flags): {projection:6.0f} events/s")
    print(f"latency outbox -> ledger: p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s")
    print(f"peak memory: {peak_memory_mb():.0f} MB")
    print(f"raw Ed25519 verify (cryptography): {one:9.0f}/s one core, {both:.0f}/s both")
    print(f"RFC 8785 canonical JSON:           {canonical:9.0f}/s one core")


if __name__ == "__main__":
    main()
