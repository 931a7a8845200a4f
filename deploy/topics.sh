#!/usr/bin/env bash
# Create the partnership's topics on Apache Kafka, for clusters where clients may not create
# topics. The partition count, replication factor and topic settings are the services' own
# (transport/kafka.py: KafkaSettings.partitions, .replication_factor, .topic_configs()), set
# with the same variables the services read, so the two can never disagree:
#   SGLEDGER_BOOTSTRAP_SERVERS=kafka:9092 SGLEDGER_KAFKA_REPLICATION_FACTOR=3 deploy/topics.sh
# An existing topic with another partition count is refused (exit 1), never changed.
set -euo pipefail
exec sgledger topics ensure "$@"
