"""Where state lives and which broker to use: options, then environment, then defaults.

The single-machine default keeps everything in one data directory (SQLite files and keys) and
starts the embedded broker; ``--bootstrap-servers`` (or SGLEDGER_BOOTSTRAP_SERVERS) switches
every command to a real Kafka, ``--database-url`` to PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ledger.private_files import private_directory
from ledger.topics import DEFAULT_PREFIX


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("sgledger", appauthor=False))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    outbox_url: str
    keys_dir: Path
    bootstrap_servers: str | None  # None: the embedded broker
    topic_prefix: str = DEFAULT_PREFIX

    @classmethod
    def resolve(
        cls,
        data_dir: Path | None = None,
        database_url: str | None = None,
        outbox_url: str | None = None,
        keys_dir: Path | None = None,
        bootstrap_servers: str | None = None,
        topic_prefix: str | None = None,
    ) -> Settings:
        data = Path(data_dir) if data_dir else default_data_dir()
        return cls(
            data_dir=data,
            database_url=database_url or f"sqlite:///{data / 'ledger.sqlite'}",
            outbox_url=outbox_url or f"sqlite:///{data / 'outbox.sqlite'}",
            keys_dir=Path(keys_dir) if keys_dir else data / "keys",
            bootstrap_servers=bootstrap_servers or None,
            topic_prefix=topic_prefix or DEFAULT_PREFIX,
        )

    @property
    def embedded(self) -> bool:
        return self.bootstrap_servers is None

    def ensure_data_dir(self) -> None:
        """Created 0700, or refused if it exists open to other users (ledger.private_files)."""
        private_directory(self.data_dir)


def shown(url: str) -> str:
    """A database URL to print: the password as ``***``. Services print where they write at
    start, and their output is what a log collector keeps."""
    from sqlalchemy import make_url  # here: every command imports this module, few print a URL

    return make_url(url).render_as_string(hide_password=True)
