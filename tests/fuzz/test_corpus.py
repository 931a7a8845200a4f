"""Every corpus case (tests/fuzz/corpus.py says the format) replayed through the invariants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.corpus import cases, load
from tests.fuzz.history import History
from tests.fuzz.invariants import run_case

HISTORY = History()


@pytest.mark.parametrize("case", cases(), ids=lambda p: p.stem)
def test_corpus_case(case: Path, tmp_path: Path) -> None:
    run_case(tmp_path, HISTORY.root_key, load(case, HISTORY))


def test_the_corpus_is_there() -> None:
    assert len(cases()) >= 6
