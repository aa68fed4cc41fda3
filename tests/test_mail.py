"""send_email without a worker: its schema, SMTP_URL, error mapping, and delivery to a real in-process SMTP server."""

from __future__ import annotations

import smtplib
import socket

import pytest

from engine import catalog
from engine.errors import PermanentError, TransientError
from engine.settings import ConfigError
from jobs.mail import (
    MailConfigError,
    MailConnectionError,
    MailDeferred,
    MailRejected,
    MailSettings,
    MemoryLedger,
    RedisLedger,
    SmtpServer,
    classify,
    compose,
    deliver,
)

SENDER = "Stack <noreply@example.com>"
VALID = {"to": ["ada@example.com"], "subject": "Welcome", "body": "Hello Ada."}


def mail_settings(url: str) -> MailSettings:
    return MailSettings.from_env({"SMTP_URL": url, "MAIL_FROM": SENDER, "SMTP_TIMEOUT": "5"})


# --- schema -------------------------------------------------------------------------------------------------------


def test_send_email_is_catalogued_with_a_described_schema():
    job_type = catalog.get("send_email")
    assert job_type.func_path == "jobs.mail.send_email"
    assert job_type.description
    schema = job_type.schema.model_json_schema()
    assert schema["required"] == ["to", "subject", "body"]
    props = schema["properties"]
    assert props["to"]["maxItems"] == 50 and props["to"]["items"]["format"] == "email"
    assert props["subject"]["maxLength"] == 200
    assert props["body"]["maxLength"] == 100 * 1024
    assert all(props[name].get("title") and props[name].get("description") for name in props)


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("ada@example.com", ["ada@example.com"]),
        ("ada@example.com, bob@example.org", ["ada@example.com", "bob@example.org"]),
        (["Ada@EXAMPLE.com", "ada@example.com"], ["Ada@example.com", "ada@example.com"]),
        (["bob@example.org", "bob@example.org"], ["bob@example.org"]),
        (["rene@bücher.example"], ["rene@xn--bcher-kva.example"]),
    ],
)
def test_recipients_are_normalised(to, expected):
    assert catalog.get("send_email").validate({**VALID, "to": to})["to"] == expected


def test_limits_are_inclusive():
    params = {"to": [f"user{i}@example.com" for i in range(50)], "subject": "é" * 200, "body": "é" * (50 * 1024)}
    assert catalog.get("send_email").validate(params)["subject"] == "é" * 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"subject": "s", "body": "b"}, "params.to"),
        ({**VALID, "to": []}, "params.to"),
        ({**VALID, "to": ""}, "params.to"),
        ({**VALID, "to": 42}, "params.to"),
        ({**VALID, "to": ["ada@example.com", "not-an-address"]}, "params.to.1"),
        ({**VALID, "to": ["ok@example.com"] * 3 + ["ada@"]}, "params.to.3"),
        ({**VALID, "to": ["ada@localhost"]}, "params.to.0"),
        ({**VALID, "to": ["Ada <ada@example.com>"]}, "params.to.0"),
        ({**VALID, "to": ["ada@example.com\r\nBcc: eve@example.com"]}, "params.to.0"),
        ({**VALID, "to": [f"user{i}@example.com" for i in range(51)]}, "params.to"),
        ({**VALID, "subject": ""}, "params.subject"),
        ({**VALID, "subject": "   "}, "params.subject"),
        ({**VALID, "subject": "x" * 201}, "params.subject"),
        ({**VALID, "subject": "Hi\r\nBcc: eve@example.com"}, "params.subject"),
        ({**VALID, "subject": None}, "params.subject"),
        ({**VALID, "body": "x" * (100 * 1024 + 1)}, "params.body"),
        ({**VALID, "body": "é" * (50 * 1024 + 1)}, "params.body"),
        ({**VALID, "body": ["lines"]}, "params.body"),
        ({**VALID, "cc": ["bob@example.com"]}, "params.cc"),
    ],
)
def test_invalid_params_name_the_field(params, field):
    with pytest.raises(catalog.InvalidParams) as info:
        catalog.get("send_email").validate(params)
    assert field in info.value.errors, info.value.errors


def test_description_stays_short_for_a_large_body():
    job_type = catalog.get("send_email")
    text = job_type.describe(job_type.validate({**VALID, "body": "word " * 20_000}))
    assert text.startswith('send_email(to=["ada@example.com"], subject="Welcome", body="word word')
    assert len(text) < 200 and text.endswith("…)")


# --- SMTP_URL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25)),
        ("smtps://u:p@mail.example.com", SmtpServer("mail.example.com", 465, True, False, "u", "p")),
        ("smtp://u%40x:p%3Aw@mx.example.com:587?starttls=1",
         SmtpServer("mx.example.com", 587, False, True, "u@x", "p:w")),
        ("smtp://u:p@127.0.0.1:2525", SmtpServer("127.0.0.1", 2525, username="u", password="p")),
        ("smtp://[::1]:2525?starttls=0", SmtpServer("::1", 2525)),
    ],
)
def test_smtp_url_parsed(url, expected):
    assert MailSettings.from_env({"SMTP_URL": url}).smtp == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMTP_URL", "http://mail.example.com"),
        ("SMTP_URL", "mail.example.com:25"),
        ("SMTP_URL", "smtp://"),
        ("SMTP_URL", "smtp://mail.example.com:port"),
        ("SMTP_URL", "smtp://mail.example.com?tls=1"),
        ("SMTP_URL", "smtp://mail.example.com:25/inbox"),
        ("SMTP_URL", "smtp://mail.example.com?starttls=maybe"),
        ("SMTP_URL", "smtps://mail.example.com?starttls=1"),
        ("SMTP_URL", "smtp://user@mail.example.com?starttls=1"),
        ("SMTP_URL", "smtp://user:secret@mail.example.com:587"),
        ("SMTP_TIMEOUT", "0"),
        ("SMTP_TIMEOUT", "soon"),
        ("MAIL_FROM", "nobody"),
        ("MAIL_FROM", "a@example.com\nBcc: eve@example.com"),
    ],
)
def test_bad_mail_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        MailSettings.from_env({name: value})
    assert info.value.name == name


def test_password_is_not_in_repr():
    settings = MailSettings.from_env({"SMTP_URL": "smtps://user:hunter2-secret@mail.example.com"})
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.smtp.url


# --- error mapping ------------------------------------------------------------------------------------------------

SERVER = SmtpServer("mail.example.com", 25)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (smtplib.SMTPSenderRefused(451, b"4.3.0 Try later", "noreply@example.com"), MailDeferred),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 Not allowed", "noreply@example.com"), MailRejected),
        (smtplib.SMTPDataError(452, b"4.3.1 Insufficient storage"), MailDeferred),
        (smtplib.SMTPDataError(554, b"5.7.1 Spam"), MailRejected),
        (smtplib.SMTPConnectError(421, b"4.3.2 Busy"), MailDeferred),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"), MailConfigError),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary auth failure"), MailDeferred),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), MailConfigError),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), MailConnectionError),
        (ConnectionRefusedError(111, "Connection refused"), MailConnectionError),
        (TimeoutError("timed out"), MailConnectionError),
        (socket.gaierror(-2, "Name or service not known"), MailConnectionError),
    ],
)
def test_smtp_errors_map_to_job_errors(exc, kind):
    error = classify(exc, SERVER, "sending to ada@example.com")
    assert type(error) is kind
    assert "smtp://mail.example.com:25" in str(error)
    if isinstance(exc, smtplib.SMTPResponseException):
        assert str(exc.smtp_code) in str(error) and exc.smtp_error.decode() in str(error)
    assert isinstance(error, TransientError) == (kind in (MailDeferred, MailConnectionError))
    assert isinstance(error, PermanentError) == (kind in (MailRejected, MailConfigError))


# --- delivery to a real SMTP server, in process --------------------------------------------------------------------


def test_message_arrives_with_headers_and_utf8_intact(smtp):
    body = "Hallo Ada,\n\nwillkommen! Grüße aus Köln — 你好.\n" + "a long line " * 200 + "\n"
    message = compose(SENDER, ["ada@example.com", "bob@example.org"], "Grüße, Ada 👋", body, "job-123")
    result = deliver(message, ["ada@example.com", "bob@example.org"], mail_settings(smtp.url), MemoryLedger())
    assert result == {
        "message_id": "<job-123@example.com>", "delivered": ["ada@example.com", "bob@example.org"], "skipped": [],
    }
    [received] = smtp.received
    assert received.sender == "noreply@example.com"
    assert received.recipients == ("ada@example.com", "bob@example.org")
    got = received.message
    assert got["Subject"] == "Grüße, Ada 👋"
    assert got["From"] == SENDER and got["To"] == "ada@example.com, bob@example.org"
    assert got["Message-ID"] == "<job-123@example.com>" and got["Date"]
    assert got.get_content_type() == "text/plain" and got.get_content_charset() == "utf-8"
    assert got.get_content().replace("\r\n", "\n") == body  # CRLF on the wire; the text itself is unchanged
    assert max(len(line) for line in received.raw.splitlines()) <= 998  # SMTP's line limit


def test_ledger_skips_recipients_already_delivered(smtp, redis):
    ledger = RedisLedger(redis, "job-twice", ttl=60)
    settings = mail_settings(smtp.url)
    message = compose(SENDER, ["ada@example.com"], "Once", "Only once.", "job-twice")
    assert deliver(message, ["ada@example.com"], settings, ledger)["delivered"] == ["ada@example.com"]
    again = deliver(message, ["ada@example.com"], settings, RedisLedger(redis, "job-twice", ttl=60))
    assert again == {"message_id": "<job-twice@example.com>", "delivered": [], "skipped": ["ada@example.com"]}
    assert len(smtp.received) == 1
    assert 0 < redis.ttl("stack:mail:sent:job-twice") <= 60


def test_partial_refusal_retries_only_the_deferred_recipient(smtp, redis):
    smtp.reply("bob@example.org", "451 4.7.1 Greylisted, try again later")
    ledger = RedisLedger(redis, "job-partial", ttl=60)
    settings = mail_settings(smtp.url)
    to = ["ada@example.com", "bob@example.org"]
    message = compose(SENDER, to, "Hi both", "Hello.", "job-partial")
    with pytest.raises(MailDeferred) as info:
        deliver(message, to, settings, ledger)
    assert "bob@example.org" in str(info.value) and "451 4.7.1 Greylisted, try again later" in str(info.value)
    assert str(info.value).endswith("It was delivered to ada@example.com.")
    result = deliver(message, to, settings, ledger)
    assert result["delivered"] == ["bob@example.org"] and result["skipped"] == ["ada@example.com"]
    assert [r.recipients for r in smtp.received] == [("ada@example.com",), ("bob@example.org",)]


def test_permanent_refusal_names_each_recipient_and_reply(smtp):
    smtp.reply("nobody@example.com", "550 5.1.1 No such user here")
    smtp.reply("gone@example.com", "550 5.1.1 Mailbox gone")
    to = ["nobody@example.com", "gone@example.com"]
    with pytest.raises(MailRejected) as info:
        deliver(compose(SENDER, to, "s", "b"), to, mail_settings(smtp.url), MemoryLedger())
    assert "nobody@example.com: 550 5.1.1 No such user here" in str(info.value)
    assert "gone@example.com: 550 5.1.1 Mailbox gone" in str(info.value)
    assert smtp.received == []


def test_unreachable_server_is_transient():
    url = f"smtp://127.0.0.1:{_closed_port()}"
    with pytest.raises(MailConnectionError, match="127.0.0.1"):
        deliver(compose(SENDER, ["ada@example.com"], "s", "b"), ["ada@example.com"], mail_settings(url), MemoryLedger())


def test_silent_server_times_out():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts the connection, never says 220
        url = f"smtp://127.0.0.1:{listener.getsockname()[1]}"
        settings = MailSettings.from_env({"SMTP_URL": url, "SMTP_TIMEOUT": "0.5"})
        with pytest.raises(MailConnectionError, match="did not answer"):
            deliver(compose(SENDER, ["ada@example.com"], "s", "b"), ["ada@example.com"], settings, MemoryLedger())


def test_missing_smtp_url_is_a_readable_permanent_error():
    with pytest.raises(MailConfigError, match="SMTP_URL is not set"):
        deliver(compose(SENDER, ["ada@example.com"], "s", "b"), ["ada@example.com"], MailSettings(), MemoryLedger())


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]
