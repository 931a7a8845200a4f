"""The services' Prometheus metrics, one registry per process.

Names follow Prometheus conventions (``_total`` counters, base units). Labels carry only
bounded, non-personal values: outcome, reason, rule, change, topic, partition; never a child,
person or agency-entered text, so a metrics store never becomes a copy of the records.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "sgledger_messages_total",
            "Messages the projector handled, by outcome (accepted, duplicate, held, quarantined) and reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.flag_changes = Counter(
            "sgledger_flag_changes_total",
            "Gap-flag lifecycle changes (raised, resolved, acknowledged, dismissed, reopened) by rule.",
            ["rule", "change"],
            registry=self.registry,
        )
        self.mail = Counter(
            "sgledger_mail_total",
            "Alert emails by outcome (sent, deferred, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.relayed = Counter(
            "sgledger_relayed_events_total",
            "Outbox events the broker acknowledged.",
            registry=self.registry,
        )
        self.lag = Gauge(
            "sgledger_consumer_lag",
            "Records on the broker not yet consumed, per topic partition (high watermark - position).",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "sgledger_batch_seconds",
            "Time to handle one batch (poll to commit).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.last_success = Gauge(
            "sgledger_last_success_timestamp_seconds",
            "Unix time of the last batch that completed (readiness looks at its age).",
            registry=self.registry,
        )
        Gauge("sgledger_up", "1 while the service runs.", ["service"], registry=self.registry).labels(
            service
        ).set(1)

    def count_messages(self, outcomes: Mapping[tuple[str, str], int]) -> None:
        for (outcome, reason), n in outcomes.items():
            if n:
                self.messages.labels(outcome, reason).inc(n)

    def count_flag_changes(self, changes: Mapping[tuple[str, str], int]) -> None:
        for (rule, change), n in changes.items():
            self.flag_changes.labels(rule, change).inc(n)

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), value in lag.items():
            self.lag.labels(topic, str(partition)).set(value)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
