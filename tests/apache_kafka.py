"""Apache Kafka (KRaft) brokers for the tests, run from the jars `scripts/services kafka` fetched.

The same steps as a Kafka distribution's `bin/` scripts: `kafka.tools.StorageTool format` gives
each node's log directory the cluster id, then `kafka.Kafka server.properties` runs a combined
broker + controller. A cluster of N nodes is N such processes on free loopback ports with one
static voter list, so any one node can be SIGKILLed and restarted while the other two keep the
quorum and the in-sync replicas (``min.insync.replicas=2``).

Broker settings chosen for tests (each a deliberate difference from Kafka's defaults):
- ``group.min.session.timeout.ms=500``: the tests use 2000 ms sessions so that a killed consumer
  is evicted in seconds; Kafka rejects anything below this floor (6000 by default).
- ``group.initial.rebalance.delay.ms=0``: a new group's first join is not held 3 s.
- ``offsets.topic.num.partitions=5``: the group offsets topic is created on the first group
  join; 50 partitions (the default) cost seconds on two shared cores.
- ``broker.session.timeout.ms=3000``: a killed broker loses its leaderships in 3 s, not 9 s.
- ``auto.create.topics.enable=false``: as on a production cluster, topics exist only because
  the services (``ensure_topics``) or `deploy/topics.sh` created them with the right settings.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from transport.broker import free_port
from transport.kafka import KafkaSettings, admin_client, broker_reachable

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "deploy" / "kafka" / "pom.xml"
LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


class KafkaUnavailable(RuntimeError):
    """The Kafka jars are not on this machine, or a broker did not start."""


def kafka_version() -> str:
    """The version pinned in deploy/kafka/pom.xml: the one place that names it."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text("utf-8"))
    if match is None:
        raise KafkaUnavailable(f"no <kafka.version> in {POM}")
    return match.group(1)


def kafka_libs() -> Path:
    """Where `scripts/services kafka` put the broker's runtime classpath (SGLEDGER_KAFKA_LIBS
    overrides it, e.g. for a Kafka distribution's own `libs/`)."""
    override = os.environ.get("SGLEDGER_KAFKA_LIBS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sgledger" / f"kafka-{kafka_version()}" / "libs"


def kafka_available() -> str | None:
    """None when brokers can be started here, else why not (one line, with the fix)."""
    libs = kafka_libs()
    if not any(libs.glob("kafka_2.13-*.jar")):
        return f"Apache Kafka jars not found in {libs}: run `bash scripts/services kafka`"
    if not _java():
        return "no `java` on PATH (Apache Kafka 4 needs Java 17+): run `bash scripts/services kafka`"
    return None


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "java"
        if candidate.exists():
            return str(candidate)
    return None


def new_cluster_id() -> str:
    """Kafka's cluster ids are a UUID in URL-safe base64 without padding (22 characters). One
    that starts with "-" reads as an option to `StorageTool format -t ID` (1 in 64: the Kafka
    tests failed to start with "expected one argument"); Kafka's own ``Uuid.randomUuid`` draws
    again for that reason, and so does this."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"


class KafkaCluster:
    """``with KafkaCluster(tmp, nodes=3) as cluster:`` ... ``cluster.kill(1)``,
    ``cluster.restart(1)``. Processes are stopped by PID, never by name."""

    def __init__(
        self, root: Path, nodes: int = 1, *, heap_mb: int = 384, startup_timeout_s: float = 90
    ) -> None:
        self.root = Path(root)
        self.cluster_id = new_cluster_id()
        self.startup_timeout_s = startup_timeout_s
        self.heap_mb = heap_mb
        self.nodes = [
            _Node(i + 1, free_port(), free_port(), self.root / f"node{i + 1}") for i in range(nodes)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def settings(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap_servers)

    def _properties(self, node: _Node) -> str:
        replicas = min(3, len(self.nodes))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners=PLAINTEXT://{node.address}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={node.directory / 'data'}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min(2, replicas)}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=5",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min(2, replicas)}",
                "group.min.session.timeout.ms=500",
                "group.initial.rebalance.delay.ms=0",
                # A SIGKILLed broker is fenced, and its partitions' leadership moved, after 3 s
                # instead of 9 s: the failover test's clients wait that long.
                "broker.heartbeat.interval.ms=500",
                "broker.session.timeout.ms=3000",
                "auto.create.topics.enable=false",
                "num.network.threads=2",
                "num.io.threads=2",
                "num.recovery.threads.per.data.dir=1",
                "log.index.size.max.bytes=1048576",
                "",
            ]
        )

    def _java(self, node: _Node, main: str, *args: str) -> list[str]:
        java = _java()
        if java is None:
            raise KafkaUnavailable("no `java` on PATH")
        return [
            java, "-Xms64m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={node.directory}",
            "-cp", f"{kafka_libs()}/*", main, *args,
        ]  # fmt: skip

    def start(self) -> KafkaCluster:
        reason = kafka_available()
        if reason:
            raise KafkaUnavailable(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "log4j2.yaml").write_text(LOG4J2, "utf-8")
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            (node.directory / "server.properties").write_text(self._properties(node), "utf-8")
            formatted = subprocess.run(
                self._java(node, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                           "-t", self.cluster_id, "-c", str(node.directory / "server.properties")),
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise KafkaUnavailable(f"StorageTool format failed: {formatted.stderr or formatted.stdout}")
        try:
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, node: _Node) -> None:
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                self._java(node, "kafka.Kafka", str(node.directory / "server.properties")),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, nodes: list[int] | None = None) -> None:
        """Every (or the given) node answers a metadata request and the cluster sees them all."""
        wanted = [n for n in self.nodes if nodes is None or n.node_id in nodes]
        deadline = time.monotonic() + self.startup_timeout_s
        for node in wanted:
            while not broker_reachable(KafkaSettings(node.address), timeout_s=1.0):
                if node.process is None or node.process.poll() is not None:
                    raise self._failure(node, "exited during start-up")
                if time.monotonic() > deadline:
                    raise self._failure(node, f"was not ready after {self.startup_timeout_s:.0f} s")
                time.sleep(0.2)
        while len(self._live_brokers()) < len(self.nodes):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"only brokers {self._live_brokers()} joined the cluster")
            time.sleep(0.2)

    def _live_brokers(self) -> list[int]:
        with admin_client(self.settings()) as admin:
            brokers = admin.describe_cluster()["brokers"]
        return sorted(int(b["broker_id"]) for b in brokers if not b.get("is_fenced", False))

    def _failure(self, node: _Node, what: str) -> KafkaUnavailable:
        try:
            tail = node.log_path.read_text("utf-8", errors="replace").splitlines()[-20:]
        except OSError:
            tail = []
        return KafkaUnavailable(
            f"Kafka node {node.node_id} ({node.address}) {what}; log {node.log_path}:\n" + "\n".join(tail)
        )

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown, no flush, as a crashed machine."""
        node = self.nodes[node_id - 1]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(30)
        node.process = None

    def restart(self, node_id: int) -> None:
        node = self.nodes[node_id - 1]
        if node.process is not None:
            raise RuntimeError(f"node {node_id} is running")
        self._spawn(node)
        self.wait_ready([node_id])

    def stop(self) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after 20 s; idempotent."""
        running = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        for node in running:
            assert node.process is not None
            node.process.terminate()
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(20)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        for node in self.nodes:
            node.process = None

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
