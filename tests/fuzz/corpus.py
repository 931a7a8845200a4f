"""Corpus cases: inputs worth replaying on every run (crashes found, and a few seeds).

A case is a small JSON file ``{"about": "...", "batches": [[message, ...], ...]}``; a message is
one of
- ``{"history": "police/avon-somerset#2"}``: that event of the fixed history, as sent;
- the same with ``"set": {...}`` (attributes replaced) and ``"resign": true`` (signed again
  with the source's key, so the signature verifies over the change);
- ``{"json": value}``: ``value`` serialised by Python's json (so ``2.0`` stays ``2.0``);
- ``{"nest": n}``: ``n`` nested arrays, ``[[[...]]]``;
- ``{"base64": "..."}``: any bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.fuzz.history import History, encode

CORPUS = Path(__file__).parent / "corpus"


def cases() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def load(path: Path, history: History) -> list[list[bytes]]:
    case = json.loads(path.read_text("utf-8"))
    return [[message(m, history) for m in batch] for batch in case["batches"]]


def message(spec: dict[str, Any], history: History) -> bytes:
    if "history" in spec:
        event = {**history.events[spec["history"]], **spec.get("set", {})}
        return encode(history.resign(event) if spec.get("resign") else event)
    if "json" in spec:
        return json.dumps(spec["json"]).encode()
    if "nest" in spec:
        return b"[" * spec["nest"] + b"]" * spec["nest"]
    return base64.b64decode(spec["base64"])
