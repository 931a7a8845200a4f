"""The cyclic garbage collector's pace in the projector's processes (issue 13).

CPython collects its youngest generation every 700 net container allocations and the whole heap
whenever a tenth young collection finds it grown by a quarter. A projector allocates a great deal
and keeps much of it: each message's parsed event, the rows it writes, and (stage ``both`` and
the child stage) every touched child's history and findings. During a replay or a backlog the
heap grows all the time, so full collections kept coming, each walking every object the process
holds. Measured with ``gc.callbacks`` on the ingest replay (10,000 events, 500 children, one
projector process + one verification worker, CPU seconds of the projector process):

| thresholds | collector's CPU, both stages | intake alone |
|---|---|---|
| (700, 10, 10), CPython's default | 1.86-2.43 s of 7.4-8.5 s (22-28%) | 0.40 s of 2.0 s |
| (10000, 10, 100) | 0.61-0.63 s | 0.20-0.25 s |
| (50000, 20, 100), chosen | 0.35-0.54 s | 0.13-0.19 s |

Nothing is turned off: cycles (SQLAlchemy's sessions and results make some) are still found,
only later, and the young generation may hold up to 50,000 container objects before they are
examined (a few megabytes). ``gc.freeze`` was not used: it would pin everything alive at that moment for
the life of the process, which suits a service started once but not the test suite, which builds
many projectors in one process.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def collect_less() -> None:
    """Set the collector's thresholds for a projector's process (module docstring). Idempotent;
    called by every projector process and verification worker."""
    gc.set_threshold(*THRESHOLDS)
