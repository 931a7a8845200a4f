"""The package's loopback SMTP server, with a handler that can also refuse.

Answers 550 for any recipient in ``reject`` and 451 for everything while ``tempfail`` is set;
``stop()``/``start()`` simulate an outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from consumers.alerter.sink import MailSink, RecordingHandler, free_port

__all__ = ["RefusingHandler", "SmtpServer", "free_port"]


@dataclass
class RefusingHandler(RecordingHandler):
    reject: set[str] = field(default_factory=set)
    tempfail: bool = False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.tempfail:
            return "451 4.3.0 try again later"
        if address in self.reject:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class SmtpServer(MailSink):
    handler: RefusingHandler

    def __init__(self) -> None:
        super().__init__(RefusingHandler())


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server
