"""`sgledger demo`: README command 1 on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundled_story_is_the_project_scenario() -> None:
    bundled = ROOT / "sgledger" / "scenarios" / "cspr-child-charlie.json"
    assert bundled.read_bytes() == (ROOT / "scenarios" / "cspr-child-charlie.json").read_bytes()


@pytest.mark.kafka
def test_demo_prints_the_child_view_and_flags(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path), "demo"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Chronology (all agencies)" in out and "People" in out and "Agencies involved" in out
    assert "closure-without-father-contact" in out and "self-authorised-closure" in out
    assert "FAIL" not in out and out.count("PASS") >= 1
    assert (tmp_path / "demo" / "ledger.sqlite").exists()
