"""A fixed, signed history for fuzzing: the same bytes on every run and every machine.

Keys come from fixed seeds and event ids from uuid5, so a corpus file can name a message of this
history, or hold a crafted event whose re-computed signature verifies, and mean the same thing
years later. Nothing here is a secret: these keys sign only test data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.keyregistry import RootKey
from ledger.signing import public_key_text, sign_event
from tests.ledger.factory import INCIDENT, PARTNERSHIP, T0, Chain

NAMESPACE = uuid.UUID("5a4e6b39-3e2f-4f3c-9d7a-0c9b8e1f2a10")
AGENCIES = ("police/avon-somerset", "csc/somerset")


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


@dataclass
class History:
    """The partnership's registrations, then a short chain per agency (children C-1 and C-2)."""

    root: Chain = field(default_factory=lambda: Chain(PARTNERSHIP, key=_key(1)))
    chains: dict[str, Chain] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # "source#sequence" -> event

    def __post_init__(self) -> None:
        for number, agency in enumerate(AGENCIES, start=2):
            chain = self.chains[agency] = Chain(agency, key=_key(number))
            self._add(
                self.root.event(
                    "agency.key.registered",
                    {
                        "agency": agency,
                        "kid": chain.kid,
                        "public_key": public_key_text(chain.key.public_key()),
                    },
                    subject=agency,
                    at=T0 - timedelta(days=1),
                    event_id=_id(f"register {agency}"),
                )
            )
        for n in range(1, 6):
            for agency in AGENCIES:
                self._add(
                    self.chains[agency].event(
                        "incident.reported",
                        {**INCIDENT, "incident_ref": f"INC-{agency[:3]}-{n}"},
                        subject=f"C-{n % 2 + 1}",
                        at=T0 + timedelta(hours=n),
                        event_id=_id(f"{agency} {n}"),
                    )
                )

    def _add(self, event: dict[str, Any]) -> None:
        self.events[f"{event['source']}#{event['sequence']}"] = event

    @property
    def root_key(self) -> RootKey:
        return RootKey(PARTNERSHIP, self.root.key.public_key())

    def key_of(self, source: object) -> Ed25519PrivateKey:
        """The agency key that signs as ``source`` (the first agency's for anything else)."""
        chain = self.chains.get(source) if isinstance(source, str) else None
        return (chain or self.chains[AGENCIES[0]]).key

    def resign(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """``event`` with a signature that verifies with its source agency's key."""
        unsigned = {k: v for k, v in event.items() if k != "signature"}
        return {**unsigned, "signature": sign_event(unsigned, self.key_of(event.get("source")))}


def encode(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event).encode()
