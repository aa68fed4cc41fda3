"""``make run``: start an embedded Redis (unless REDIS_URL is set), then the Procfile under honcho."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.embedded_redis import RedisServer, free_port  # noqa: E402
from engine.settings import PROJECT_ROOT, VAR_DIR, ConfigError, Settings  # noqa: E402
from jobs.mail import MailSettings  # noqa: E402


def kept_secret(name: str, nbytes: int) -> str:
    """A random secret stored under var/, so sessions and the dashboard login survive restarts."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.2)
    return False


def mail_note(procfile: Path, settings: MailSettings) -> str:
    """Where send_email's messages go, for the start-up banner."""
    if settings.smtp is None:
        return "SMTP_URL unset: send_email jobs will fail"
    sink = procfile.name == "Procfile.run"
    return settings.smtp.url + (" (local sink: each message is saved in var/mail/)" if sink else "")


def procfile_with_dev_processes() -> Path:
    """Procfile plus Procfile.dev (development-only processes such as the mail sink), written under var/."""
    combined = VAR_DIR / "Procfile.run"
    parts = [(PROJECT_ROOT / name).read_text().rstrip("\n") for name in ("Procfile", "Procfile.dev")]
    combined.write_text("\n".join(parts) + "\n")
    return combined


def main() -> int:
    VAR_DIR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("APP_ENV", "development")
    # The Procfile names bare commands (gunicorn, python): find them in this venv even when it is not activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("SECRET_KEY", kept_secret("secret_key", 32))
    env.setdefault("DASHBOARD_PASSWORD", kept_secret("dashboard_password", 12))
    env.setdefault("METRICS_TOKEN", kept_secret("metrics_token", 24))
    procfile = PROJECT_ROOT / "Procfile"
    if not env.get("SMTP_URL"):  # no real mail server named: send to the local sink, which saves under var/mail/
        env["SMTP_URL"] = f"smtp://127.0.0.1:{8025 if port_is_free(8025) else free_port()}"
        procfile = procfile_with_dev_processes()
    redis = None
    try:
        if not env.get("REDIS_URL"):
            try:
                redis = RedisServer(VAR_DIR / "redis").start()
            except RuntimeError as exc:  # none on this machine, or too old: say so, without a traceback
                print(f"make run: {exc}", file=sys.stderr)
                return 2
            env["REDIS_URL"] = redis.url
        return run_stack(env, procfile)
    finally:
        if redis is not None:
            redis.stop()  # last, so the worker can finish writing its results


def run_stack(env: dict[str, str], procfile: Path) -> int:
    """Check the settings and the port, run the Procfile under honcho, print the banner, wait for Ctrl-C."""
    try:
        settings = Settings.from_env(env)
        mail = MailSettings.from_env(env)
    except ConfigError as exc:
        print(f"make run: configuration error: {exc}", file=sys.stderr)
        return 2
    if not port_is_free(settings.port):
        print(f"make run: port {settings.port} is in use; try PORT={settings.port + 1} make run", file=sys.stderr)
        return 2
    honcho = [str(Path(sys.executable).parent / "honcho"), "start", "-f", str(procfile), "-p", str(settings.port)]
    stack = subprocess.Popen(honcho, cwd=PROJECT_ROOT, env=env)
    # A closed terminal (SIGHUP) or a SIGTERM reaches only this process: pass it on, so nothing is left running.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stack.terminate())
    try:
        url = f"http://127.0.0.1:{settings.port}/"
        if wait_until_up(url + "healthz", stack):
            print(
                f"\n  Web:       {url}\n  Dashboard: {url}rq/  (user {settings.dashboard_user}, password "
                f"{settings.dashboard_password})\n  Metrics:   {url}metrics  (Authorization: Bearer "
                f"{settings.metrics_token})\n  Redis:     {settings.redis_url}\n"
                f"  Mail:      {mail_note(procfile, mail)}\n  Ctrl-C stops everything.\n",
                flush=True,
            )
        return stack.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches honcho too; a SIGINT sent to this process alone does not. honcho stops once.
        stack.terminate()
        stack.wait()
        return 0


if __name__ == "__main__":
    sys.exit(main())
