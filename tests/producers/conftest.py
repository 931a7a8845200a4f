"""The outbox must behave the same on its default SQLite file and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.keystore import Keystore

POLICE = "police/avon-somerset"
GP = "gp/L85001"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.sqlite'}"
    return str(request.getfixturevalue("postgres_db"))


@pytest.fixture
def agencies(keystore: Keystore) -> Keystore:
    """The shared key store plus keys for a police force and a GP practice."""
    keystore.create_agency_key(POLICE)
    keystore.create_agency_key(GP)
    return keystore
