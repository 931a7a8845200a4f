#!/usr/bin/env bash
# Create the partnership's topics on Apache Kafka. Every event topic has the same partition
# count and is keyed by the child's id, so one child's events meet in one projector (DESIGN.md).
# The services also create missing topics on start; this script is for clusters where clients
# may not create topics. LogAppendTime: the record time is the broker's, and the projector judges
# key validity at receipt by it (docs/keys.md); a sender-set time would be the sender's claim.
set -euo pipefail
BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
PREFIX=${PREFIX:-safeguarding}
PARTITIONS=${PARTITIONS:-12}
REPLICATION=${REPLICATION:-3}
for family in incident referral closure marac contact notification registration gap-flags quarantine; do
  kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$PREFIX.$family" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
    --config min.insync.replicas=2 --config retention.ms=-1 --config max.message.bytes=2097152 \
    --config message.timestamp.type=LogAppendTime
done
