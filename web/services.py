"""What the web workspace's pages depend on, built once per server and injected into each route.

Holds no private key but the service key's (through ``ServiceProducer``): the root key's PUBLIC
half (``root.pub.json``) is enough to rebuild flags as of a date and to run the projector, so a
server people use never needs ``root.key``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from consumers.alerter.config import PartnershipConfig
from ledger.keyregistry import RootKey
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from ledger.topics import Topics
from producers.service import Actor, ServiceProducer
from sgledger.settings import Settings
from web.accounts import Accounts
from web.delivery import Delivery
from web.notify import BreakGlassMailer
from web.oidc import OidcConfig

DECISION_WAIT_S = 15.0  # a flag decision waits this long for the ledger to show it


@dataclass
class WebConfig:
    """How the server is reached and how long sessions live."""

    base_url: str = "http://127.0.0.1:8000"
    session_idle: timedelta = timedelta(minutes=30)
    session_absolute: timedelta = timedelta(hours=8)
    partnership_name: str = "Safeguarding partnership"
    oidc: OidcConfig | None = None
    routing: PartnershipConfig | None = None

    @property
    def secure(self) -> bool:
        """Cookies are ``Secure`` (and named ``__Host-``) whenever the server is reached over
        https; plain http is for loopback and tests only."""
        return self.base_url.startswith("https://")


@dataclass
class WebServices:
    settings: Settings
    config: WebConfig
    ledger: Ledger
    root: RootKey
    producer: ServiceProducer
    accounts: Accounts
    delivery: Delivery | None  # None: nothing delivers (tests that only read)
    mailer: BreakGlassMailer | None = None
    _closed: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _recorders: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="access-record"), init=False
    )

    @classmethod
    def open(cls, settings: Settings, config: WebConfig, *, deliver: bool = True) -> WebServices:
        settings.ensure_data_dir()
        keystore = Keystore(settings.keys_dir)
        root = keystore.root_info().root_key()
        ledger = Ledger(settings.database_url)
        producer = ServiceProducer(keystore, settings.outbox_url, topics=Topics(settings.topic_prefix))
        accounts = Accounts(settings.database_url, idle=config.session_idle, absolute=config.session_absolute)
        delivery = Delivery(settings, ledger, root) if deliver else None
        mailer = BreakGlassMailer(config.routing, config.base_url) if config.routing else None
        return cls(settings, config, ledger, root, producer, accounts, delivery, mailer)

    def ready(self) -> tuple[bool, str]:
        """Ready while the database answers (every page reads it)."""
        with self.ledger.read() as session:
            session.execute(text("SELECT 1"))
        return True, "database answers"

    def start(self) -> None:
        if self.delivery is not None:
            self.delivery.start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.delivery is not None:
            self.delivery.stop()
        self._recorders.shutdown(wait=True)
        self.accounts.close()

    def record_access(self, actor: Actor, action: str, target: str, reason: str | None = None) -> None:
        """The read is in the durable outbox before the page is shown; delivery follows."""
        self.producer.record_access(actor, action, target, reason)
        if self.delivery is not None:
            self.delivery.deliver()

    @contextmanager
    def recording_access(
        self, actor: Actor, action: str, target: str, reason: str | None = None
    ) -> Iterator[None]:
        """Commit the access record while the caller reads what it will show: the outbox's
        durable commit and the database reads overlap instead of adding up (the Child page's
        two largest waits). Leaving the block waits for the commit and raises if it failed, so
        nothing read inside is shown unless the read is on record, as with ``record_access``."""
        recorded = self._recorders.submit(self.record_access, actor, action, target, reason)
        try:
            yield
        finally:
            recorded.result()

    def decide_flag(
        self,
        actor: Actor,
        decision: Any,
        flag_id: str,
        child: str | None,
        reason: str | None,
        evidence: list[str],
    ) -> bool:
        """Sign the decision, then wait for it to reach the ledger; False if it has not yet."""
        self.producer.decide_flag(actor, decision, flag_id, child, reason, evidence)
        if self.delivery is None:
            return False
        return self.delivery.deliver(wait_s=DECISION_WAIT_S)
