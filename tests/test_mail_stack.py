"""send_email end to end: JSON API → Redis → real worker process → real SMTP server (aiosmtpd, in this process)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import catalog
from engine.embedded_redis import free_port
from engine.queues import SERIALIZER, CatalogJob
from engine.settings import PROJECT_ROOT
from tests.conftest import wait_for_job
from tests.mailserver import MailServer

pytestmark = pytest.mark.integration


@pytest.fixture
def mail_worker(start_worker, smtp: MailServer):
    """A real worker process whose SMTP_URL points at the in-process server."""
    return start_worker(extra_env={"SMTP_URL": smtp.url, "MAIL_FROM": "Stack <noreply@example.com>"})


def submit(client, **params) -> str:
    response = client.post("/api/jobs", json={"type": "send_email", "params": params})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_email_is_delivered_with_headers_and_body_intact(client, smtp, mail_worker):
    body = "Hi Ada,\n\nWelcome aboard — schön, dass du da bist. 🎉\n"
    job_id = submit(client, to="ada@example.com, bob@example.org", subject="Willkommen, Ada ✓", body=body)
    job = wait_for_job(client, job_id)
    assert job["status"] == "finished", (job, mail_worker.log())
    assert job["result"] == {
        "message_id": f"<{job_id}@example.com>", "delivered": ["ada@example.com", "bob@example.org"], "skipped": [],
    }
    [received] = smtp.received
    assert received.sender == "noreply@example.com"
    assert received.recipients == ("ada@example.com", "bob@example.org")
    message = received.message
    assert message["Subject"] == "Willkommen, Ada ✓"
    assert message["From"] == "Stack <noreply@example.com>"
    assert message["To"] == "ada@example.com, bob@example.org"
    assert message["Message-ID"] == f"<{job_id}@example.com>"
    assert message.get_content().replace("\r\n", "\n") == body


def test_transient_451_is_retried_then_delivered(client, smtp, start_worker, monkeypatch, redis):
    fast = dataclasses.replace(catalog.get("send_email"), retry_intervals=(1, 1))  # seconds, not minutes, in tests
    monkeypatch.setitem(catalog.CATALOG, "send_email", fast)
    smtp.reply("greylisted@example.com", "451 4.7.1 Greylisted, please try again later")
    start_worker(extra_env={"SMTP_URL": smtp.url})
    job_id = submit(client, to=["greylisted@example.com"], subject="Second time lucky", body="Hello.")
    job = wait_for_job(client, job_id)
    assert job["status"] == "finished", job
    assert job["result"]["delivered"] == ["greylisted@example.com"]
    assert smtp.rcpt_attempts["greylisted@example.com"] == 2
    assert [r.recipients for r in smtp.received] == [("greylisted@example.com",)]
    meta = CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER).meta
    assert meta["failures"] == 1
    assert meta["error"]["type"] == "MailDeferred"  # the first attempt's error, kept for the record
    assert "451 4.7.1 Greylisted" in meta["error"]["message"]


def test_permanent_550_fails_at_once_naming_recipient_and_reply(client, smtp, mail_worker, redis):
    smtp.reply("nobody@example.com", "550 5.1.1 No such user here")
    job_id = submit(client, to=["nobody@example.com"], subject="Hello", body="Is anyone there?")
    job = wait_for_job(client, job_id)
    assert job["status"] == "failed", job  # with retries left it would sit "scheduled" for 30 s instead
    assert job["error"]["type"] == "MailRejected"
    assert "nobody@example.com" in job["error"]["message"]
    assert "550 5.1.1 No such user here" in job["error"]["message"]
    assert "Traceback" not in job["error"]["message"]
    assert smtp.rcpt_attempts["nobody@example.com"] == 1 and smtp.received == []
    assert CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER).retries_left == 0


def test_rerun_of_a_sent_job_does_not_send_twice(client, app, smtp, mail_worker, redis):
    job_id = submit(client, to=["ada@example.com"], subject="Only once", body="You should get this once.")
    assert wait_for_job(client, job_id)["status"] == "finished"
    # At-least-once delivery: the same job may run again (a worker died before saving, or someone requeued it).
    job = CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER)
    app.extensions["queues"]["default"].enqueue_job(job)
    again = wait_for_job(client, job_id)
    assert again["status"] == "finished", (again, mail_worker.log())
    assert again["result"] == {"message_id": f"<{job_id}@example.com>", "delivered": [], "skipped": ["ada@example.com"]}
    assert len(CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER).results()) == 2  # it did run twice
    assert len(smtp.received) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"subject": "Hi", "body": "b"}, "params.to"),
        ({"to": ["ada@example.com", "bob@example.org", "carol@example.net", "dave"], "subject": "Hi", "body": "b"},
         "params.to.3"),
        ({"to": [f"u{i}@example.com" for i in range(51)], "subject": "Hi", "body": "b"}, "params.to"),
        ({"to": "ada@example.com", "subject": "x" * 201, "body": "b"}, "params.subject"),
        ({"to": "ada@example.com", "subject": "Hi\nBcc: eve@example.com", "body": "b"}, "params.subject"),
        ({"to": "ada@example.com", "subject": "Hi", "body": "x" * (100 * 1024 + 1)}, "params.body"),
        ({"to": "ada@example.com", "subject": "Hi", "body": "b", "bcc": "eve@example.com"}, "params.bcc"),
    ],
)
def test_invalid_submissions_are_refused_naming_the_field(client, redis, params, field):
    response = client.post("/api/jobs", json={"type": "send_email", "params": params})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_params"
    assert field in error["message"]
    assert not redis.keys("rq:job:*")  # nothing was enqueued


def test_largest_body_is_accepted_and_described_briefly(client, redis):
    body = "ü" * (50 * 1024)  # exactly 100 KB in UTF-8; \u-escaped by the client, 300 KB of JSON
    job_id = submit(client, to="ada@example.com", subject="Big", body=body)
    job = CatalogJob.fetch(job_id, connection=redis, serializer=SERIALIZER)
    assert job.kwargs["body"] == body
    assert job.description.startswith('send_email(to=["ada@example.com"], subject="Big", body="üüü')
    assert len(job.description) < 200  # the dashboard shows a label, not the body


def test_dev_mail_sink_saves_each_message(tmp_path: Path):
    import smtplib

    from jobs.mail import compose

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "mailsink.py"), "--dir", str(tmp_path)],
        env={**os.environ, "SMTP_URL": f"smtp://127.0.0.1:{port}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        message = compose("noreply@example.com", ["ada@example.com"], "Welcome to the sink ✉", "Saved as .eml.")
        deadline = time.monotonic() + 20
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                    smtp.send_message(message)
                break
            except OSError:
                if time.monotonic() > deadline or sink.poll() is not None:
                    raise
                time.sleep(0.1)
        [saved] = tmp_path.glob("*.eml")
        text = saved.read_text()
        assert "X-Envelope-To: ada@example.com" in text and "Saved as .eml." in text
    finally:
        sink.terminate()
        output = sink.communicate(timeout=10)[0].decode()
    assert "'Welcome to the sink ✉'" in output and str(saved) in output
    assert sink.returncode == 0
