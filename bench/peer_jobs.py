"""The I/O job the peers run in ``make bench``: one plain HTTP GET, the body read to the end (stdlib only)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


def get_page(url: str) -> int:
    """GET ``url`` on a fresh connection, read the whole body, return the status code."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
