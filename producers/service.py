"""The partnership's own producer: what its services sign on behalf of an authenticated person.

Reading a child's record, acknowledging or dismissing a flag and publishing a tree head are
events in the ledger like any other, signed by the partnership's **service key**
(``partnership/service``, registered by the root key like an agency key). The root private key is
then needed only to register or revoke keys and can live offline; a server that people use holds
the service key alone. Who acted is an :class:`Actor` established by the caller's authentication
(the web workspace's sign-in, the operating-system account of a command-line user), never a free
setting: a setting would let anyone on a shared server read a record in another person's name.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ledger.keystore import Keystore, KeystoreError
from ledger.topics import Topics
from ledger.vocabulary import SERVICE_AGENCY
from producers.outbox import Outbox
from producers.sdk import Producer

Role = Literal["lead", "designated-lead", "auditor", "operator", "service"]
CHILD_PREFIX = "child:"


@dataclass(frozen=True)
class Actor:
    """The authenticated person (or job) on whose behalf the service signs."""

    id: str  # "local:<email>", "oidc:<issuer>|<subject>", "os:<account>", "job:<name>"
    role: Role
    agency: str | None = None

    @classmethod
    def operating_system_user(cls) -> Actor:
        """A command-line user on the server: the account the process runs as (its real uid, not
        ``$USER``, which anyone can set)."""
        return cls(f"os:{pwd.getpwuid(os.getuid()).pw_name}", "operator")

    def fields(self, key: str) -> dict[str, Any]:
        """The actor as event data: ``key`` names the identity field (``who`` or ``by``)."""
        return {key: self.id, "role": self.role, **({"agency": self.agency} if self.agency else {})}


class ServiceKeyMissing(KeystoreError):
    """This key store holds no service key: reads and decisions cannot be recorded."""


def child_target(child: str) -> str:
    return f"{CHILD_PREFIX}{child}"


class ServiceProducer:
    """Signs service events into the outbox; delivering them is the caller's (CLI: the embedded
    pipeline or the relay; web: the same)."""

    def __init__(self, keystore: Keystore, outbox: str | Outbox, *, topics: Topics | None = None) -> None:
        if not keystore.has_agency(SERVICE_AGENCY):
            raise ServiceKeyMissing(
                f"no service key ({SERVICE_AGENCY}) in {keystore.directory}: register one where the "
                f"root key is, with `sgledger agency add {SERVICE_AGENCY}`"
            )
        self.partnership = keystore.root_info().partnership
        self.producer = Producer(SERVICE_AGENCY, keystore, outbox, topics=topics)

    def record_access(
        self, actor: Actor, action: str, target: str, reason: str | None = None
    ) -> dict[str, Any]:
        """``actor`` did ``action`` on ``target``. A target ``child:<id>`` makes the child the
        event's subject, so the access is listed with the child's record; any other target is
        filed under the partnership."""
        data: dict[str, Any] = {**actor.fields("who"), "action": action, "target": target}
        if reason:
            data["reason"] = reason
        subject = target.removeprefix(CHILD_PREFIX) if target.startswith(CHILD_PREFIX) else self.partnership
        return self.producer.publish("access.recorded", subject, data)

    def decide_flag(
        self,
        actor: Actor,
        decision: Literal["flag.acknowledged", "flag.dismissed"],
        flag_id: str,
        child: str | None,
        reason: str | None,
        evidence: Sequence[str] = (),
    ) -> dict[str, Any]:
        """A lead acknowledges or dismisses a flag; a dismissal carries the evidence it saw, so
        new evidence reopens it."""
        data: dict[str, Any] = {"flag": flag_id, **actor.fields("by")}
        if reason:
            data["reason"] = reason
        if decision == "flag.dismissed":
            data["evidence"] = list(evidence)
        return self.producer.publish(decision, child or self.partnership, data)

    def tree_head(self, head: Mapping[str, Any]) -> dict[str, Any]:
        return self.producer.publish("ledger.tree-head", self.partnership, head)
