"""Fixtures shared by the long-history tests of the child projection."""

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The live database of a long-history test: a SQLite file, or a private PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    url: str = request.getfixturevalue("postgres_db")
    return url
