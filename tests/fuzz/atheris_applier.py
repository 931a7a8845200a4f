"""Coverage-guided fuzzing of ``Applier.apply`` with atheris (libFuzzer), for developers.

    .venv/bin/pip install -e '.[fuzz]'
    PYTHONPATH=. .venv/bin/python tests/fuzz/atheris_applier.py -atheris_runs=20000 /tmp/fuzz-corpus

Each input is one message, sent in a batch after the fixed history's registrations and first
events, on one SQLite ledger for the whole run; the invariants of tests/fuzz/invariants.py are
checked per input (counted, accounted for) and every 500 inputs (the whole ledger re-verified).
A crash leaves its input in ``crash-*``: add it to tests/fuzz/corpus as ``{"base64": ...}``.
Not part of the pytest suite (libFuzzer owns the process); the Hypothesis fuzzer is.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from consumers.projector.applier import Applier, Message
    from ledger.store.ledger import Ledger
    from tests.fuzz.history import History, encode
    from tests.fuzz.invariants import Clock, assert_accounted, assert_counted, assert_ledger_valid

HISTORY = History()
SEEDS = [encode(HISTORY.events[name]) for name in ("partnership/test#1", "partnership/test#2")]
state: dict[str, object] = {}


def applier() -> Applier:
    if "applier" not in state:
        directory = Path(tempfile.mkdtemp(prefix="sgledger-atheris-"))
        ledger = Ledger(f"sqlite:///{directory / 'ledger.sqlite'}")
        state["applier"] = Applier(ledger, HISTORY.root_key, clock=Clock())
        state["runs"] = 0
    found = state["applier"]
    assert isinstance(found, Applier)
    return found


def test_one_input(data: bytes) -> None:
    target = applier()
    batch = [*SEEDS, data]
    assert_counted(len(batch), target.apply([Message(raw) for raw in batch]))
    assert_accounted(target.ledger, [data])
    runs = int(str(state["runs"])) + 1
    state["runs"] = runs
    if runs % 500 == 0:
        assert_ledger_valid(target.ledger, HISTORY.root_key)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
