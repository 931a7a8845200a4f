"""`sgledger topics`: the partnership's Kafka topics, created from the same settings the services
use, so a cluster where clients may not create topics (and `deploy/topics.sh`) gets exactly what
the services would have made: one partition count everywhere, the same topic configs."""

from __future__ import annotations

import click

from sgledger.cli.context import AppContext, console, pass_app, print_json
from transport.kafka import ensure_topics

CLUSTER_ONLY = "topics needs a Kafka cluster (--bootstrap-servers): the embedded broker makes its own topics"


@click.group()
def topics() -> None:
    """The partnership's Kafka topics (partitions and replicas from SGLEDGER_KAFKA_PARTITIONS and
    SGLEDGER_KAFKA_REPLICATION_FACTOR, as every service reads them)."""


@topics.command("ensure")
@click.option("--json", "as_json", is_flag=True, help="Print the topics and their settings as JSON.")
@pass_app
def ensure(app: AppContext, as_json: bool) -> None:
    """Create the missing topics; refuse (exit 1) if an existing one has another partition count.

    Safe to run again and alongside the services: it only ever creates."""
    kafka = app.cluster(CLUSTER_ONLY)
    names = kafka.topics.all()
    created = set(ensure_topics(kafka, names))
    if as_json:
        print_json(
            {
                "bootstrap_servers": kafka.bootstrap_servers,
                "partitions": kafka.partitions,
                "replication_factor": kafka.replication_factor,
                "configs": kafka.topic_configs(),
                "topics": [{"name": n, "created": n in created} for n in names],
            }
        )
        return
    for name in names:
        console.print(f"{name}: {'created' if name in created else 'exists'}")
    console.print(
        f"{kafka.partitions} partitions, replication factor {kafka.replication_factor}, "
        + ", ".join(f"{k}={v}" for k, v in kafka.topic_configs().items())
    )
