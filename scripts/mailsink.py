"""Development SMTP sink for ``make run``: accepts every message on SMTP_URL's address and saves it as .eml."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402

from engine.settings import VAR_DIR, ConfigError  # noqa: E402
from jobs.mail import MailSettings  # noqa: E402


class SaveToFiles:
    """aiosmtpd handler: write each message to ``<directory>/<UTC timestamp>.eml`` and print one line."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{self.count}.eml"
        content = envelope.original_content or b""
        # The envelope recipients go first (as Delivered-To would), since To: need not list them all.
        header = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos).encode()
        path.write_bytes(header + content)
        subject = message_from_bytes(content, policy=default_policy).get("Subject", "")
        print(f"mail to {', '.join(envelope.rcpt_tos)}: {subject!r} saved in {path}", flush=True)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    """Listen until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    handler: Any = SaveToFiles(directory)
    server = await loop.create_server(lambda: SMTP(handler, hostname="mailsink"), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"mail sink listening on smtp://{host}:{port}, saving to {directory}/", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=VAR_DIR / "mail", help="where to save messages (var/mail/)")
    args = parser.parse_args(argv)
    try:
        smtp = MailSettings.from_env().smtp
    except ConfigError as exc:
        print(f"mailsink: configuration error: {exc}", file=sys.stderr)
        return 2
    if smtp is None or smtp.implicit_tls or smtp.starttls:
        print("mailsink: set SMTP_URL to a plain smtp://host:port for the sink to listen on", file=sys.stderr)
        return 2
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(smtp.host, smtp.port, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
