"""Kafka consumer groups: the projector, the alerter and the auditor's replay."""
