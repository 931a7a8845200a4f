"""Deliver what the web workspace signs, in the background, for the server's lifetime.

A page view writes its ``access.recorded`` event to the durable outbox (one local commit) and is
shown at once: the read is audited before the page is, and the page does not wait for a broker.
This thread then takes the outbox onwards:

- on the embedded default, ONE pipeline (embedded broker + projector, ``sgledger.pipeline``)
  lives as long as the server, because the embedded broker keeps nothing once stopped; each
  wake-up relays the outbox and projects it into the ledger;
- with Kafka, it relays the outbox; the `sgledger project` service projects.

All broker work happens on this one thread (neither the pipeline nor the relay is thread-safe).
A flag decision waits for the next round (``deliver(wait=...)``) so the lead sees the flag's new
state on the page they are sent back to.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack

from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from producers.outbox import Outbox
from producers.relay import Relay
from sgledger.pipeline import Pipeline
from sgledger.settings import Settings
from transport.kafka import KafkaSettings

log = logging.getLogger(__name__)
IDLE_ROUND_S = 5.0  # also retry on this period after a broker failure


class Delivery:
    def __init__(self, settings: Settings, ledger: Ledger, root: RootKey) -> None:
        self.settings, self.ledger, self.root = settings, ledger, root
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Condition()
        self._rounds = 0  # completed delivery rounds
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sgledger-delivery", daemon=True)

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the thread; returns once the broker (embedded or Kafka client) is up."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the delivery pipeline did not start within {timeout_s:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"the delivery pipeline did not start: {self._error}") from self._error

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def deliver(self, wait_s: float = 0.0) -> bool:
        """Ask for a round now; with ``wait_s`` wait for a round that started after this call to
        finish. True when that happened in time (or when not waiting)."""
        with self._lock:
            target = self._rounds + 2  # the round running now may have missed our event
        self._wake.set()
        if wait_s <= 0:
            return True
        with self._lock:
            return self._lock.wait_for(lambda: self._rounds >= target, timeout=wait_s)

    def _run(self) -> None:
        with ExitStack() as stack:
            try:
                round_ = self._setup(stack)
            except BaseException as exc:  # reported by start()
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            while not self._stop.is_set():
                self._wake.wait(IDLE_ROUND_S)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    round_()
                except Exception as exc:
                    # The events stay in the outbox; the next round sends them.
                    log.warning("delivery round failed, retrying in %.0f s: %s", IDLE_ROUND_S, exc)
                with self._lock:
                    self._rounds += 1
                    self._lock.notify_all()

    def _setup(self, stack: ExitStack) -> Callable[[], object]:
        if self.settings.embedded:
            pipeline = stack.enter_context(Pipeline(self.settings, self.ledger, self.root))
            return lambda: pipeline.sync(timeout_s=60)
        kafka = KafkaSettings.from_env(
            bootstrap_servers=self.settings.bootstrap_servers, topic_prefix=self.settings.topic_prefix
        )
        relay = Relay(Outbox(self.settings.outbox_url), kafka)
        stack.callback(relay.close)
        return lambda: relay.send_pending(timeout_s=15)
