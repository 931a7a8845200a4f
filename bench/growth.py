"""Does the projector's cost per event grow with a child's history, or with the ledger's size?

    python bench/growth.py [--json] [--histories 10 100 500 1000] [--children 20]
                           [--ledger-sizes 10000 1000000] [--batches 2] [--cache DIR]

Live traffic arrives as one new event per child per batch, so that is what is timed: for each
history length H, ``--children`` children with H prior events each are written straight into a
SQLite ledger (``Ledger.record``, as ``bench/audit.py`` does: generating through Kafka would take
longer than the measurement), one warm-up batch of one event per child builds their views and
flags, and then ``--batches`` batches of one new event per child go through the projector's
``Applier`` (verification, acceptance, view rebuild, rules, flag sync). The figure is ms per
event. For each ledger size S, the same is done for 100 children with 10 prior events each in a
ledger padded to S events by other children's registrations: the figure is ms per batch, which
should not depend on S. The sizes take turns batch by batch (so a change in the host's load
falls on all of them), and each size reports its mean, median, least and most CPU per batch;
batch b does the same work at every size, so the ratio is also given batch by batch (its
median: ``ledger_paired_ratio_median``). Batch b gives every child the (10 + b)-th event of the
mix below, whose kinds repeat every 6 batches: ask for a multiple of 6 (``--batches 24``) so
every kind weighs alike.

Large ledgers are slow to generate (~2,500 events/s), so a generated padded ledger is kept in
``--cache`` (default: the user's cache dir, never the repository) with the keys that signed it
and its chains' positions, and copied before each measurement (the measurement appends to it).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from platformdirs import user_cache_dir

from bench.audit import opened, write_batch
from bench.machine import describe, peak_memory_mb, verify_rate, verify_rate_cpu
from consumers.projector.applier import Applier, Message
from ledger.envelope import ChainSigner
from ledger.keyregistry import RootKey
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Acceptance, Ledger

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001", "phn/somerset")
PARTNERSHIP = "partnership/bench"
T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
BATCH = 5000
MEASURED_CHILDREN = 100  # children measured in the ledger-size runs, 10 prior events each
LEDGER_HISTORY = 10


@dataclass
class Signers:
    """The partnership and agency signers of one generated ledger, with their chain positions."""

    root: ChainSigner
    agencies: dict[str, ChainSigner]

    @classmethod
    def fresh(cls) -> Signers:
        return cls(
            ChainSigner(PARTNERSHIP, Ed25519PrivateKey.generate()),
            {a: ChainSigner(a, Ed25519PrivateKey.generate()) for a in AGENCIES},
        )

    def root_key(self) -> RootKey:
        return RootKey(PARTNERSHIP, self.root.key.public_key())

    def registrations(self) -> Iterator[dict[str, Any]]:
        for agency, signer in self.agencies.items():
            public = signer.key.public_key()
            data = {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)}
            yield self.root.sign("agency.key.registered", data, subject=agency, at=T0 - timedelta(days=1))

    def dump(self) -> dict[str, Any]:
        def one(signer: ChainSigner) -> dict[str, Any]:
            raw = signer.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            return {"key": raw.hex(), "sequence": signer.sequence, "prevhash": signer.prevhash}

        return {"root": one(self.root), "agencies": {a: one(s) for a, s in self.agencies.items()}}

    @classmethod
    def load(cls, state: dict[str, Any]) -> Signers:
        def one(source: str, saved: dict[str, Any]) -> ChainSigner:
            signer = ChainSigner(source, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(saved["key"])))
            signer.sequence, signer.prevhash = saved["sequence"], saved["prevhash"]
            return signer

        agencies = {a: one(a, s) for a, s in state["agencies"].items()}
        return cls(one(PARTNERSHIP, state["root"]), agencies)


def life_event(signers: Signers, child: str, n: int, at: datetime) -> dict[str, Any]:
    """The n-th event of a child's history: a varied mix so every kind of rule has work."""
    police, csc = signers.agencies["police/avon-somerset"], signers.agencies["csc/somerset"]
    gp, phn = signers.agencies["gp/L85001"], signers.agencies["phn/somerset"]
    data: dict[str, Any]
    if n == 0:
        data = {"dob": "2023-11-01", "mother": f"P-{child}-m", "father": f"P-{child}-f"}
        return csc.sign("child.registered", data, subject=child, at=at)
    if n == 1:
        return gp.sign("gp.registered", {"person": child, "practice": "L85001"}, subject=child, at=at)
    match n % 6:
        case 0 | 3:
            parties = [
                {"person": f"P-{child}-m", "role": "victim"},
                {"person": f"P-{child}-f", "role": "alleged-perpetrator" if n % 4 else "counter-allegation"},
            ]
            data = {
                "incident_ref": f"INC-{child}-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": parties,
            }
            return police.sign("incident.reported", data, subject=child, at=at)
        case 1:
            data = {"to": "gp/L85001", "about": [f"INC-{child}-{n - 1}"], "channel": "secure email"}
            return police.sign("notification.sent", data, subject=child, at=at)
        case 2:
            data = {"person": f"P-{child}-m", "practitioner": "HV-1", "mode": "in-person"}
            return phn.sign("contact.recorded", data, subject=child, at=at)
        case 4:
            data = {"referral_ref": f"REF-{child}-{n}", "to": "csc/somerset", "reason": "incident"}
            return police.sign("referral.made", data, subject=child, at=at)
        case _:
            data = {
                "referral_ref": f"REF-{child}-{n - 1}",
                "outcome": "nfa",
                "reason": "no further action",
                "persons_contacted": [f"P-{child}-m"],
                "worked_by": "W-1",
                "authorised_by": "W-2",
            }
            return csc.sign("referral.closed", data, subject=child, at=at)


def generate(
    ledger: Ledger, signers: Signers, children: int, history: int, padding: int, progress: bool
) -> datetime:
    """Key registrations, ``history`` events for each measured child (round-robin, as they would
    arrive), then ``padding`` registrations of other children. Returns the last event time."""
    batch: list[Acceptance] = [Acceptance.of(e) for e in signers.registrations()]
    at, written = T0, 0
    for n in range(history):
        for c in range(children):
            at += timedelta(seconds=30)
            batch.append(Acceptance.of(life_event(signers, f"C-{c:05d}", n, at)))
            if len(batch) >= BATCH:
                written += write_batch(ledger, batch, T0)
    csc = signers.agencies["csc/somerset"]
    for p in range(padding):
        at += timedelta(seconds=1)
        batch.append(
            Acceptance.of(csc.sign("child.registered", {"dob": "2022-01-01"}, subject=f"X-{p:07d}", at=at))
        )
        if len(batch) >= BATCH:
            written += write_batch(ledger, batch, T0)
            if progress and written % 100_000 < BATCH:
                print(f"  generated {written:,} events", file=sys.stderr)
    write_batch(ledger, batch, T0)
    return at


def measure(
    ledger: Ledger, signers: Signers, children: int, start_n: int, at: datetime, batches: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``batches`` timed batches of one event per child (after
    one warm-up). SQLite runs in this process, so CPU time covers the whole work."""
    timings: list[float] = []
    cpu: list[float] = []
    for seconds, cpu_seconds in timed_batches(ledger, signers, children, start_n, at, batches):
        timings.append(seconds)
        cpu.append(cpu_seconds)
    return timings, cpu


def timed_batches(
    ledger: Ledger,
    signers: Signers,
    children: int,
    start_n: int,
    at: datetime,
    batches: int,
    *,
    collect: bool = False,
) -> Iterator[tuple[float, float]]:
    """``measure``'s batches one at a time, (wall, CPU) seconds each: the ledger-size runs take
    turns batch by batch (``ledger_runs``). ``collect``: a full garbage collection before each
    batch, outside its time (see ``ledger_runs``)."""
    clock_at = [at]
    applier = Applier(ledger, signers.root_key(), clock=lambda: clock_at[0])
    for b in range(batches + 1):
        messages = []
        for c in range(children):
            at += timedelta(seconds=30)
            event = life_event(signers, f"C-{c:05d}", start_n + b, at)
            messages.append(Message(json.dumps(event).encode()))
        clock_at[0] = at + timedelta(minutes=1)
        if collect:
            gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        stats = applier.apply(messages)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        if stats.accepted != children:
            raise RuntimeError(f"expected {children} accepted, got {stats}")
        if b:  # the first batch is the warm-up: it builds every view and flag for the first time
            yield seconds, cpu_seconds


def history_run(directory: Path, history: int, children: int, batches: int) -> dict[str, Any]:
    ledger = Ledger(f"sqlite:///{directory / f'history-{history}.db'}")
    signers = Signers.fresh()
    started = time.perf_counter()
    at = generate(ledger, signers, children, history, 0, progress=False)
    generated = time.perf_counter() - started
    timings, cpu = measure(ledger, signers, children, history, at, batches)
    ms = 1000 * sum(timings) / (len(timings) * children)
    return {
        "prior_events": history,
        "children": children,
        "batches": batches,
        "ms_per_event": round(ms, 2),
        "cpu_ms_per_event": round(1000 * sum(cpu) / (len(cpu) * children), 2),
        "ms_per_batch": [round(1000 * t, 1) for t in timings],
        "generated_s": round(generated, 1),
    }


def ledger_runs(
    cache: Path, work: Path, sizes: list[int], batches: int, progress: bool
) -> list[dict[str, Any]]:
    """For each size, a padded ledger of that many events from the cache (generated once),
    copied and measured; the sizes take turns batch by batch (10k's first batch, 1M's first,
    10k's second, ...), so a change in the shared host's load between batches falls on every
    size alike instead of on whichever ran while it lasted: one size's mean of 8 batches
    varied 81-127 CPU ms between runs when each size ran its batches in one go. Batch b does
    the same work in every size (the same kind of event for the same 100 children), so the
    runs are also compared batch by batch (``ledger_paired_ratios``). The sizes share this
    process, so Python's full garbage collection (~150 CPU ms with this heap, every ~20 batches)
    would fall in whichever size's batch was running: it runs before each batch instead, outside
    the timing (it walks Python's heap, whose size does not depend on the ledger's)."""
    opened_runs = [_opened_ledger(cache, work, size, progress) for size in sizes]
    series = [
        timed_batches(
            ledger,
            Signers.load(state["signers"]),
            MEASURED_CHILDREN,
            LEDGER_HISTORY,
            datetime.fromisoformat(state["at"]),
            batches,
            collect=True,
        )
        for ledger, state, _, _ in opened_runs
    ]
    timings: list[list[float]] = [[] for _ in sizes]
    cpu: list[list[float]] = [[] for _ in sizes]
    for turn in zip(*series, strict=True):
        for i, (seconds, cpu_seconds) in enumerate(turn):
            timings[i].append(seconds)
            cpu[i].append(cpu_seconds)
    results = []
    for (ledger, _, events, generated_s), wall, spent in zip(opened_runs, timings, cpu, strict=True):
        ledger.engine.dispose()
        Path(ledger.engine.url.database or "").unlink()
        each = [round(1000 * c, 1) for c in spent]
        results.append(
            {
                "ledger_events": events,
                "children": MEASURED_CHILDREN,
                "prior_events": LEDGER_HISTORY,
                "batches": batches,
                "ms_per_batch": round(1000 * sum(wall) / len(wall), 1),
                "cpu_ms_per_batch": round(1000 * sum(spent) / len(spent), 1),
                "cpu_ms_per_batch_median": round(1000 * statistics.median(spent), 1),
                "cpu_ms_per_batch_min": min(each),
                "cpu_ms_per_batch_max": max(each),
                "cpu_ms_each_batch": each,
                "ms_per_event": round(1000 * sum(wall) / (len(wall) * MEASURED_CHILDREN), 2),
                "generated_s": generated_s,
            }
        )
    return results


def _opened_ledger(
    cache: Path, work: Path, size: int, progress: bool
) -> tuple[Ledger, dict[str, Any], int, float | None]:
    """A copy of the cached padded ledger of ``size`` events (generated first if the cache has
    none), opened: the ledger, its signers' state, its event count, the generation's seconds."""
    cache.mkdir(parents=True, exist_ok=True)
    cached_db, cached_state = cache / f"ledger-{size}.db", cache / f"ledger-{size}.json"
    generated_s = None
    if not _cache_complete(cached_db, cached_state, size):
        partial = cache / f"ledger-{size}.partial.db"
        partial.unlink(missing_ok=True)
        signers = Signers.fresh()
        padding = size - len(AGENCIES) - MEASURED_CHILDREN * LEDGER_HISTORY
        started = time.perf_counter()
        generating = Ledger(f"sqlite:///{partial}")
        at = generate(generating, signers, MEASURED_CHILDREN, LEDGER_HISTORY, padding, progress)
        generating.engine.dispose()  # closing the last connection folds the WAL into the file
        generated_s = round(time.perf_counter() - started, 1)
        partial.rename(cached_db)
        cached_state.write_text(json.dumps({"signers": signers.dump(), "at": at.isoformat()}))
        cached_state.chmod(0o600)  # it holds the benchmark signers' private keys
    state = json.loads(cached_state.read_text())
    copy = work / f"ledger-{size}.db"
    shutil.copyfile(cached_db, copy)
    copy.chmod(0o600)  # the ledger refuses a database other local users may read (private_files)
    ledger = opened(f"sqlite:///{copy}")
    return ledger, state, ledger.count(), generated_s


def _cache_complete(db: Path, state_file: Path, size: int) -> bool:
    """A cached ledger is used only if it holds ``size`` events and every chain ends where the
    saved signers continue it (an interrupted or half-written cache is generated again)."""
    if not (db.exists() and state_file.exists()):
        return False
    state = json.loads(state_file.read_text())["signers"]
    expected = {a: s["sequence"] for a, s in state["agencies"].items()}
    expected[PARTNERSHIP] = state["root"]["sequence"]
    ledger = opened(f"sqlite:///{db}")
    try:
        with ledger.read() as session:
            highest = ledger.highest_sequences(session, expected)
        return ledger.count() == size and highest == expected
    finally:
        ledger.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--histories", type=int, nargs="*", default=[10, 100, 500, 1000])
    parser.add_argument("--children", type=int, default=20, help="children per history run")
    parser.add_argument("--ledger-sizes", type=int, nargs="*", default=[10_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=2, help="timed batches per run")
    parser.add_argument(
        "--cache", type=Path, default=Path(user_cache_dir("sgledger-bench")), help="padded ledgers"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    say: Callable[[str], None] = (lambda _: None) if args.json else print
    one, one_cpu = verify_rate(), verify_rate_cpu()
    say(f"machine: {describe()}\nraw Ed25519 verify: {one:,.0f}/s on one core ({one_cpu:,.0f} per CPU s)")
    result: dict[str, Any] = {
        "machine": describe(),
        "raw_verify_per_s_one_core": round(one),
        "raw_verify_per_cpu_s": round(one_cpu),
    }
    with tempfile.TemporaryDirectory(prefix="sgledger-growth-") as tmp:
        result["history"] = []
        for history in args.histories:
            run = history_run(Path(tmp), history, args.children, args.batches)
            result["history"].append(run)
            say(f"history {history:>5}: {run['ms_per_event']:8.2f} ms/event, {run['cpu_ms_per_event']} CPU")
        result["ledger"] = ledger_runs(args.cache, Path(tmp), args.ledger_sizes, args.batches, not args.json)
        if args.ledger_sizes:
            say(f"ledger sizes measured in turns, batch by batch; CPU ms per batch of {args.batches}:")
        for run in result["ledger"]:
            say(
                f"ledger {run['ledger_events']:>9,}: {run['ms_per_batch']:8.1f} ms/batch, CPU mean "
                f"{run['cpu_ms_per_batch']}, median {run['cpu_ms_per_batch_median']} "
                f"(min {run['cpu_ms_per_batch_min']}, max {run['cpu_ms_per_batch_max']})"
            )
    histories, ledgers = result["history"], result["ledger"]
    if len(histories) > 1:
        for unit in ("ms_per_event", "cpu_ms_per_event"):
            result[f"history_ratio_last_to_first_{unit}"] = round(histories[-1][unit] / histories[0][unit], 2)
    if len(ledgers) > 1:
        for unit in ("ms_per_batch", "cpu_ms_per_batch", "cpu_ms_per_batch_median"):
            result[f"ledger_ratio_last_to_first_{unit}"] = round(ledgers[-1][unit] / ledgers[0][unit], 2)
        # batch b of the largest over batch b of the smallest, taken one after the other
        firsts, lasts = ledgers[0]["cpu_ms_each_batch"], ledgers[-1]["cpu_ms_each_batch"]
        paired = [last / first for first, last in zip(firsts, lasts, strict=True)]
        result["ledger_paired_ratios"] = [round(r, 2) for r in paired]
        result["ledger_paired_ratio_median"] = round(statistics.median(paired), 2)
        say(
            f"ledger {ledgers[-1]['ledger_events']:,} / {ledgers[0]['ledger_events']:,}: "
            f"{result['ledger_ratio_last_to_first_cpu_ms_per_batch']}x on the CPU means, "
            f"{result['ledger_ratio_last_to_first_cpu_ms_per_batch_median']}x on the medians, "
            f"{result['ledger_paired_ratio_median']}x the median of the batch-by-batch ratios"
        )
    if histories:  # the projector's rate as a fraction of raw verification, wall and CPU
        result["first_history_rate_vs_raw_verify"] = round(1000 / histories[0]["ms_per_event"] / one, 4)
        result["first_history_cpu_rate_vs_raw_verify_cpu"] = round(
            1000 / histories[0]["cpu_ms_per_event"] / one_cpu, 4
        )
    result["peak_memory_mb"] = round(peak_memory_mb())
    print(json.dumps(result, indent=2) if args.json else f"peak memory: {result['peak_memory_mb']} MB")


if __name__ == "__main__":
    main()
