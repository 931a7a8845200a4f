"""Flag changes to email: the alerter's consume, send and replay rates, through the real parts.

    python bench/alerter.py [--changes 5000] [--children 500] [--agencies 6] [--profile]

The alerter turns gap-flag changes (what the projector publishes, keyed by child) into mail rows
and sends them; what matters is how many changes per second it can absorb when the projector
re-evaluates many children at once (a burst of flags), how fast the resulting mail leaves, and
that a replay of the whole topic costs time but never mails anyone twice. Everything is real: the
embedded tansu broker, a SQLite file database in a temp dir, and ``MailSink`` (aiosmtpd on a
loopback port). N synthetic changes (unique change and flag ids, many pseudonymous children,
each concerning one or two of the agencies, severities mixed; partnership leads get the high ones)
are published to the gap-flags topic, then measured separately:

1. consume: ``Alerter.consume_once`` (one poll -> one DB transaction of mail rows and positions)
   until the stored positions cover every published offset: changes/s and mail rows created/s;
2. send: one ``send_once`` (one SMTP connection, one DB transaction per mail): messages/s;
3. replay: ``alert_positions`` deleted, a fresh alerter consumes the topic from offset 0:
   changes/s, and the number of new mail rows, which must be zero (exactly once);
4. peak memory (whole process; the sink keeps every received message in memory).

``--profile`` runs each stage under cProfile (main thread only: the SMTP server runs in its own
thread and competes for the GIL) and prints the top functions by own time.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench.machine import describe, peak_memory_mb
from consumers.alerter.alerter import Alerter
from consumers.alerter.config import PartnershipConfig, parse_config
from consumers.alerter.sink import MailSink
from consumers.alerter.store import KafkaPosition, OutgoingMail
from transport.broker import EmbeddedBroker
from transport.kafka import KafkaSettings, ensure_topics, make_producer

AGENCY_KINDS = ("police", "csc", "gp", "phn", "school", "health-visiting")
RULES = (
    ("gp-not-notified", "Notify the GP practice"),
    ("referral-closed-without-father-contact", "Review the closure with the team manager"),
    ("repeat-incidents-no-referral", "Consider a referral to children's social care"),
    ("health-visitor-not-informed", "Inform the health visiting team"),
    ("marac-plan-not-shared", "Share the MARAC plan with the agencies named"),
)
SEVERITIES = (("low", 0.5), ("medium", 0.3), ("high", 0.2))
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T = TypeVar("T")


def agencies(count: int) -> list[str]:
    return [f"{AGENCY_KINDS[i % len(AGENCY_KINDS)]}/area-{i // len(AGENCY_KINDS) + 1}" for i in range(count)]


def partnership_config(sink: MailSink, names: list[str]) -> PartnershipConfig:
    """One lead per agency, a partnership lead for high severity; no digests, no quiet rules (so
    every routed recipient is mailed at once)."""
    data: dict[str, Any] = {
        "smtp": {"host": sink.host, "port": sink.port, "from": "alerts@partnership.bench"},
        "web_base_url": "https://sgledger.partnership.test",
        "agencies": {a: {"leads": [f"lead@{a.replace('/', '-')}.bench"]} for a in names},
        "partnership": {
            "leads_by_severity": {"high": ["partnership-high@partnership.bench"]},
            "fallback": "fallback@partnership.bench",
        },
    }
    return parse_config(data, "bench")


def flag_changes(count: int, children: int, names: list[str], seed: int = 7) -> list[dict[str, Any]]:
    """Changes shaped like tests/alerter/helpers.py ``flag_change``: unique change and flag ids,
    children spread over ``children`` pseudonymous ids, one or two agencies concerned."""
    rng = random.Random(seed)
    pseudonyms = [f"child-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}" for _ in range(children)]
    weights = [w for _, w in SEVERITIES]
    out = []
    for n in range(count):
        rule, action = RULES[n % len(RULES)]
        at = T0 + timedelta(seconds=n)
        concerns = rng.sample(names, rng.choice((1, 1, 2)))
        severity = rng.choices([s for s, _ in SEVERITIES], weights)[0]
        out.append({
            "change_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "change": "raised",
            "changed_at": at.isoformat().replace("+00:00", "Z"),
            "flag": {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "rule": rule, "version": 1, "child": pseudonyms[n % children], "severity": severity,
                "title": f"Title of {rule}", "status": "open",
                "due": (at + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
                "evidence": [f"ev-{n}"], "concerns": concerns,
                "source": "Review of Child X (2021), para 4.2", "explanation": "explained",
                "action": action, "detail": {"note": "not for mail"},
                "acknowledged_by": None, "resolved_by": None, "resolved_at": None,
                "dismissed_by": None, "dismissed_reason": None,
            },
            "evidence_detail": [
                {"id": f"ev-{n}", "source": concerns[0], "type": "domestic-abuse-incident",
                 "time": at.isoformat(), "recordedtime": at.isoformat(),
                 "data": {"notes": "never mailed"}},
            ],
        })  # fmt: skip
    return out


def publish(settings: KafkaSettings, changes: list[dict[str, Any]]) -> dict[int, int]:
    """Publish keyed by child (as the projector does); returns the next offset per partition."""
    ensure_topics(settings, [settings.topics.gap_flags])
    producer = make_producer(settings)
    futures = [
        producer.send(
            settings.topics.gap_flags, key=change["flag"]["child"].encode(), value=json.dumps(change).encode()
        )
        for change in changes
    ]
    producer.flush()
    producer.close()
    ends: dict[int, int] = {}
    for future in futures:
        meta = future.get(timeout=30)
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    return ends


def mail_rows(alerter: Alerter) -> int:
    with Session(alerter.store.engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutgoingMail)) or 0)


def consume_all(alerter: Alerter, ends: dict[int, int], timeout_s: float = 600.0) -> tuple[int, int]:
    """consume_once until the stored positions reach ``ends``; returns (polls, mail rows created)."""
    polls = created = 0
    deadline = time.monotonic() + timeout_s
    while True:
        stored = alerter.store.positions(alerter.topic, alerter.cluster)
        if all(stored.get(p, 0) >= end for p, end in ends.items()):
            return polls, created
        if time.monotonic() > deadline:
            raise RuntimeError(f"positions {stored} never reached {ends}")
        created += alerter.consume_once(timeout_ms=100)
        polls += 1


def staged(name: str, profile: bool, top: int, work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work``, timed (and profiled if asked); returns (its result, seconds)."""
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        result = work()
    finally:
        if profiler is not None:
            profiler.disable()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        print(f"--- profile: {name} ({elapsed:.1f} s), by own time ---")
        print("\n".join(lines[2:]))  # skip the stats-file header
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(r"consumers/alerter/|as_string|sqlite3|_socket|json/__init__", top)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        print(f"--- profile: {name}, the alerter's functions, SQLite and sockets by cumulative time ---")
        print("\n".join(lines[2:]))
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=5_000, help="flag changes published")
    parser.add_argument("--children", type=int, default=500, help="distinct pseudonymous children")
    parser.add_argument("--agencies", type=int, default=6, help="agencies, one lead each")
    parser.add_argument("--profile", action="store_true", help="cProfile each stage (slower)")
    parser.add_argument("--top", type=int, default=15, help="functions shown per profile")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sgledger-bench-alerter-"))
    database = f"sqlite:///{work / 'alerter.sqlite'}"
    names = agencies(args.agencies)
    changes = flag_changes(args.changes, args.children, names)
    print(f"machine: {describe()}")
    print(
        f"flag changes: {args.changes} about {args.children} children, {args.agencies} agencies "
        f"(one lead each) + a partnership high-severity lead; SQLite {work / 'alerter.sqlite'}"
    )
    with EmbeddedBroker(work / "broker") as broker, MailSink() as sink:
        kafka = KafkaSettings.from_env(bootstrap_servers=broker.bootstrap_servers, topic_prefix="bench")
        config = partnership_config(sink, names)
        started = time.perf_counter()
        ends = publish(kafka, changes)
        published = time.perf_counter() - started
        print(f"publish (setup, acks=all):          {args.changes / published:9,.0f} changes/s")

        alerter = Alerter(kafka, config, database, group_id=None)
        try:
            alerter.consumer  # noqa: B018 - connect, assign and seek before the clock starts
            (polls, created), consumed = staged(
                "consume", args.profile, args.top, lambda: consume_all(alerter, ends)
            )
            report, sent_s = staged("send", args.profile, args.top, alerter.send_once)
        finally:
            alerter.close()
        received = len(sink.received)

        replayer = Alerter(kafka, config, database, group_id=None)
        try:
            with replayer.store.engine.begin() as conn:
                conn.execute(delete(KafkaPosition))
            replayer.consumer  # noqa: B018
            before = mail_rows(replayer)
            (replay_polls, replay_created), replayed = staged(
                "replay", args.profile, args.top, lambda: consume_all(replayer, ends)
            )
            after = mail_rows(replayer)
            # anything the replay created would be pending: send it, so a mistake shows in the sink
            resent = replayer.send_once()
        finally:
            replayer.close()
        received_after_replay = len(sink.received)

    print(f"consume (topic -> mail rows, {polls} polls): {args.changes / consumed:9,.0f} changes/s, "
          f"{created / consumed:,.0f} mail rows/s ({created} rows, {created / args.changes:.2f} per change, "
          f"{consumed:.1f} s)")  # fmt: skip
    print(
        f"send (one SMTP connection, 1 DB txn/mail): {report.sent / sent_s:9,.0f} messages/s "
        f"({report.sent} sent, {report.deferred} deferred, {report.failed} failed, {sent_s:.1f} s; "
        f"sink received {received})"
    )
    verdict = "OK, exactly once" if after == before and received_after_replay == received else "FAILED"
    print(
        f"replay from offset 0 ({replay_polls} polls):   {args.changes / replayed:9,.0f} changes/s "
        f"({replayed:.1f} s); new mail rows {after - before} (created reported {replay_created}), "
        f"sent after replay {resent.sent}: {verdict}"
    )
    print(f"peak memory: {peak_memory_mb():.0f} MB")
    if verdict != "OK, exactly once":
        sys.exit(1)


if __name__ == "__main__":
    main()
