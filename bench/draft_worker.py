"""CPU per draft of the gateway's draft worker alone, step by step, beside one signature.

    python bench/draft_worker.py [--drafts 3000] [--repeats 7] [--ndjson] [--json]

The draft worker (producers/gateway/worker.py) reads a batch body, checks and prepares every
draft and sends them to the serving process in pickled chunks; on two cores a batch can go no
faster than the busier of the two processes, so its CPU per draft is what bounds the gateway's
batch rate once the serving process is down to its signature (issue 11, docs/gateway.md). This
runs its steps in this process on ``bench/gateway.py``'s drafts, by CPU time, the least of
``--repeats`` runs (a shared host's load only ever adds):

- ``read``: the body item by item (``stream_items``, as the worker reads it);
- ``check``: every draft checked and prepared (``checked_item``: ``Preparer.prepare_json``);
- ``check_general``: the same by the general path (``draft_from_json`` then ``prepare``), which
  the quick path must agree with and which it replaced for the common shape;
- ``frame_pickle``: the prepared drafts framed and pickled in chunks as the worker sends them;
- ``worker``: all of it in one pass, as ``bench/gateway.py --bound`` measures it.

``sign`` is one libsodium signature's CPU time in the same run, and ``worker_per_signature``
the worker's CPU per draft in signatures. Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gateway import AGENCY, draft
from bench.machine import describe, sign_rate
from ledger.keystore import Keystore
from producers.gateway.drafts import checked_item, stream_items
from producers.gateway.worker import CHUNK, framed
from producers.sdk import Preparer, Producer, draft_from_json


def cpu_us_per_draft(call: Callable[[], object], count: int, repeats: int) -> float:
    """The least CPU time of ``repeats`` calls, in microseconds per draft."""
    least = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        call()
        least = min(least, time.process_time() - started)
    return round(1e6 * least / count, 2)


def steps(preparer: Preparer, count: int, repeats: int, ndjson: bool) -> dict[str, float]:
    drafts = [draft(n) for n in range(count)]
    body = (b"\n".join(json.dumps(d).encode() for d in drafts)) if ndjson else json.dumps(drafts).encode()
    items = list(stream_items(body, ndjson))
    prepared = [checked_item(preparer, i, item)[0] for i, item in enumerate(items)]
    if any(p is None for p in prepared):
        raise SystemExit("a benchmark draft was refused")

    def general() -> None:
        for item in items:
            built, _ = draft_from_json(item)
            assert built is not None
            preparer.prepare(built)

    def send(ready: list[Any]) -> None:
        for start in range(0, count, CHUNK):
            pickle.dumps([framed(p) for p in ready[start : start + CHUNK]], protocol=pickle.HIGHEST_PROTOCOL)

    def worker() -> None:
        send([checked_item(preparer, i, item)[0] for i, item in enumerate(stream_items(body, ndjson))])

    runs = (count, repeats)
    return {
        "read": cpu_us_per_draft(lambda: list(stream_items(body, ndjson)), *runs),
        "check": cpu_us_per_draft(lambda: [checked_item(preparer, i, x) for i, x in enumerate(items)], *runs),
        "check_general": cpu_us_per_draft(general, *runs),
        "frame_pickle": cpu_us_per_draft(lambda: send(prepared), *runs),
        "worker": cpu_us_per_draft(worker, *runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=3000, help="drafts per body")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each step (the least is kept)")
    parser.add_argument("--ndjson", action="store_true", help="an NDJSON body instead of a JSON array")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sgledger-bench-draft-worker-") as tmp:
        keystore = Keystore(Path(tmp) / "keys")
        keystore.init_root("partnership/bench")
        keystore.create_agency_key(AGENCY)
        producer = Producer(AGENCY, keystore, f"sqlite:///{tmp}/outbox.sqlite")
        measured = steps(producer.preparer, args.drafts, args.repeats, args.ndjson)
        producer.outbox.close()
    sign_us = 1e6 / sign_rate(2.0, library="libsodium", clock=time.process_time)
    result = {
        "machine": describe(),
        "drafts": args.drafts,
        "body": "ndjson" if args.ndjson else "json-array",
        **{f"{k}_cpu_us_per_draft": v for k, v in measured.items()},
        "sign_cpu_us_libsodium": round(sign_us, 2),
        "worker_per_signature": round(measured["worker"] / sign_us, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    for key, value in measured.items():
        print(f"{key:14s} {value:6.2f} us CPU per draft")
    share = result["worker_per_signature"]
    print(f"one libsodium signature {sign_us:.2f} us CPU: the worker costs {share} of one")


if __name__ == "__main__":
    main()
