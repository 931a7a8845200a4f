"""Shared fixtures: one real broker per session, real PostgreSQL, a temporary key store.

No mocks: integration tests run the Kafka protocol against tansu (or the Kafka named by
KAFKA_BOOTSTRAP) and SQL against SQLite files and a real PostgreSQL. Isolation comes from names,
not restarts: every test gets its own topic prefix, and PostgreSQL tests their own database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """KAFKA_BOOTSTRAP if set (a real Kafka), else one tansu broker for the whole session."""
    from transport.broker import EmbeddedBroker

    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Per-test topics (unique prefix) and short timeouts: a group join then takes ~1 s on
    tansu, and a broker that is down fails a test in seconds rather than minutes."""
    from transport.kafka import KafkaSettings

    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=6,
        session_timeout_ms=2000 if "KAFKA_BOOTSTRAP" not in os.environ else 6000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=10_000,
        request_timeout_ms=5000,
        max_block_ms=5000,
        delivery_timeout_ms=10_000,
        bootstrap_timeout_ms=5000,
    )


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
    """URL of a PostgreSQL maintenance database; skips PostgreSQL tests when there is none."""
    url = os.environ.get("SGLEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if not _server_reachable(url):
        _start_local_postgres()
        if not _server_reachable(url):
            pytest.skip(f"PostgreSQL not reachable at {url} (set SGLEDGER_TEST_POSTGRES_URL)")
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
