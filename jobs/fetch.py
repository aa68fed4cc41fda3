# TEMPORARY SHIM written by the lead so the rest of the stack can import; helper-1 replaces this file entirely.
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from jobs.errors import InvalidUrl


@dataclass(frozen=True)
class FetchPolicy:
    allow_networks: tuple = ()
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 10.0
    max_redirects: int = 5


@dataclass(frozen=True)
class Page:
    url: str
    final_url: str
    status_code: int
    content_type: str
    body: bytes


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrl(f"not an http(s) URL: {url!r}")
    return url


def fetch(url, policy, on_progress=None):
    r = requests.get(url, timeout=policy.timeout)
    return Page(url, r.url, r.status_code, r.headers.get("content-type", ""), r.content)
