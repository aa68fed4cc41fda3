"""A real SMTP server (aiosmtpd) in the test process, on 127.0.0.1, with scripted replies per recipient."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from jobs.embedded_redis import free_port


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default_policy)  # type: ignore[return-value]


class _Handler:
    def __init__(self, server: MailServer):
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:  # noqa: N802
        with self.server.lock:
            self.server.rcpt_attempts[address] += 1
            scripted = self.server.rcpt_replies.get(address)
            reply = scripted.popleft() if scripted else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content or b"")
            )
        return "250 Message accepted"


class MailServer:
    """Start with ``with MailServer() as server``; script refusals with ``server.reply(address, "451 …")``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rcpt_attempts: dict[str, int] = defaultdict(int)
        self.rcpt_replies: dict[str, deque[str]] = {}
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def reply(self, address: str, *replies: str) -> None:
        """Answer the next RCPT TO for ``address`` with these replies in turn, then accept it."""
        with self.lock:
            self.rcpt_replies[address] = deque(replies)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.rcpt_attempts.clear()
            self.rcpt_replies.clear()

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
