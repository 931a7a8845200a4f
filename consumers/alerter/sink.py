"""A real SMTP server on a free loopback port that keeps what it receives in memory.

The demo sends its alerts here so that the whole mail path (routing, rendering, SMTP, the
exactly-once bookkeeping) runs for real without any message leaving the machine; the tests use the
same server (with a handler that can also refuse) to observe what the alerter sent.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    data: bytes

    @cached_property
    def message(self) -> EmailMessage:
        """Parsed once: the demo's table, its full print and the tests all read it again."""
        return cast(EmailMessage, message_from_bytes(self.data, policy=policy.default))

    def text(self) -> str:
        """The plain-text alternative: what a person reads in a terminal."""
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(cast(EmailMessage, body).get_content())


@dataclass
class RecordingHandler:
    """aiosmtpd handler: accepts every recipient and keeps each message as received."""

    received: list[ReceivedMail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


class MailSink:
    """Start/stop an SMTP server on 127.0.0.1; ``stop()`` then ``start()`` is an outage on the
    same port."""

    def __init__(self, handler: RecordingHandler | None = None, port: int | None = None) -> None:
        self.handler = handler or RecordingHandler()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        self._controller = Controller(self.handler, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def by_recipient(self) -> dict[str, list[ReceivedMail]]:
        out: dict[str, list[ReceivedMail]] = {}
        for mail in self.received:
            for recipient in mail.recipients:
                out.setdefault(recipient, []).append(mail)
        return out
