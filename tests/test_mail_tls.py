"""send_email over TLS: smtps://, ?starttls=1, login, and the errors a misconfigured SMTP_URL produces."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from jobs.mail import MailConfigError, MailSettings, MemoryLedger, compose, deliver
from tests.conftest import wait_for_job
from tests.mailserver import MailServer

TO = ["ada@example.com"]
USERS = {"app@example.com": "s3cret:p@ss"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """What the worker builds (verify the certificate and the host name), trusting our test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(params=["smtps", "starttls"])
def tls_server(request, server_context) -> Iterator[MailServer]:
    with MailServer(tls=request.param, context=server_context, users=USERS) as server:
        yield server


def settings_for(url: str, timeout: str = "5") -> MailSettings:
    return MailSettings.from_env({"SMTP_URL": url, "MAIL_FROM": "noreply@example.com", "SMTP_TIMEOUT": timeout})


def send(url: str, context: ssl.SSLContext | None = None) -> dict:
    return deliver(compose("noreply@example.com", TO, "Über TLS", "Encrypted."), TO, settings_for(url), MemoryLedger(),
                   context)


def test_delivers_over_tls_with_login(tls_server, client_context):
    # The password has ':' and '@', so it is percent-encoded in the URL, as a user would have to.
    result = send(tls_server.url_with_login("app%40example.com", "s3cret%3Ap%40ss"), client_context)
    assert result["delivered"] == TO
    [received] = tls_server.received
    assert received.tls and received.login == "app@example.com"
    assert received.message["Subject"] == "Über TLS"


def test_wrong_password_is_a_permanent_config_error(tls_server, client_context):
    with pytest.raises(MailConfigError, match="refused the login in SMTP_URL: 535"):
        send(tls_server.url_with_login("app%40example.com", "wrong"), client_context)
    assert tls_server.received == []


def test_untrusted_certificate_is_refused(tls_server):
    with pytest.raises(MailConfigError, match="not trusted"):
        send(tls_server.url_with_login("app%40example.com", "s3cret%3Ap%40ss"))  # the system CAs only
    assert tls_server.received == []


def test_starttls_to_a_server_without_it_is_a_config_error(client_context):
    with MailServer() as plain, pytest.raises(MailConfigError, match="STARTTLS"):
        send(plain.url + "?starttls=1", client_context)


def test_worker_sends_over_smtps(tmp_path: Path, ca, server_context, client, start_worker):
    """The real worker verifies the server against the CAs it is given (here by SSL_CERT_FILE, as OpenSSL reads)."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with MailServer(tls="smtps", context=server_context, users=USERS) as server:
        start_worker(extra_env={"SMTP_URL": server.url_with_login("app%40example.com", "s3cret%3Ap%40ss"),
                                "SSL_CERT_FILE": str(ca_file)})
        params = {"to": TO, "subject": "Über TLS", "body": "Encrypted."}
        job_id = client.post("/api/jobs", json={"type": "send_email", "params": params}).get_json()["id"]
        job = wait_for_job(client, job_id)
        assert job["status"] == "finished", job
        assert [(r.tls, r.login) for r in server.received] == [(True, "app@example.com")]
