"""Kafka clients built from one settings object, and the admin calls the services need.

Why a wrapper at all: kafka-python's defaults suit neither side of this system. Its constructors
block 30 s on an unreachable broker, ``send`` futures fail only after 120 s, the default message
size (1 MiB) would stop an oversized event in the producer instead of letting the projector
quarantine it, and auto-commit would acknowledge messages before they are in the database. The
embedded tansu broker also gets ``end_offsets`` wrong, so lag is computed from the highwater mark.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner

from ledger.topics import DEFAULT_PREFIX, Topics
from transport import kafka_join

kafka_join.install()  # before any consumer joins a group: see transport/kafka_join.py

MESSAGE_MAX_BYTES = 8 * 1024 * 1024  # client-side ceiling; the broker's own limit still applies
# The topics accept whatever the clients may send: a message over the ledger's own limit (1 MiB)
# must reach the projector, which quarantines it as ``oversized`` with its reason. Refused by the
# broker instead (Apache Kafka's default is 1 MiB + 12 bytes), it would stay at the head of its
# agency's outbox and the relay would retry it forever, holding back every later event.
TOPIC_MAX_MESSAGE_BYTES = MESSAGE_MAX_BYTES
# The variable the CLI reads for --bootstrap-servers (click's SGLEDGER_ auto prefix); from_env
# reads it too, so there is one name for "which cluster" whichever way the settings are built.
BOOTSTRAP_ENV = "SGLEDGER_BOOTSTRAP_SERVERS"


class BrokerUnavailable(RuntimeError):
    """The Kafka broker could not be reached (or refused a request) in the configured time."""


class TopicMismatch(RuntimeError):
    """An existing topic's partition count differs from the configured one.

    One child's events must meet in one consumer, which holds only if every topic has the same
    partition count (keys hash to the same partition number everywhere).
    """


@dataclass(frozen=True)
class KafkaSettings:
    """Client configuration for every service. Defaults suit a real Kafka cluster; tests shorten
    the timeouts (tansu holds a group join for half of ``session_timeout_ms``)."""

    bootstrap_servers: str
    topic_prefix: str = DEFAULT_PREFIX
    partitions: int = 6
    replication_factor: int = 1
    session_timeout_ms: int = 10_000  # Apache Kafka rejects < 6000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    request_timeout_ms: int = 30_000
    max_block_ms: int = 10_000
    delivery_timeout_ms: int = 60_000  # must cover linger + request timeout + retries
    bootstrap_timeout_ms: int = 10_000
    linger_ms: int = 5
    # How long the broker may hold a fetch that finds nothing new. Apache Kafka answers as soon
    # as a record arrives anyway; tansu answers only when the wait ends, so the client's default
    # (500 ms) added up to half a second to every event's publish -> flag latency (issue 13).
    fetch_max_wait_ms: int = 50
    # The relay's (and every producer's) compression: none, gzip, snappy, lz4 or zstd (the last
    # three need their Python package). Off by default: on one machine CPU is what runs out, and
    # gzip cost the relay and the projector more CPU per event than it saved (issue 13,
    # bench/RESULTS.md); a partnership whose broker is across a slow link may turn it on.
    compression_type: str = "none"
    # The longest wait between two tries to reach a broker that is down. After a 13 s outage of
    # the embedded broker (tests/consumers/test_outages.py, three runs each), every event was
    # projected 2.0 / 11.8 / 14.1 s after the broker was back with kafka-python's default (30 s,
    # doubling with jitter), 3.3 / 2.7 / 2.0 s with 2 s (the Java client's default is 1 s), for
    # one connection attempt per client every 2 s while the broker is down.
    reconnect_backoff_max_ms: int = 2_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def from_env(
        cls,
        prefix: str = "SGLEDGER_KAFKA_",
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> KafkaSettings:
        """Settings from ``{prefix}{FIELD}`` variables (e.g. SGLEDGER_KAFKA_SESSION_TIMEOUT_MS)
        and the servers from SGLEDGER_BOOTSTRAP_SERVERS; keyword overrides win, so a CLI option
        or the embedded broker's address takes precedence."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        names = cls.variables(prefix)
        for spec in dataclasses.fields(cls):
            name = names[spec.name]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            if spec.type != "int":
                values[spec.name] = raw
            elif raw.isdigit():
                values[spec.name] = int(raw)
            else:
                raise ValueError(f"{name} must be a whole number, got {raw!r}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "bootstrap_servers" not in values:
            raise ValueError(f"no Kafka bootstrap servers: give --bootstrap-servers or set {BOOTSTRAP_ENV}")
        return cls(**values)

    @classmethod
    def variables(cls, prefix: str = "SGLEDGER_KAFKA_") -> dict[str, str]:
        """Each setting's environment variable (``from_env`` reads them; doctor names any other
        ``SGLEDGER_KAFKA_*`` variable, which would otherwise be a typo silently ignored)."""
        return {
            spec.name: BOOTSTRAP_ENV if spec.name == "bootstrap_servers" else prefix + spec.name.upper()
            for spec in dataclasses.fields(cls)
        }

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def topic_configs(self) -> dict[str, str]:
        """The settings every topic is created with, here and by `deploy/topics.sh` (which runs
        `sgledger topics ensure`): the one definition, next to the partition count.

        - ``retention.ms=-1``: the topics are a replayable history (``audit verify --from-kafka``);
        - ``max.message.bytes``: see TOPIC_MAX_MESSAGE_BYTES;
        - ``min.insync.replicas``: 2 once there are 3 replicas (an ``acks=all`` write survives one
          broker's loss and still needs two copies), else 1 so that a smaller cluster can write;
        - ``message.timestamp.type=LogAppendTime``: the record's time is when the broker received
          it, not what the producer claims. The projector judges key validity at receipt by that
          time (docs/keys.md): a producer's own timestamp would let a stolen, revoked key back-date.
        """
        return {
            "message.timestamp.type": "LogAppendTime",
            "retention.ms": "-1",
            "max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES),
            "min.insync.replicas": str(max(1, min(2, self.replication_factor - 1))),
        }

    def client_config(self) -> dict[str, Any]:
        """Settings every kafka-python client (admin, producer, consumer) accepts."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "security_protocol": self.security_protocol,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        return config


def _unavailable(settings: KafkaSettings, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"Kafka at {settings.bootstrap_servers} is not reachable or failed a request ({exc}); "
        f"start the broker, or check --bootstrap-servers / {BOOTSTRAP_ENV}"
    )


def open_admin(settings: KafkaSettings) -> KafkaAdminClient:
    """A new admin client (the caller closes it); an unreachable broker is BrokerUnavailable."""
    try:
        return KafkaAdminClient(**settings.client_config())
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc


@contextmanager
def admin_client(settings: KafkaSettings) -> Iterator[KafkaAdminClient]:
    """An admin client that is always closed, with Kafka failures as BrokerUnavailable."""
    admin = open_admin(settings)
    try:
        yield admin
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc
    finally:
        admin.close()


def broker_reachable(settings: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request: tansu logs "listening" even when it then
    fails, so readiness is a protocol round trip, not an open port."""
    timeout_ms = max(1, int(timeout_s * 1000))
    quick = dataclasses.replace(settings, bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms)
    try:
        with admin_client(quick) as admin:
            admin.list_topics()
    except BrokerUnavailable:
        return False
    return True


def cluster_id(settings: KafkaSettings) -> str:
    """The cluster's id. The embedded broker gets a fresh one per start (it keeps nothing across
    a restart), so consumers can tell a new incarnation from the one their positions refer to."""
    with admin_client(settings) as admin:
        return cluster_id_of(admin)


def cluster_id_of(admin: KafkaAdminClient) -> str:
    """The cluster id over an open admin client (one that a caller keeps between asks)."""
    return str(admin.describe_cluster()["cluster_id"])


def ensure_topics(settings: KafkaSettings, names: Iterable[str]) -> list[str]:
    """Create the missing topics with the configured partition count; returns those created.

    Idempotent and safe against a concurrent creator. Existing topics with another partition
    count raise TopicMismatch instead of silently breaking per-child ordering.
    """
    wanted = sorted(set(names))
    with admin_client(settings) as admin:
        existing = set(admin.list_topics())
        _check_partitions(settings, admin, [n for n in wanted if n in existing])
        missing = [n for n in wanted if n not in existing]
        if not missing:
            return []
        configs, replicas = settings.topic_configs(), settings.replication_factor
        result = admin.create_topics(
            [NewTopic(n, settings.partitions, replicas, topic_configs=configs) for n in missing],
            raise_errors=False,
            wait_for_metadata=True,
        )
    failures = [
        f"{t['name']}: {t['error_message'] or t['error_code']}"
        for t in result["topics"]
        if t["error_code"] not in (0, TopicAlreadyExistsError.errno)
    ]
    if failures:
        raise BrokerUnavailable("could not create topics: " + "; ".join(failures))
    return missing


def delete_topics(settings: KafkaSettings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; returns their names. For tests and
    tools that made topics of their own: the services never delete."""
    with admin_client(settings) as admin:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if names:
            admin.delete_topics(names)
    return names


def _check_partitions(settings: KafkaSettings, admin: KafkaAdminClient, names: list[str]) -> None:
    if not names:
        return
    wrong = [
        f"{t['name']} has {len(t['partitions'])}"
        for t in admin.describe_topics(names)
        if len(t["partitions"]) != settings.partitions
    ]
    if wrong:
        raise TopicMismatch(
            f"topics must all have {settings.partitions} partitions but "
            + ", ".join(wrong)
            + ": set SGLEDGER_KAFKA_PARTITIONS to the cluster's count or recreate the topics"
        )


class KeyPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key over all the topic's partitions,
    as the Java client), its answer kept per (topic, key, partition count).

    Why: the relay keys every event by its agency, a handful of keys, and the pure-Python
    murmur2 with its partition lookups cost ~15 us a record, a sixth of the relay's CPU per
    event. The answer is a function of exactly what the memo is keyed on, so it is the same
    partition; the memo is cleared when it reaches ``limit`` entries, since the gap-flags
    producer keys by child (unbounded)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._memo: dict[tuple[str, bytes, int], int] = {}

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        known = cluster.partitions_for_topic(topic)
        if serialized_key is None or not known:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        memo = (topic, serialized_key, len(known))
        found = self._memo.get(memo)
        if found is None:
            if len(self._memo) >= self.limit:
                self._memo.clear()
            found = self._memo[memo] = int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
        return found


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """An idempotent, all-replica-acknowledged producer: a send counts only once it is durable."""
    try:
        return KafkaProducer(
            **settings.client_config(),
            acks="all",
            enable_idempotence=True,
            retries=2**31 - 1,  # bounded by delivery_timeout_ms, not by a count
            max_in_flight_requests_per_connection=5,  # idempotence keeps order up to 5
            linger_ms=settings.linger_ms,
            batch_size=512 * 1024,
            max_request_size=MESSAGE_MAX_BYTES,
            compression_type=None if settings.compression_type == "none" else settings.compression_type,
            max_block_ms=settings.max_block_ms,
            delivery_timeout_ms=settings.delivery_timeout_ms,
            allow_auto_create_topics=False,  # topics come only from ensure_topics, with our settings
            partitioner=KeyPartitioner(),
        )
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc


def close_now(producer: KafkaProducer) -> None:
    """Close without waiting, dropping what the broker has not acknowledged (the caller keeps it,
    e.g. in the outbox, and sends it again). kafka-python's ``close`` flushes first, and with
    records still in flight to a broker that is gone it raises KafkaTimeoutError before it stops
    its sender thread: that ended `sgledger relay` at the first outage longer than a round, with
    the thread left running. Failing the pending batches first lets the flush return at once."""
    producer._accumulator.abort_batches(KafkaError("closed by close_now: not acknowledged"))
    producer.close(timeout=0)


def make_consumer(settings: KafkaSettings, group_id: str | None, topics: Iterable[str]) -> KafkaConsumer:
    """A consumer that never commits on its own: offsets (and the database's tracking records)
    move only after a batch is applied. Fetch sizes exceed 1 MiB so that an oversized event
    reaches the projector (and quarantine) rather than stalling the partition."""
    try:
        consumer = KafkaConsumer(
            **settings.client_config(),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            max_partition_fetch_bytes=MESSAGE_MAX_BYTES,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_max_bytes=4 * MESSAGE_MAX_BYTES,
            # A metadata request for a missing topic must not create it: tansu would, with one
            # partition, after a restart, and every later ensure_topics would be a TopicMismatch.
            allow_auto_create_topics=False,
            metadata_max_age_ms=5000,  # pattern subscriptions find (re)created topics this soon
        )
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc
    names = list(topics)
    if names:
        subscribe(consumer, names)
    return consumer


def subscribe(consumer: KafkaConsumer, topics: Iterable[str], listener: Any = None) -> None:
    """Join the group for exactly these topics, by a pattern that names them.

    Why a pattern: subscribing by name makes the client ask for those topics' metadata, and
    tansu then creates any that are missing, with 4 partitions, whatever the request's
    ``allow_auto_topic_creation`` says. After tansu restarts (empty), a waiting consumer would
    so create every topic with the wrong count before the relay could create them right, and
    every later ensure_topics would fail with TopicMismatch. A pattern subscription asks for
    all topics' metadata and creates nothing; topics created later are found at the next
    metadata refresh (``metadata_max_age_ms`` is short for that reason).
    """
    pattern = "^(" + "|".join(re.escape(t) for t in sorted(set(topics))) + ")$"
    if listener is None:
        consumer.subscribe(pattern=pattern)
    else:
        consumer.subscribe(pattern=pattern, listener=listener)


def assign_all(consumer: KafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Assign every partition of ``topics`` to a consumer without a group: for a lone reader
    (the in-process projector and alerter, the auditor) a group join would only add its wait."""
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    return partitions


def partition_lag(consumer: KafkaConsumer) -> dict[TopicPartition, int | None]:
    """Messages not yet consumed per assigned partition: highwater - position (tansu's
    ``end_offsets`` is wrong). None until the first fetch has reported a highwater mark."""
    lag: dict[TopicPartition, int | None] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        lag[tp] = None if highwater is None else max(0, highwater - consumer.position(tp))
    return lag
