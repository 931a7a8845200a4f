"""Who owns which key, from when, until when: folded from the root-signed key events.

Pure: the projector feeds it the accepted ``agency.key.*`` events, the auditor feeds it the same
events from a replay, and both get the same answer from the partnership root key alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.signing import key_id, load_public_key
from ledger.timeutil import parse_time


def valid_between(valid_from: datetime, revoked_from: datetime | None, when: datetime) -> bool:
    """A key is valid from ``valid_from`` (inclusive) until its revocation (exclusive)."""
    return valid_from <= when and (revoked_from is None or when < revoked_from)


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    agency: str
    public_key: Ed25519PublicKey
    valid_from: datetime
    revoked_from: datetime | None = None
    registered_by: str = ""  # event id of the registration

    def valid_at(self, when: datetime) -> bool:
        return valid_between(self.valid_from, self.revoked_from, when)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Picklable (``cryptography`` key objects are not): the projector sends its registry to
        verification worker processes (``consumers.projector.verifier``)."""
        fields = (self.kid, self.agency, _raw(self.public_key), self.valid_from, self.revoked_from)
        return _key_record, (*fields, self.registered_by)


@dataclass(frozen=True)
class RootKey:
    """The partnership's trust anchor: the only key not registered by an event."""

    partnership: str  # agency id of the partnership, e.g. "partnership/somerset"
    public_key: Ed25519PublicKey

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Picklable, as ``KeyRecord``."""
        return _root_key, (self.partnership, _raw(self.public_key))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key_record(
    kid: str, agency: str, raw: bytes, valid_from: datetime, revoked_from: datetime | None, by: str
) -> KeyRecord:
    return KeyRecord(kid, agency, Ed25519PublicKey.from_public_bytes(raw), valid_from, revoked_from, by)


def _root_key(partnership: str, raw: bytes) -> RootKey:
    return RootKey(partnership, Ed25519PublicKey.from_public_bytes(raw))


class KeyRegistry:
    """Agency keys registered and revoked by root-signed events, plus the root key itself."""

    def __init__(self, root: RootKey) -> None:
        self.root = root
        self._keys: dict[str, KeyRecord] = {}
        # Key events folded so far: a verdict reached with this registry still holds while the
        # count is unchanged (the projector checks released messages ahead, in a pool).
        self.changes = 0

    def apply(self, event: Mapping[str, Any]) -> None:
        """Fold one accepted ``agency.key.registered`` / ``agency.key.revoked`` event."""
        data = event["data"]
        self.changes += 1
        if event["type"] == "agency.key.registered":
            public_key = load_public_key(data["public_key"])
            if key_id(public_key) != data["kid"]:
                raise ValueError(f"kid {data['kid']} is not the fingerprint of its public key")
            valid_from = parse_time(data.get("valid_from") or event["recordedtime"])
            self._keys[data["kid"]] = KeyRecord(
                data["kid"], data["agency"], public_key, valid_from, None, event["id"]
            )
        elif event["type"] == "agency.key.revoked":
            record = self._keys.get(data["kid"])
            if record is not None:
                effective = parse_time(data.get("effective") or event["recordedtime"])
                self._keys[data["kid"]] = replace(record, revoked_from=effective)

    def copy(self) -> KeyRegistry:
        """An independent registry with the same keys (records are immutable)."""
        twin = KeyRegistry(self.root)
        twin._keys = dict(self._keys)
        twin.changes = self.changes
        return twin

    def get(self, kid: str) -> KeyRecord | None:
        return self._keys.get(kid)

    def keys_of(self, agency: str) -> list[KeyRecord]:
        """Every key registered for ``agency``, revoked or not, oldest first: a statement signed
        before a revocation (a checkpoint) still verifies with the key that made it."""
        return sorted((r for r in self._keys.values() if r.agency == agency), key=lambda r: r.valid_from)

    def registered_agencies(self) -> dict[str, datetime]:
        """Agency id -> earliest time any of its keys became valid."""
        agencies: dict[str, datetime] = {}
        for record in self._keys.values():
            if record.agency not in agencies or record.valid_from < agencies[record.agency]:
                agencies[record.agency] = record.valid_from
        return agencies

    def __len__(self) -> int:
        return len(self._keys)
