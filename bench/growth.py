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
should not depend on S.

Large ledgers are slow to generate (~2,500 events/s), so a generated padded ledger is kept in
``--cache`` (default: the user's cache dir, never the repository) with the keys that signed it
and its chains' positions, and copied before each measurement (the measurement appends to it).
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    clock_at = [at]
    applier = Applier(ledger, signers.root_key(), clock=lambda: clock_at[0])
    timings: list[float] = []
    cpu: list[float] = []
    for b in range(batches + 1):
        messages = []
        for c in range(children):
            at += timedelta(seconds=30)
            event = life_event(signers, f"C-{c:05d}", start_n + b, at)
            messages.append(Message(json.dumps(event).encode()))
        clock_at[0] = at + timedelta(minutes=1)
        started, cpu_started = time.perf_counter(), time.process_time()
        stats = applier.apply(messages)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        if stats.accepted != children:
            raise RuntimeError(f"expected {children} accepted, got {stats}")
        if b:  # the first batch is the warm-up: it builds every view and flag for the first time
            timings.append(seconds)
            cpu.append(cpu_seconds)
    return timings, cpu


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


def ledger_run(cache: Path, work: Path, size: int, batches: int, progress: bool) -> dict[str, Any]:
    """A padded ledger of ``size`` events from the cache (generated once), copied, measured."""
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
    events = ledger.count()
    timings, cpu = measure(
        ledger,
        Signers.load(state["signers"]),
        MEASURED_CHILDREN,
        LEDGER_HISTORY,
        datetime.fromisoformat(state["at"]),
        batches,
    )
    ledger.engine.dispose()
    copy.unlink()
    return {
        "ledger_events": events,
        "children": MEASURED_CHILDREN,
        "prior_events": LEDGER_HISTORY,
        "batches": batches,
        "ms_per_batch": round(1000 * sum(timings) / len(timings), 1),
        "cpu_ms_per_batch": round(1000 * sum(cpu) / len(cpu), 1),
        "ms_per_event": round(1000 * sum(timings) / (len(timings) * MEASURED_CHILDREN), 2),
        "generated_s": generated_s,
    }


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
        result["ledger"] = []
        for size in args.ledger_sizes:
            run = ledger_run(args.cache, Path(tmp), size, args.batches, progress=not args.json)
            result["ledger"].append(run)
            say(
                f"ledger {run['ledger_events']:>9,}: {run['ms_per_batch']:8.1f} ms/batch, "
                f"{run['cpu_ms_per_batch']} CPU"
            )
    histories, ledgers = result["history"], result["ledger"]
    if len(histories) > 1:
        for unit in ("ms_per_event", "cpu_ms_per_event"):
            result[f"history_ratio_last_to_first_{unit}"] = round(histories[-1][unit] / histories[0][unit], 2)
    if len(ledgers) > 1:
        for unit in ("ms_per_batch", "cpu_ms_per_batch"):
            result[f"ledger_ratio_last_to_first_{unit}"] = round(ledgers[-1][unit] / ledgers[0][unit], 2)
    if histories:  # the projector's rate as a fraction of raw verification, wall and CPU
        result["first_history_rate_vs_raw_verify"] = round(1000 / histories[0]["ms_per_event"] / one, 4)
        result["first_history_cpu_rate_vs_raw_verify_cpu"] = round(
            1000 / histories[0]["cpu_ms_per_event"] / one_cpu, 4
        )
    result["peak_memory_mb"] = round(peak_memory_mb())
    print(json.dumps(result, indent=2) if args.json else f"peak memory: {result['peak_memory_mb']} MB")


if __name__ == "__main__":
    main()
