"""Kafka plumbing shared by producers and consumers: client settings, topic admin, the embedded
broker. Every client setting lives in `KafkaSettings` because the embedded tansu broker and a
production Apache Kafka need different values (e.g. session timeouts)."""
