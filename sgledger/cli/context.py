"""What every command needs, opened lazily: settings, key store, ledger, output helpers."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import signal
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from ledger.timeutil import TimeFormatError, parse_time
from sgledger.observe.metrics import ServiceMetrics
from sgledger.observe.server import HealthServer, Readiness
from sgledger.settings import Settings

if TYPE_CHECKING:  # imported where used: every command imports this module, `--help` too
    from ledger.keyregistry import RootKey
    from ledger.keystore import Keystore
    from ledger.store.ledger import Ledger
    from transport.kafka import KafkaSettings


class UserError(Exception):
    """Something the person running the command can fix; printed as one line."""

    exit_code = 2


def listenable(host: str, port: int) -> None:
    """Refuse, as one line, an address this command could not listen on (another process has
    the port, a host name that is not this machine's, a port below 1024 without the right),
    before anything starts. Why: uvicorn finds out only after the command has printed where
    it serves (and `serve` has started its broker and projector), logs it, and exits 3, the
    code the publishing commands keep for "stored but not delivered"."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds its own
        try:
            probe.bind(address)
        except OSError as exc:
            taken = "another process listens there: stop it or choose another --port"
            why = taken if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(f"cannot listen on {host}:{port}: {why}") from exc


@dataclass
class AppContext:
    settings: Settings
    debug: bool = False
    _ledger: Ledger | None = field(default=None, init=False)

    @property
    def keystore(self) -> Keystore:
        from ledger.keystore import Keystore

        return Keystore(self.settings.keys_dir)

    def root_key(self) -> RootKey:
        from ledger.keystore import KeystoreError

        try:
            return self.keystore.root_info().root_key()
        except KeystoreError as exc:
            raise UserError(str(exc)) from exc

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from ledger.store.ledger import Ledger

            self.settings.ensure_data_dir()
            self._ledger = Ledger(self.settings.database_url)
        return self._ledger

    def cluster(self, refusal: str) -> KafkaSettings:
        """The configured Kafka cluster, for work the embedded broker cannot do (it lives only as
        long as one command); ``refusal`` says why, on the embedded default."""
        if self.settings.embedded:
            raise UserError(refusal)
        from transport.kafka import KafkaSettings

        return KafkaSettings.from_env(
            bootstrap_servers=self.settings.bootstrap_servers, topic_prefix=self.settings.topic_prefix
        )


def stop_on_signals() -> threading.Event:
    """Set on Ctrl-C or SIGTERM: services finish their current batch and close cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def health_options(function: Any) -> Any:
    """``--metrics-port`` and ``--metrics-host`` for every long-running service."""
    function = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        envvar="SGLEDGER_METRICS_HOST",
        help="Address for the health and metrics endpoints (0.0.0.0 in a container).",
    )(function)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        envvar="SGLEDGER_METRICS_PORT",
        help="Serve /healthz, /readyz and Prometheus /metrics on this port (0: any free port). "
        "Default: not served.",
    )(function)


def start_health(
    service: str, port: int | None, host: str, ready: Readiness
) -> tuple[ServiceMetrics, HealthServer | None]:
    """Metrics for ``service``; served over HTTP only when a port was given. Services log at
    INFO (each batch) unless --debug asked for more."""
    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    metrics = ServiceMetrics(service)
    if port is None:
        return metrics, None
    server = HealthServer(metrics, ready, host=host, port=port).start()
    click.echo(f"{service}: health and metrics on http://{host}:{server.port}/metrics", err=True)
    return metrics, server


pass_app = click.make_pass_decorator(AppContext)
# Wide enough for the flag tables when output goes to a file or a pipe (rich assumes 80).
console = Console(highlight=False, width=shutil.get_terminal_size((160, 40)).columns)
# Progress and problem lists: on stderr, so `--json` output on stdout stays parseable.
err_console = Console(highlight=False, stderr=True, width=console.width)


def parse_as_of(value: str | None) -> datetime:
    """`--as-of` accepts RFC 3339 with an offset; absent means now."""
    if value is None:
        return datetime.now(UTC)
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise UserError(f"--as-of: {exc}") from exc


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
