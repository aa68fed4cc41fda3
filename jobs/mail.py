"""The ``send_email`` job: a plain-text email over SMTP (SMTP_URL), sent at most once per job id."""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qsl, unquote, urlparse

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field
from redis import Redis
from rq import get_current_job

from engine import JobError, PermanentError, Progress, TransientError, job
from engine.settings import EnvSettings, Settings, boolean, number, var

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 200
MAX_BODY_BYTES = 100 * 1024
LEDGER_PREFIX = "stack:mail:sent:"  # + job id → set of recipients already delivered


@dataclass(frozen=True)
class SmtpServer:
    """Where send_email delivers: parsed from SMTP_URL (smtp://user:pass@host:port, smtps://, ?starttls=1)."""

    host: str
    port: int
    implicit_tls: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False  # smtp://…?starttls=1: upgrade the plain connection before logging in
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The URL without credentials, safe to print."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}" + ("?starttls=1" if self.starttls else "")


def smtp_server(url: str) -> SmtpServer:
    """SMTP_URL parsed: smtp://user:pass@host:port, smtps://…, or smtp://…?starttls=1."""
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps"):
        raise ValueError(f"scheme must be smtp:// or smtps://, got {parsed.scheme or url!r}")
    if not parsed.hostname:
        raise ValueError("no host; use smtp://user:password@host:port")
    try:
        port = parsed.port or (465 if parsed.scheme == "smtps" else 25)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if parsed.path not in ("", "/"):
        raise ValueError(f"takes no path, got {parsed.path!r}; use smtp://user:password@host:port")
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; the only one is ?starttls=1")
    try:
        starttls = boolean(query["starttls"]) if query.get("starttls", "").strip() else False
    except ValueError:
        raise ValueError(f"starttls must be 1 or 0, got {query['starttls']!r}") from None
    if starttls and parsed.scheme == "smtps":
        raise ValueError("smtps:// is TLS already; ?starttls=1 applies to smtp:// only")
    if (parsed.username is None) != (parsed.password is None):
        raise ValueError("give both a user and a password (smtp://user:password@host), or neither")
    if parsed.username is not None and parsed.scheme == "smtp" and not starttls and not _is_loopback(parsed.hostname):
        raise ValueError("a password would cross the network in clear text: use smtps:// or ?starttls=1")
    return SmtpServer(
        host=parsed.hostname,
        port=port,
        implicit_tls=parsed.scheme == "smtps",
        starttls=starttls,
        username=unquote(parsed.username) if parsed.username is not None else None,
        password=unquote(parsed.password) if parsed.password is not None else None,
    )


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mail_from(raw: str) -> str:
    """A From address on one line: noreply@example.com or 'App <noreply@example.com>'."""
    raw = raw.strip()
    _, address = parseaddr(raw)
    if "@" not in address or any(c in raw for c in "\r\n"):
        raise ValueError(f"must be an address like noreply@example.com or 'App <noreply@…>', got {raw!r}")
    return raw


class MailRejected(PermanentError):
    """The SMTP server answered 5xx: a recipient, the sender or the message was refused for good."""

    headline = "The mail server refused the message."


class MailConfigError(PermanentError):
    """Mail cannot be sent as configured: SMTP_URL unset, login refused, TLS unavailable or untrusted."""

    headline = "Mail is not set up to be sent."


class MailDeferred(TransientError):
    """The SMTP server answered 4xx (greylisting, rate limit, mailbox busy): try again later."""

    headline = "The mail server asked us to try again later."


class MailConnectionError(TransientError):
    """The SMTP server could not be reached, timed out, or dropped the connection."""

    headline = "The mail server could not be reached."


@dataclass(frozen=True)
class MailSettings(EnvSettings):
    """Where and how send_email delivers: the SMTP_* and MAIL_FROM variables."""

    smtp: SmtpServer | None = var("SMTP_URL", smtp_server, None)  # None: send_email fails saying SMTP_URL is unset
    smtp_timeout: float = var("SMTP_TIMEOUT", number(0.1, 600.0), 10.0)
    mail_from: str = var("MAIL_FROM", mail_from, "noreply@localhost")


def _address(value: str) -> str:
    try:
        # No DNS at the door (check_deliverability=False); ASCII envelopes so any server accepts them.
        checked = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return checked.ascii_email or checked.normalized


def _split(value: Any) -> Any:
    """Accept "a@x.org, b@y.org" as well as a list, so forms and CLIs can send one text field."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _unique(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


def _one_line(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be one line of text (no line breaks or control characters)")
    return value


def _fits(value: str) -> str:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise ValueError(f"is {size} bytes in UTF-8; the limit is {MAX_BODY_BYTES} (100 KB)")
    return value


Address = Annotated[str, Field(max_length=254, json_schema_extra={"format": "email"}), AfterValidator(_address)]
Recipients = Annotated[
    list[Address],
    BeforeValidator(_split),
    Field(min_length=1, max_length=MAX_RECIPIENTS, title="To",
          description=f"Recipient addresses, 1 to {MAX_RECIPIENTS} (a list, or one text with commas)."),
    AfterValidator(_unique),
]
Subject = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SUBJECT_CHARS, title="Subject", description="One line, any language."),
    AfterValidator(_one_line),
]
Body = Annotated[
    str,
    Field(max_length=MAX_BODY_BYTES, title="Body", description="Plain text, up to 100 KB in UTF-8.",
          json_schema_extra={"contentMediaType": "text/plain"}),
    AfterValidator(_fits),
]


@lru_cache(maxsize=1)
def mail_settings() -> MailSettings:
    """SMTP_URL, SMTP_TIMEOUT and MAIL_FROM from the worker's environment, read once per process."""
    return MailSettings.from_env()


@job(
    retry=(30, 120, 600, 1800, 3600),  # greylisting and rate limits clear in minutes, not seconds
    access="protected",  # an open form that sends mail is a spam relay
    stages={"sending": "Sending the message"},
    settings=mail_settings,
)
def send_email(to: Recipients, subject: Subject, body: Body) -> dict[str, Any]:
    """Send a plain-text email to up to 50 recipients over SMTP."""
    settings = mail_settings()
    current = get_current_job()
    ledger: Ledger = MemoryLedger()
    if current is not None:
        kept = Settings.from_env()
        ledger = RedisLedger(current.connection, current.id, ttl=max(kept.result_ttl, kept.failure_ttl) + 86400)
    message = compose(settings.mail_from, to, subject, body, current.id if current is not None else None)
    Progress(current).update("sending", 0, None, force=True)
    return deliver(message, to, settings, ledger)


class Ledger(Protocol):
    """Which recipients a job has already delivered to."""

    def sent(self) -> set[str]: ...

    def record(self, recipients: Iterable[str]) -> None: ...


class RedisLedger:
    """Delivered recipients in a Redis set under the job id, so a re-run of the job sends to nobody twice."""

    def __init__(self, connection: Redis, job_id: str, ttl: int):
        self.connection, self.key, self.ttl = connection, LEDGER_PREFIX + job_id, ttl

    def sent(self) -> set[str]:
        return {member.decode() for member in self.connection.smembers(self.key)}

    def record(self, recipients: Iterable[str]) -> None:
        recipients = list(recipients)
        if recipients:
            with self.connection.pipeline() as pipe:
                pipe.sadd(self.key, *recipients).expire(self.key, self.ttl).execute()


class MemoryLedger:
    """A ledger for calls outside a worker (a shell, a unit test): it lasts as long as the object."""

    def __init__(self) -> None:
        self._sent: set[str] = set()

    def sent(self) -> set[str]:
        return set(self._sent)

    def record(self, recipients: Iterable[str]) -> None:
        self._sent.update(recipients)


def compose(sender: str, to: list[str], subject: str, body: str, job_id: str | None = None) -> EmailMessage:
    """The message; its Message-ID derives from the job id, so every attempt of one job sends the same one."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{job_id}@{domain}>" if job_id else make_msgid(domain=domain)
    message.set_content(body)
    return message


def deliver(
    message: EmailMessage,
    recipients: list[str],
    settings: MailSettings,
    ledger: Ledger,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Send ``message`` to the recipients the ledger has not seen, record them, and raise for any refused."""
    done = ledger.sent()
    pending = [r for r in recipients if r not in done]
    result: dict[str, Any] = {
        "message_id": message["Message-ID"],
        "delivered": [],
        "skipped": [r for r in recipients if r in done],  # delivered by an earlier run of this job
    }
    if not pending:
        return result
    if settings.smtp is None:
        raise MailConfigError("SMTP_URL is not set, so no mail can be sent; set it to smtp://user:pass@host:port.")
    sender = parseaddr(settings.mail_from)[1]
    with session(settings.smtp, settings.smtp_timeout, context) as smtp:
        refused = _send(smtp, message, sender, pending, settings.smtp)
        accepted = [r for r in pending if r not in refused]
        ledger.record(accepted)  # before anything else can fail: these must never be sent again
    if refused:
        raise refusal(refused, delivered=[r for r in recipients if r in done or r in accepted])
    result["delivered"] = accepted
    return result


@contextmanager
def session(server: SmtpServer, timeout: float, context: ssl.SSLContext | None = None) -> Iterator[smtplib.SMTP]:
    """A connected, logged-in SMTP session; every socket step (connect, TLS, each reply) has ``timeout``."""
    context = context or ssl.create_default_context()
    helo = socket.gethostname()  # smtplib's default, getfqdn(), does a DNS lookup with no timeout
    smtp: smtplib.SMTP | None = None
    try:
        if server.implicit_tls:
            smtp = smtplib.SMTP_SSL(server.host, server.port, helo, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, helo, timeout=timeout)
            if server.starttls:
                smtp.starttls(context=context)
        if server.username is not None:
            smtp.login(server.username, server.password or "")
    except (smtplib.SMTPException, OSError) as exc:
        if smtp is not None:
            smtp.close()
        raise classify(exc, server, "connecting") from None
    try:
        yield smtp
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # the message is already accepted or refused; a rude goodbye changes nothing


def _send(
    smtp: smtplib.SMTP, message: EmailMessage, sender: str, pending: list[str], server: SmtpServer
) -> dict[str, tuple[int, bytes]]:
    """Recipients the server refused, with its replies (empty when all were accepted)."""
    try:
        return smtp.send_message(message, from_addr=sender, to_addrs=pending)
    except smtplib.SMTPRecipientsRefused as exc:
        return exc.recipients
    except (smtplib.SMTPException, OSError) as exc:
        raise classify(exc, server, f"sending to {_names(pending)}") from None


def refusal(refused: dict[str, tuple[int, bytes]], delivered: list[str]) -> JobError:
    """One error naming each refused recipient and the server's reply: transient if any reply was 4xx."""
    details = "; ".join(f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in refused.items())
    sent = f" It was delivered to {_names(delivered)}." if delivered else ""
    if any(400 <= code < 500 for code, _ in refused.values()):
        return MailDeferred(f"The SMTP server deferred {_names(refused)} ({details}).{sent}")
    return MailRejected(f"The SMTP server refused {_names(refused)} ({details}).{sent}")


def classify(exc: BaseException, server: SmtpServer, during: str) -> JobError:
    """Map an smtplib or socket error to a job error: 4xx and network trouble are transient, 5xx permanent."""
    where = f"SMTP server {server.url}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailConfigError(f"{where} while {during}: {exc} (check ?starttls and the credentials in SMTP_URL).")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPAuthenticationError) and exc.smtp_code >= 500:
            return MailConfigError(f"{where} refused the login in SMTP_URL: {reply}.")
        if 400 <= exc.smtp_code < 500:
            return MailDeferred(f"{where} deferred {during}: {reply}.")
        if exc.smtp_code >= 500:
            return MailRejected(f"{where} refused {during}: {reply}.")
        return MailConnectionError(f"{where} gave an unexpected reply while {during}: {reply}.")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailConfigError(f"{where}: its TLS certificate is not trusted ({exc.verify_message}).")
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):  # smtplib wraps read timeouts
        return MailConnectionError(f"{where} did not answer within the SMTP_TIMEOUT while {during}.")
    return MailConnectionError(f"{where} failed while {during}: {exc or type(exc).__name__}.")


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"[:300]


def _names(recipients: Iterable[str], shown: int = 3) -> str:
    recipients = list(recipients)
    names = ", ".join(recipients[:shown])
    return names + (f" and {len(recipients) - shown} more" if len(recipients) > shown else "")
