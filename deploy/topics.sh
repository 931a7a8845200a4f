#!/usr/bin/env bash
# Create the partnership's topics on Apache Kafka, for clusters where clients may not create
# topics. Nothing here is a second definition: the partition count and replication factor come
# from deploy/topics.env (the deployment's one source, also read by the services and `sgledger
# doctor`; a variable already set in the environment wins), and the topic settings are the
# services' own (transport/kafka.py: KafkaSettings.topic_configs()). Run where `sgledger` is
# installed (e.g. the services image), with SGLEDGER_BOOTSTRAP_SERVERS set:
#   SGLEDGER_BOOTSTRAP_SERVERS=kafka-1:9092 deploy/topics.sh [--json]
# An existing topic with another partition count is refused (exit 1), never changed.
set -euo pipefail
while IFS='=' read -r name value; do
  case "$name" in
    SGLEDGER_*) [ -n "${!name:-}" ] || export "$name=$value" ;;
  esac
done < "$(dirname "$0")/topics.env"
exec sgledger topics ensure "$@"
