"""A real SMTP server (aiosmtpd) in the test process, on 127.0.0.1, with scripted replies per recipient."""

from __future__ import annotations

import ssl
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from engine.embedded_redis import free_port


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    tls: bool = False  # the session was encrypted (smtps or STARTTLS)
    login: str | None = None  # the user that authenticated, if any

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default_policy)  # type: ignore[return-value]


class _Handler:
    def __init__(self, server: MailServer):
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        with self.server.lock:
            self.server.rcpt_attempts[address] += 1
            scripted = self.server.rcpt_replies.get(address)
            reply = scripted.popleft() if scripted else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            self.server.received.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    envelope.original_content or b"",
                    # session.ssl is set by STARTTLS only; under smtps the transport itself is TLS
                    tls=session.ssl is not None or smtp.transport.get_extra_info("ssl_object") is not None,
                    login=session.login_data.decode() if session.login_data else None,
                )
            )
        return "250 Message accepted"


class MailServer:
    """Start with ``with MailServer() as server``; script refusals with ``server.reply(address, "451 …")``.

    ``tls`` is ``"smtps"`` (TLS from the first byte) or ``"starttls"`` (offered, and required before login), with
    ``context`` the server's certificate; ``users`` maps login → password and offers login.
    """

    def __init__(
        self, tls: str | None = None, context: ssl.SSLContext | None = None, users: dict[str, str] | None = None
    ) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rcpt_attempts: dict[str, int] = defaultdict(int)
        self.rcpt_replies: dict[str, deque[str]] = {}
        self.port = free_port()
        self.tls = tls
        self.users = users or {}
        options: dict = {}
        if tls == "smtps":
            options.update(ssl_context=context, auth_require_tls=False)  # aiosmtpd counts only STARTTLS as TLS
        elif tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        if users:  # aiosmtpd warns on required AUTH without STARTTLS, so under smtps login is offered, not forced
            options.update(authenticator=self._authenticate, auth_required=tls != "smtps")
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object):
        ok = isinstance(data, LoginPassword) and self.users.get(data.login.decode()) == data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=data)  # handled=False: aiosmtpd answers 535 itself

    @property
    def url(self) -> str:
        scheme = "smtps" if self.tls == "smtps" else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}" + ("?starttls=1" if self.tls == "starttls" else "")

    def url_with_login(self, user: str, password: str) -> str:
        return self.url.replace("://", f"://{user}:{password}@", 1)

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
