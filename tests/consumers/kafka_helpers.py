"""Driving the projector against the real broker: signed traffic in, database state out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from ledger.topics import record_key
from tests.ledger.factory import INCIDENT, T0, Chain
from transport.kafka import KafkaSettings, ensure_topics, make_producer

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001", "phn/somerset")


def story(keystore: Keystore, children: int, incidents_per_child: int) -> list[dict[str, Any]]:
    """Key registrations, then per child: registration, GP link and incidents, interleaved
    across agencies (in the first layout, keyed by child, every chain spanned many partitions)."""
    root = Chain(keystore.root_info().partnership, keystore.root_private_key())
    chains = {a: Chain(a) for a in AGENCIES}
    events = [
        root.event(
            "agency.key.registered",
            {
                "agency": a,
                "kid": key_id(c.key.public_key()),
                "public_key": public_key_text(c.key.public_key()),
            },
            subject=a,
            at=T0 - timedelta(days=1),
        )
        for a, c in chains.items()
    ]
    for n in range(children):
        child = f"C-{n:04d}"
        at = T0 + timedelta(hours=n)
        events.append(
            chains["csc/somerset"].event(
                "child.registered", {"dob": "2023-11-01", "father": f"P-{n}-f"}, subject=child, at=at
            )
        )
        events.append(
            chains["gp/L85001"].event(
                "gp.registered", {"person": child, "practice": "L85001"}, subject=child, at=at
            )
        )
        for i in range(incidents_per_child):
            events.append(
                chains["police/avon-somerset"].event(
                    "incident.reported",
                    {**INCIDENT, "incident_ref": f"INC-{n}-{i}"},
                    subject=child,
                    at=at + timedelta(days=i * 3),
                )
            )
    return events


def send_raw(settings: KafkaSettings, messages: Iterable[tuple[str, bytes, bytes]]) -> None:
    """(topic, key, value) straight onto the topics, as a misbehaving client might."""
    ensure_topics(settings, settings.topics.all())
    producer = make_producer(settings)
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=30)
    producer.close()


def send_events(settings: KafkaSettings, events: Iterable[Mapping[str, Any]]) -> None:
    """As the relay sends them: on the intake topic, keyed by agency."""
    send_raw(
        settings,
        ((settings.topics.intake, record_key(e["source"]), json.dumps(e).encode()) for e in events),
    )


def send_legacy(settings: KafkaSettings, events: Iterable[Mapping[str, Any]]) -> None:
    """As the first layout's relay sent them (before issue 13): on a family topic, keyed by
    child (key events on the registration topic, the rest on the incident topic is enough to
    spread a chain over topics and partitions)."""
    events = list(events)
    legacy = settings.topics.legacy_events()
    ensure_topics(settings, legacy)

    def topic(event: Mapping[str, Any]) -> str:
        family = "registration" if event["type"].startswith("agency.") else "incident"
        return f"{settings.topics.prefix}.{family}"

    send_raw(settings, ((topic(e), e["subject"].encode(), json.dumps(e).encode()) for e in events))


def count(url: str, sql: str) -> int:
    database = make_url(url).database
    if url.startswith("sqlite") and database and not Path(database).exists():
        return 0  # connecting would create it 0644, and the projector refuses state open to others
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:  # tables may not exist yet while the projector starts
        return 0
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the projector derives, minus wall-clock columns: equal for equal histories."""
    queries = {
        "accepted": "SELECT event_id, source, sequence, subject, digest FROM ledger_accepted"
        " ORDER BY event_id",
        "children": "SELECT child, dob, event_count, gp_practices, schools FROM view_children ORDER BY child",
        "people": "SELECT child, person, roles, gp_practices FROM view_people ORDER BY child, person",
        "agencies": "SELECT child, agency, via FROM view_agencies ORDER BY child, agency",
        "flags": "SELECT id, rule, child, status, changes FROM flags ORDER BY id",
        "events": "SELECT count(*) FROM ledger_events",
    }
    engine = create_engine(url)
    with engine.connect() as conn:
        result = {name: [tuple(r) for r in conn.execute(text(q))] for name, q in queries.items()}
    engine.dispose()
    return result


class ServiceProcess:
    """An `sgledger` service as its own process, exactly as an operator runs it; its stderr goes
    to a file so a test that fails can say why the process died."""

    def __init__(self, command: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.log = log
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sgledger", *command],
                env=dict(env),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text()[-2000:]
            raise AssertionError(f"{type(self).__name__} exited {self.process.returncode}: {tail}")

    def pause(self) -> None:
        """SIGSTOP: the process holds what it has polled and does nothing until `resume`, so a
        test can leave work unprojected however fast the projector has become."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.resume()  # a paused process would not act on SIGTERM until continued
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ProjectorProcess(ServiceProcess):
    """`sgledger project` (both stages) consuming the topics."""

    def __init__(
        self,
        settings: KafkaSettings,
        database_url: str,
        keys_dir: Path,
        group: str,
        log: Path,
        *options: str,
    ) -> None:
        env = {
            **os.environ,
            "SGLEDGER_KAFKA_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
            "SGLEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
            "SGLEDGER_KAFKA_MAX_POLL_INTERVAL_MS": str(settings.max_poll_interval_ms),
            "SGLEDGER_KAFKA_PARTITIONS": str(settings.partitions),
            "SGLEDGER_KAFKA_REPLICATION_FACTOR": str(settings.replication_factor),
        }
        command = ["--bootstrap-servers", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix]
        command += ["--database-url", database_url, "--keys-dir", str(keys_dir)]
        command += [*(["--log-format", "json"] if options else []), "project", "--group", group, *options]
        super().__init__(command, log, env)


def wait_for_count(url: str, expected: int, timeout_s: float, *processes: ProjectorProcess) -> None:
    """Until ledger_accepted holds ``expected`` rows; fails at once if a projector died."""
    deadline = time.monotonic() + timeout_s
    while count(url, "SELECT count(*) FROM ledger_accepted") < expected:
        for process in processes:
            process.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expected} accepted events")
        time.sleep(0.1)
