"""Issue 9 items 2-4 at the command line: real processes, real files, real SQLite errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import sgledger

pytestmark = pytest.mark.kafka


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_a_refused_agency_name_leaves_nothing_behind(tmp_path: Path) -> None:
    """`agency add 'police/../../x'` wrote its key file, then the ledger refused the
    registration: the file stayed. Now the name is refused before anything is written."""
    sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset")
    before = tree(tmp_path)
    for name in ("police/../../x", "police/x\n", "police/" + "a" * 300):
        result = sgledger(tmp_path, "agency", "add", name, ok=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and "is not a valid agency id" in result.stderr
        assert "Traceback" not in result.stderr
        assert tree(tmp_path) == before, name


def test_a_malformed_partnership_id_is_refused_before_any_key_exists(tmp_path: Path) -> None:
    result = sgledger(tmp_path, "keys", "init", "--partnership", "partnership/x\n", ok=False)
    assert result.returncode == 2 and "is not a valid agency id" in result.stderr
    assert not (tmp_path / "keys").exists() or tree(tmp_path / "keys") == {}
