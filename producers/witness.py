"""An agency's witness: cosign the partnership's checkpoints only if they extend what it saw before.

A witness is what makes the partnership's history hard to rewrite: the partnership's own
administrators hold the database and the log key, so a checkpoint signed by the log alone proves
nothing against them; a checkpoint cosigned by agencies that each checked a consistency proof
from the last size they saw cannot be followed by a shorter or different history without some
agency's kept copy exposing it.

The protocol is C2SP tlog-witness ``add-checkpoint`` (c2sp.org/tlog-witness): a request is
``old <size>``, the base64 consistency-proof lines, a blank line, then the signed checkpoint; the
answer is a cosignature/v1 line. Refusals carry the HTTP status that specification assigns, so
the agency's HTTP gateway (producers/gateway) can answer with it and ``sgledger witness`` can
print it. State (the witness key, the trusted log keys, the latest cosigned checkpoint of each
log, and every checkpoint it cosigned) lives in one private directory, updated under a file lock
so a gateway's concurrent requests cannot both advance from the same old size.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ledger.checkpoint import AddCheckpoint
from ledger.checkpoint_store import CheckpointStore
from ledger.merkle import empty_root, verify_consistency
from ledger.notes import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteError,
    Signature,
    VerifierKey,
    check_key_name,
    cosign,
    signature_of,
    verify_note,
)
from ledger.private_files import private_directory, private_file


class WitnessRefusal(Exception):
    """The witness will not cosign; ``status`` is the tlog-witness HTTP status for the reason."""

    def __init__(self, status: int, message: str, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body  # for 409: the size the witness last cosigned, as the spec's response body


class WitnessError(Exception):
    """The witness directory is missing or unusable (not a refusal of a checkpoint)."""


class Witness:
    """One agency's witness, kept in ``directory`` (0700): ``witness.key`` (0600), ``state.json``
    and ``cosigned/<origin>/<size>.checkpoint`` (every checkpoint it cosigned, with all
    signatures it carried: the agency's own copy of the partnership's history)."""

    KEY_FILE = "witness.key"
    STATE_FILE = "state.json"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        state = self._read_state()
        self.name: str = state["name"]
        private_directory(self.directory)  # it holds a private key: refused if open to others
        key_path = private_file(self.directory / self.KEY_FILE)
        key = load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise WitnessError(f"{self.directory / self.KEY_FILE} does not hold an Ed25519 key")
        self._key = key

    @classmethod
    def create(cls, directory: Path, name: str) -> Witness:
        """A new witness key named ``name`` (a schema-less URL, e.g. ``gp.L85001.example/witness``)."""
        directory = Path(directory)
        if (directory / cls.KEY_FILE).exists():
            raise WitnessError(f"a witness already exists in {directory}")
        check_key_name(name)
        private_directory(directory)
        key = Ed25519PrivateKey.generate()
        fd = os.open(directory / cls.KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        _write_json(directory / cls.STATE_FILE, {"name": name, "logs": {}})
        return cls(directory)

    @property
    def vkey(self) -> VerifierKey:
        """What the partnership and auditors are given to check this witness's cosignatures."""
        return VerifierKey(self.name, COSIGNATURE_V1, self._key.public_key())

    def trust(self, log_key: VerifierKey) -> None:
        """Cosign checkpoints of the log whose origin is the key's name, signed by this key."""
        if log_key.sig_type != ED25519:
            raise WitnessError(f"{log_key.name}: a log key must be an Ed25519 note key (type 0x01)")
        with self._locked() as state:
            log = state["logs"].setdefault(log_key.name, {"keys": [], "size": 0, "root": None})
            if str(log_key) not in log["keys"]:
                log["keys"].append(str(log_key))

    def logs(self) -> dict[str, dict[str, Any]]:
        """Origin -> trusted keys and the latest cosigned size and root (base64)."""
        return dict(self._read_state()["logs"])

    def add_checkpoint(self, body: str | bytes, now: int | None = None) -> Signature:
        """Check one ``add-checkpoint`` request as tlog-witness says and cosign it, or refuse."""
        try:
            request = AddCheckpoint.parse(body)
        except NoteError as exc:
            raise WitnessRefusal(400, f"malformed request: {exc}") from exc
        checkpoint, note = request.checkpoint, request.note
        with self._locked() as state:
            log = state["logs"].get(checkpoint.origin)
            if log is None or not log["keys"]:
                raise WitnessRefusal(404, f"unknown log {checkpoint.origin!r}: not trusted by this witness")
            self._check_signature(note, [VerifierKey.parse(k) for k in log["keys"]])
            if request.old_size > checkpoint.size:
                raise WitnessRefusal(
                    400, f"old size {request.old_size} is larger than the checkpoint's {checkpoint.size}"
                )
            if request.old_size != log["size"]:
                raise WitnessRefusal(
                    409,
                    f"proof is from size {request.old_size} but this witness last cosigned size "
                    f"{log['size']} of {checkpoint.origin}",
                    f"{log['size']}\n",
                )
            if checkpoint.size == 0 and checkpoint.root_hash != empty_root():
                raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty tree's root")
            old_root = base64.b64decode(log["root"]) if log["root"] else empty_root()
            if request.old_size == 0 and request.proof:
                raise WitnessRefusal(422, "a proof from size 0 must be empty")
            if request.old_size and not verify_consistency(
                request.old_size, checkpoint.size, old_root, checkpoint.root_hash, request.proof
            ):
                raise WitnessRefusal(
                    422,
                    f"{checkpoint.origin} at size {checkpoint.size} is not consistent with size "
                    f"{request.old_size} this witness cosigned: the history was rewritten",
                )
            line = cosign(note, self.name, self._key, int(time.time()) if now is None else now)
            log["size"], log["root"] = checkpoint.size, base64.b64encode(checkpoint.root_hash).decode()
            CheckpointStore(self.directory / "cosigned").save(note.with_signature(line))
        return line

    @staticmethod
    def _check_signature(note: Note, keys: list[VerifierKey]) -> None:
        known = [k for k in keys if signature_of(note, k) is not None]
        if not known:
            raise WitnessRefusal(403, "checkpoint carries no signature by a log key this witness trusts")
        for key in known:  # a known key whose signature fails makes the whole note bad
            try:
                verify_note(note, key)
            except NoteError as exc:
                raise WitnessRefusal(403, str(exc)) from exc

    def keep_refused(self, body: bytes | str, why: str) -> Path:
        """Keep a refused request as evidence (a forked or forged checkpoint is worth showing)."""
        folder = self.directory / "refused"
        folder.mkdir(exist_ok=True, mode=0o700)
        path = folder / f"{time.time_ns()}.request"
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        path.write_text(f"# {why}\n{text}", "utf-8")
        return path

    # -- state ------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        path = self.directory / self.STATE_FILE
        if not path.exists():
            raise WitnessError(f"no witness in {self.directory}: run `sgledger witness init`")
        state: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return state

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and write the state under an exclusive lock; an
        exception (a refusal) leaves the state as it was."""
        with open(self.directory / "state.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read_state()
            yield state
            _write_json(self.directory / self.STATE_FILE, state)


def answer(witness: Witness, body: str | bytes) -> tuple[int, str, str]:
    """The tlog-witness HTTP answer to an ``add-checkpoint`` body: (status, content type, body).

    For the agency's gateway, so that it maps nothing itself: 200 with the cosignature line, 409
    with the size last cosigned as ``text/x.tlog.size``, any other refusal with its sentence."""
    try:
        line = witness.add_checkpoint(body)
    except WitnessRefusal as exc:
        if exc.status == 409:
            return 409, "text/x.tlog.size", exc.body
        return exc.status, "text/plain; charset=utf-8", f"{exc}\n"
    return 200, "text/plain; charset=utf-8", line.line()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
