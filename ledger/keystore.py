"""Private keys on disk: the partnership root key and one signing key per agency.

Files are created 0600 inside a 0700 directory and are never logged or put in an event; a key
or key store open to other users is refused when read (ledger.private_files). The root
public key is also written as ``root.pub.json`` for auditors, who need nothing else to verify.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ledger.identifiers import InvalidIdentifier, agency_kind
from ledger.keyregistry import RootKey, valid_between
from ledger.private_files import FILE_MODE, private_directory, private_file
from ledger.signing import key_id, load_public_key, public_key_text
from ledger.timeutil import parse_time


class KeystoreError(Exception):
    """A key that should exist does not, or exists when it should not."""


@dataclass(frozen=True)
class RootInfo:
    partnership: str
    kid: str
    public_key: str

    def root_key(self) -> RootKey:
        return RootKey(self.partnership, load_public_key(self.public_key))


@dataclass(frozen=True)
class KeyValidity:
    """An agency key's validity as registered (and revoked) by the root key."""

    valid_from: datetime
    revoked_from: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        return valid_between(self.valid_from, self.revoked_from, when)

    def __str__(self) -> str:
        until = f" until {self.revoked_from.isoformat()}" if self.revoked_from else ""
        return f"from {self.valid_from.isoformat()}{until}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "valid_from": self.valid_from.isoformat(),
            "revoked_from": self.revoked_from.isoformat() if self.revoked_from else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, str | None]) -> KeyValidity:
        revoked = value.get("revoked_from")
        return cls(parse_time(str(value["valid_from"])), parse_time(revoked) if revoked else None)


class Keystore:
    ROOT_FILE = "root.key"
    ROOT_PUBLIC_FILE = "root.pub.json"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- partnership root -------------------------------------------------------------------
    def init_root(self, partnership: str) -> RootInfo:
        if _kind(partnership) != "partnership":
            raise KeystoreError(f"{partnership!r} is not a partnership id: expected partnership/<name>")
        if (self.directory / self.ROOT_FILE).exists():
            raise KeystoreError(f"a root key already exists in {self.directory}")
        key = Ed25519PrivateKey.generate()
        self._write_private(self.directory / self.ROOT_FILE, key)
        info = RootInfo(partnership, key_id(key.public_key()), public_key_text(key.public_key()))
        (self.directory / self.ROOT_PUBLIC_FILE).write_text(
            json.dumps(info.__dict__, indent=2) + "\n", "utf-8"
        )
        return info

    def has_root(self) -> bool:
        return (self.directory / self.ROOT_FILE).exists()

    def root_info(self) -> RootInfo:
        path = self.directory / self.ROOT_PUBLIC_FILE
        if not path.exists():
            raise KeystoreError(f"no partnership root key in {self.directory}: run `sgledger keys init`")
        return RootInfo(**json.loads(path.read_text("utf-8")))

    def root_private_key(self) -> Ed25519PrivateKey:
        return self._read_private(self.directory / self.ROOT_FILE, "the partnership root key")

    # -- agencies ---------------------------------------------------------------------------
    def agency_key_path(self, agency: str) -> Path:
        """Where ``agency``'s key lives; refused (KeystoreError) unless ``agency`` is a valid
        agency id, so no file is ever named after something the ledger would refuse (a newline,
        ``..``): the name is checked before anything is written."""
        _kind(agency)
        return self.directory / "agencies" / (agency.replace("/", "~") + ".key")

    def has_agency(self, agency: str) -> bool:
        return self.agency_key_path(agency).exists()

    def create_agency_key(self, agency: str, key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
        """A new key for ``agency``, or ``key`` stored as its key (e.g. the documented test
        vector key in interoperability tests)."""
        path = self.agency_key_path(agency)
        if path.exists():
            raise KeystoreError(f"{agency} already has a key in {self.directory}")
        key = key or Ed25519PrivateKey.generate()
        self._write_private(path, key)
        return key

    def validity_path(self, agency: str) -> Path:
        return self.agency_key_path(agency).with_suffix(".validity.json")

    def record_validity(self, agency: str, validity: KeyValidity) -> None:
        """What the root key attested for this agency's key (from its registration and any
        revocation), kept beside it so the producer refuses events the partnership would refuse."""
        path = self.validity_path(agency)
        path.write_text(json.dumps(validity.to_json()) + "\n", "utf-8")
        os.chmod(path, FILE_MODE)  # like everything in the key store

    def key_validity(self, agency: str) -> KeyValidity | None:
        """None for keys registered before validity was recorded here (nothing to check)."""
        path = self.validity_path(agency)
        return KeyValidity.from_json(json.loads(path.read_text("utf-8"))) if path.exists() else None

    def agency_private_key(self, agency: str) -> Ed25519PrivateKey:
        if agency == self._partnership_or_none():
            return self.root_private_key()
        return self._read_private(self.agency_key_path(agency), f"the key of {agency}")

    def agencies(self) -> list[str]:
        folder = self.directory / "agencies"
        if not folder.exists():
            return []
        return sorted(p.stem.replace("~", "/") for p in folder.glob("*.key"))

    # -- files ------------------------------------------------------------------------------
    def _partnership_or_none(self) -> str | None:
        path = self.directory / self.ROOT_PUBLIC_FILE
        return self.root_info().partnership if path.exists() else None

    def _write_private(self, path: Path, key: Ed25519PrivateKey) -> None:
        private_directory(self.directory)
        private_directory(path.parent)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

    def _read_private(self, path: Path, what: str) -> Ed25519PrivateKey:
        if not path.exists():
            raise KeystoreError(f"{what} is not in {self.directory}")
        private_directory(self.directory)
        private_file(path)
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeystoreError(f"{path} does not hold an Ed25519 key")
        return key


def _kind(agency: str) -> str:
    try:
        return agency_kind(agency)
    except InvalidIdentifier as exc:
        raise KeystoreError(str(exc)) from exc
