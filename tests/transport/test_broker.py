"""The embedded broker's lifecycle and the Kafka helpers, against real tansu processes."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from transport.broker import EmbeddedBroker, free_port
from transport.kafka import (
    BrokerUnavailable,
    KafkaSettings,
    TopicMismatch,
    admin_client,
    broker_reachable,
    cluster_id,
    ensure_topics,
    make_consumer,
    make_producer,
    partition_lag,
)

pytestmark = pytest.mark.kafka


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _nowhere() -> KafkaSettings:
    """Settings for a port nobody listens on, with timeouts short enough for a test."""
    return KafkaSettings(
        f"127.0.0.1:{free_port()}", bootstrap_timeout_ms=500, request_timeout_ms=500,
        max_block_ms=500, delivery_timeout_ms=1000,
    )  # fmt: skip


def test_embedded_broker_starts_ready_and_stops_by_pid(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path) as broker:
        pid = broker.pid
        assert pid is not None and broker.running()
        settings = KafkaSettings(broker.bootstrap_servers)
        assert broker_reachable(settings)
        assert cluster_id(settings) == broker.cluster_id
    assert _dead(pid)
    assert broker.log_path.exists()
    broker.stop()  # idempotent


def test_each_start_is_a_new_cluster(tmp_path: Path) -> None:
    """Memory-only storage: consumers must be able to tell a restarted broker from the old one."""
    with EmbeddedBroker(tmp_path / "a") as first, EmbeddedBroker(tmp_path / "b") as second:
        assert first.cluster_id != second.cluster_id
        assert first.bootstrap_servers != second.bootstrap_servers


def test_stop_is_safe_when_the_broker_already_died(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path).start()
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGKILL)
    broker.stop()
    assert not broker.running()


def test_unreachable_broker_is_reported_quickly_and_clearly() -> None:
    settings = _nowhere()
    assert broker_reachable(settings, timeout_s=0.5) is False
    with pytest.raises(BrokerUnavailable, match=settings.bootstrap_servers):
        ensure_topics(settings, ["x"])
    with pytest.raises(BrokerUnavailable, match="--bootstrap-servers"):
        make_producer(settings)


def test_ensure_topics_is_idempotent_with_one_partition_count(
    kafka_settings: KafkaSettings,
) -> None:
    names = kafka_settings.topics.all()
    assert sorted(ensure_topics(kafka_settings, names)) == sorted(names)
    assert ensure_topics(kafka_settings, names) == []
    with admin_client(kafka_settings) as admin:
        described = admin.describe_topics(names)
    assert {len(t["partitions"]) for t in described} == {kafka_settings.partitions}


def test_existing_topic_with_other_partition_count_is_refused(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topics.gap_flags
    ensure_topics(dataclasses.replace(kafka_settings, partitions=3), [topic])
    with pytest.raises(TopicMismatch, match="has 3"):
        ensure_topics(kafka_settings, [topic])


def test_settings_from_environment() -> None:
    env = {
        "SGLEDGER_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "SGLEDGER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SGLEDGER_KAFKA_SASL_PLAIN_PASSWORD": "secret",
        "SGLEDGER_KAFKA_TOPIC_PREFIX": "",
    }
    settings = KafkaSettings.from_env(environ=env, partitions=12)
    assert settings.session_timeout_ms == 6000
    assert settings.partitions == 12
    assert settings.topic_prefix == "safeguarding"
    assert settings.client_config()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert "secret" not in repr(settings)
    override = KafkaSettings.from_env(environ=env, bootstrap_servers="127.0.0.1:1")
    assert override.bootstrap_servers == "127.0.0.1:1"
    with pytest.raises(ValueError, match="SGLEDGER_BOOTSTRAP_SERVERS"):
        KafkaSettings.from_env(environ={})
    with pytest.raises(ValueError, match="SGLEDGER_KAFKA_PARTITIONS must be a whole number"):
        KafkaSettings.from_env(environ={**env, "SGLEDGER_KAFKA_PARTITIONS": "six"})


def test_lag_is_highwater_minus_position(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topics.quarantine
    ensure_topics(kafka_settings, [topic])
    producer = make_producer(kafka_settings)
    for n in range(10):
        producer.send(topic, key=b"same-child", value=str(n).encode())
    producer.flush()
    partition = producer.partitions_for(topic)
    producer.close()
    consumer: KafkaConsumer = make_consumer(kafka_settings, None, [])
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partition)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        assert set(partition_lag(consumer).values()) == {None}  # nothing fetched yet
        consumed = 0
        for _ in range(50):
            consumed += sum(len(b) for b in consumer.poll(timeout_ms=200, max_records=3).values())
            if consumed >= 3:
                break
        lag = partition_lag(consumer)
        assert sum(v or 0 for v in lag.values()) == 10 - consumed
    finally:
        consumer.close()
