"""What the benchmark ran on and the machine's raw limits, printed beside every figure.

Ed25519 verification is the ingest ceiling (every event is verified once), canonical JSON the
next; the benchmarks print both so a reader can see how close the pipeline gets to them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import canonical_forms, canonical_json
from ledger.signing import Signer, b64url_decode, signature_valid
from ledger.validation import validate_event


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def _rate(operation: Callable[[], object], seconds: float, clock: Callable[[], float]) -> float:
    """Calls of ``operation`` per second of ``clock`` (wall or this process's CPU time)."""
    count, start = 0, clock()
    while clock() - start < seconds:
        for _ in range(200):
            operation()
        count += 200
    return count / (clock() - start)


def _verifier() -> Callable[[], object]:
    key = Ed25519PrivateKey.generate()
    message = b"x" * 300
    signature, public = key.sign(message), key.public_key()
    return lambda: public.verify(signature, message)


def verify_rate(seconds: float = 1.0) -> float:
    """Raw Ed25519 verifications per second on one core (cryptography), over 300-byte messages."""
    return _rate(_verifier(), seconds, time.perf_counter)


def verify_rate_cpu(seconds: float = 1.0) -> float:
    """Raw Ed25519 verifications per second of this process's CPU time: on a host shared with
    other work, wall-clock rates fall with the load, CPU-time rates much less so."""
    return _rate(_verifier(), seconds, time.process_time)


def sign_rate(
    seconds: float = 1.0, *, library: str = "cryptography", clock: Callable[[], float] = time.perf_counter
) -> float:
    """Raw Ed25519 signatures per second on one core, over 300-byte messages: the ceiling of
    anything that signs events. ``library``: ``cryptography`` (OpenSSL) or ``libsodium``
    (PyNaCl, what the producer SDK and the gateway sign with: ``ledger.signing.Signer``);
    ``clock``: wall (``time.perf_counter``) or this process's CPU time (``time.process_time``)."""
    key = Ed25519PrivateKey.generate()
    sign = {"cryptography": key.sign, "libsodium": Signer(key).sign}[library]
    return _rate(lambda: sign(b"x" * 300), seconds, clock)


def verify_rate_all_cores(seconds: float = 1.0) -> float:
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        return sum(pool.map(verify_rate, [seconds] * cores))


def canonical_rate(sample: Any, seconds: float = 1.0) -> float:
    """RFC 8785 serialisations per second of a representative event (pure Python)."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            canonical_json(sample)
        count += 100
    return count / (time.perf_counter() - start)


def stage_costs_us(event: dict[str, Any], public: Any, repeat: int = 300) -> dict[str, float]:
    """CPU microseconds per event of each step verification takes, on one signed ``event`` and
    its agency's ``public`` key: what bounds the projector and the audit from below."""
    raw = json.dumps(event).encode()
    _, signed = canonical_forms(event)
    steps: dict[str, Callable[[], object]] = {
        "json_parse": lambda: json.loads(raw),
        "schema_compiled": lambda: validate_event(event),
        "canonical_one_pass": lambda: canonical_forms(event),
        "ed25519_verify_pynacl": lambda: signature_valid(event, public, signed),
        "ed25519_verify_cryptography": lambda: public.verify(b64url_decode(event["signature"]), signed),
    }
    costs = {}
    for name, step in steps.items():
        step()
        start = time.process_time()
        for _ in range(repeat):
            step()
        costs[name] = round(1e6 * (time.process_time() - start) / repeat, 1)
    return costs


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
