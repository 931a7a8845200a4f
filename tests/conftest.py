"""Shared fixtures: one real broker per session, real PostgreSQL, a temporary key store.

No mocks: integration tests run the Kafka protocol against tansu (or the Kafka named by
KAFKA_BOOTSTRAP) and SQL against SQLite files and a real PostgreSQL. Isolation comes from names,
not restarts: every test gets its own topic prefix, and PostgreSQL tests their own database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ledger.keystore import Keystore

if TYPE_CHECKING:
    from transport.kafka import KafkaSettings

PARTNERSHIP = "partnership/test"


def pytest_configure(config: pytest.Config) -> None:
    """kafka-python 3 loads its protocol schemas with the legacy importlib.resources API; the
    warnings are attributed to importlib, so pyproject's ``kafka.*`` module filter misses them.
    (Hence also the imports inside the fixtures: kafka must not load before this filter.)"""
    config.addinivalue_line("filterwarnings", r"ignore:(open|read)_text is deprecated:DeprecationWarning")


DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _brokers() -> list[str]:
    """Which brokers the Kafka tests run on: KAFKA_BOOTSTRAP (an external cluster) alone if set,
    else both tansu (the embedded default) and Apache Kafka, or those SGLEDGER_TEST_BROKERS names
    (comma-separated: ``tansu``, ``kafka``). Test ids carry the name, so ``-k tansu`` works too."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return ["external"]
    names = os.environ.get("SGLEDGER_TEST_BROKERS", "tansu,kafka").split(",")
    chosen = [b.strip() for b in names if b.strip()]
    unknown = set(chosen) - {"tansu", "kafka"}
    if unknown or not chosen:
        raise pytest.UsageError(f"SGLEDGER_TEST_BROKERS: expected tansu and/or kafka, got {sorted(unknown)}")
    return chosen


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine, fail in CI: there a missing service is a broken setup
    (`scripts/services` installs and starts them all), never a reason to pass with less tested."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set: a missing service fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Broker:
    kind: str  # tansu | kafka | external
    bootstrap_servers: str


@pytest.fixture(scope="session", params=_brokers())
def kafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker of each kind per session (per xdist worker): tansu, or a one-node Apache Kafka
    (KRaft) from the jars `scripts/services kafka` fetched, or the cluster KAFKA_BOOTSTRAP names."""
    kind = request.param
    if kind == "external":
        yield Broker(kind, os.environ["KAFKA_BOOTSTRAP"])
    elif kind == "tansu":
        from transport.broker import EmbeddedBroker

        with EmbeddedBroker(tmp_path_factory.mktemp("tansu")) as broker:
            yield Broker(kind, broker.bootstrap_servers)
    else:
        from tests.apache_kafka import KafkaCluster, kafka_available

        reason = kafka_available()
        if reason:
            unavailable(reason)
        with KafkaCluster(tmp_path_factory.mktemp("kafka")) as cluster:
            yield Broker(kind, cluster.bootstrap_servers)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def kafka_settings(kafka_broker: Broker) -> Iterator[KafkaSettings]:
    """Per-test topics (unique prefix), deleted afterwards, and short timeouts: a group join then
    takes ~1 s on tansu, and a broker that is down fails a test in seconds rather than minutes.
    The Apache Kafka the tests start accepts 2000 ms sessions (its group.min.session.timeout.ms
    is lowered); an external cluster keeps Kafka's floor of 6000."""
    from transport.kafka import KafkaSettings, delete_topics

    settings = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=6,
        session_timeout_ms=6000 if kafka_broker.kind == "external" else 2000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=10_000,
        request_timeout_ms=5000,
        max_block_ms=5000,
        delivery_timeout_ms=10_000,
        bootstrap_timeout_ms=5000,
    )
    yield settings
    # Thousands of leftover partitions slow a real broker down over a session (each is files
    # and memory maps); tansu keeps them in memory. Best effort: a test may have stopped it.
    with contextlib.suppress(Exception):
        delete_topics(settings, settings.topic_prefix + ".")


def _server_reachable(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def _start_local_postgres() -> None:
    """Best effort on a Debian-style host: start every stopped cluster we can see."""
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return
    for version_dir in sorted(Path("/etc/postgresql").iterdir()):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version_dir.name, "main", "start"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of a PostgreSQL maintenance database; skips PostgreSQL tests when there is none
    (fails them when CI is set)."""
    url = os.environ.get("SGLEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if not _server_reachable(url):
        _start_local_postgres()
        if not _server_reachable(url):
            unavailable(
                f"PostgreSQL not reachable at {url}: run `bash scripts/services postgres`"
                " or set SGLEDGER_TEST_POSTGRES_URL"
            )
    return url


def _create_database(server: str) -> tuple[str, str]:
    name = f"sgledger_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False), name


def _drop_database(server: str, name: str) -> None:
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def allow_connections(server: str, database: str, allowed: bool) -> None:
    """An outage of one database on the shared server: refuse new sessions and end the open
    ones (as a restart of the server would), or let them in again."""
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            ends = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
            conn.execute(text(ends), {"name": database})
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database created for this session and dropped at its end."""
    url, name = _create_database(postgres_server)
    yield url
    _drop_database(postgres_server, name)


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test (creation takes ~0.1-0.3 s)."""
    url, name = _create_database(postgres_server)
    yield url
    _drop_database(postgres_server, name)


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    """A key store holding a root key for ``partnership/test``."""
    store = Keystore(tmp_path / "keys")
    store.init_root(PARTNERSHIP)
    return store
