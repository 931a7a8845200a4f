"""The demo's alerter: the real one, reading the demo's gap-flags topic and sending through real
SMTP to a loopback sink, so the demo shows exactly the emails a partnership would receive.

It runs while the demo's pipeline (and so the embedded broker) is still up, with direct partition
assignment (no group join) and the demo's database, and stops once its stored positions cover
every flag change the projector published.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from importlib import resources

from sqlalchemy import func, select

from consumers.alerter.alerter import Alerter
from consumers.alerter.config import PartnershipConfig, load_config
from consumers.alerter.sender import SendReport
from consumers.alerter.sink import MailSink, ReceivedMail
from sgledger.pipeline import Pipeline
from views.models import FlagChangeRow

DEMO_ROUTING = "cspr-child-charlie.partnership.toml"


class AlertsTimeout(Exception):
    """The alerter did not read every published flag change in time."""


@dataclass(frozen=True)
class DemoMail:
    sink: str  # host:port of the SMTP server the mail went to
    changes: int  # flag changes the projector published
    report: SendReport
    received: list[ReceivedMail]


def demo_routing(sink: MailSink) -> PartnershipConfig:
    with resources.as_file(resources.files("sgledger") / "scenarios" / DEMO_ROUTING) as path:
        config = load_config(path)
    return replace(config, smtp=replace(config.smtp, host=sink.host, port=sink.port))


def published_changes(pipeline: Pipeline) -> int:
    with pipeline.ledger.read() as session:
        count = session.scalar(
            select(func.count()).select_from(FlagChangeRow).where(FlagChangeRow.published.is_(True))
        )
    return int(count or 0)


def send_demo_mail(pipeline: Pipeline, timeout_s: float = 60.0) -> DemoMail:
    """Mail every flag change of this (fresh) run to a local sink and return what it received."""
    changes = published_changes(pipeline)
    with MailSink() as sink:
        alerter = Alerter(pipeline.kafka, demo_routing(sink), pipeline.settings.database_url, group_id=None)
        try:
            deadline = time.monotonic() + timeout_s
            while sum(alerter.store.positions(alerter.topic, alerter.cluster).values()) < changes:
                if time.monotonic() > deadline:
                    raise AlertsTimeout(
                        f"the alerter did not read all {changes} flag changes in {timeout_s:.0f} s"
                    )
                alerter.consume_once(timeout_ms=200)
            report = alerter.send_once()
        finally:
            alerter.close()
        return DemoMail(f"{sink.host}:{sink.port}", changes, report, list(sink.received))
