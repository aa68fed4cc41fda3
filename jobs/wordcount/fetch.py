"""SSRF-safe HTTP(S) fetch: pinned, re-checked addresses, a total deadline, and a decompressed-size cap.

The rules (OWASP's SSRF cheat sheet made concrete):

* Only http and https; URLs with a user name or password are refused outright (InvalidUrl), because
  ``http://example.com@127.0.0.1/`` is a classic way to make a URL look like it goes somewhere else.
* Every A and AAAA record of the host is checked; one private, loopback, link-local, multicast or
  otherwise non-global address (the table in jobs/wordcount/addresses.py, from IANA's special-purpose
  registries, not Python's ``is_global``) refuses the whole fetch (RefusedAddress), unless it lies inside
  ``FetchPolicy.allow_networks``. Every IPv6 form that embeds an IPv4 address (IPv4-mapped, IPv4-compatible,
  IPv4-translated, NAT64, 6to4) is judged by that IPv4 address first; IPv4-compatible (``::/96``),
  IPv4-translated (``::ffff:0:0:0/96``) and everything else outside ``2000::/3`` are never global unicast and
  are refused unless an allowed IPv6 network names them (NAT64's ``64:ff9b::/96`` is judged by its IPv4 alone).
  Cloud metadata names and addresses, and ``0.0.0.0``/``::``, are refused even when an allowed network
  covers them. ``localhost`` and ``*.localhost`` mean loopback (RFC 6761)
  without asking DNS.
* The connection goes to the address that was checked: no second lookup, so DNS rebinding cannot swap
  it. The Host header, TLS SNI and certificate check still use the real host name.
* Redirects are followed here, at most ``max_redirects``, each hop checked the same way.
* urllib3 is used directly, so HTTP_PROXY/HTTPS_PROXY/ALL_PROXY in the environment are never consulted.
* ``timeout`` is a total deadline across all hops: every socket wait is bounded by the time left, and a
  watchdog shuts the socket down at the deadline, so a server dripping bytes (even inside the headers)
  fails with FetchTimeout. DNS resolution itself cannot be interrupted (a resolver limit, not ours).
* ``max_bytes`` caps both the bytes read off the wire and the decompressed body; gzip/deflate are
  inflated here with ``max_length`` so a bomb never holds more than ``max_bytes + 1`` inflated bytes.
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from engine.settings import EnvSettings, Network, integer, networks, number, var
from jobs.wordcount import addresses, errors
from jobs.wordcount.text import is_countable, media_type

IPAddress = addresses.IPAddress
ProgressCallback = Callable[[int, int | None], None]
# Reads a response body: given the Content-Type and an iterator of decompressed chunks, returns the page body.
BodyReader = Callable[[str, Iterator[bytes]], Any]

MAX_URL_LENGTH = 2048
CHUNK_SIZE = 64 * 1024
INFLATE_STEP = 256 * 1024  # most one inflate call may return, so a small compressed chunk never balloons
RETRY_AFTER_CAP = 300.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"

# Refused by name before any lookup, and by address after it, whatever allow_networks says.
METADATA_NAMES = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
})
ALWAYS_REFUSED = frozenset(ipaddress.ip_address(a) for a in (
    "0.0.0.0", "::", "169.254.169.254", "169.254.170.2", "fd00:ec2::254",
))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated, RFC 4291)
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT, RFC 2765)
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f\\]")

# A module attribute so tests can stand in a resolver (and count lookups) without touching urllib3's.
_getaddrinfo = socket.getaddrinfo


@dataclass(frozen=True)
class FetchPolicy(EnvSettings):
    """What a fetch may reach and how much it may take; ``from_env`` reads the FETCH_* variables."""

    allow_networks: tuple[Network, ...] = var("FETCH_ALLOW_NETWORKS", networks, ())
    max_bytes: int = var("FETCH_MAX_BYTES", integer(1, 1 << 40), 10 * 1024 * 1024)
    timeout: float = var("FETCH_TIMEOUT", number(0.1, 3600.0), 10.0)  # total deadline; bounds connect/read too
    max_redirects: int = 5
    user_agent: str = "flask-rq-stack/0.1 (+count_words_at_url)"


@dataclass(frozen=True)
class Page:
    """A fetched page; ``body`` is the decompressed bytes, or what a ``read_body`` made of them."""

    url: str
    final_url: str
    status_code: int
    content_type: str
    body: Any


@dataclass(frozen=True)
class Target:
    """One hop's URL split into what the connection needs."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, lowercase, without brackets
    port: int
    request_uri: str

    @property
    def server_name(self) -> str:
        """The host as the Host header and messages show it: no trailing dot, IPv6 in brackets."""
        name = self.host.rstrip(".")
        return f"[{name}]" if ":" in name else name

    @property
    def host_header(self) -> str:
        """The Host header: the server name, with the port when it is not the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        return self.server_name if self.port == default else f"{self.server_name}:{self.port}"


# ---------------------------------------------------------------------------------------------- URLs


def validate_url(url: str) -> str:
    """Check a URL is a fetchable http(s) URL without any DNS; return it with outer whitespace stripped."""
    if not isinstance(url, str):
        raise errors.InvalidUrl("the URL must be text")
    url = url.strip()
    if not url:
        raise errors.InvalidUrl("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise errors.InvalidUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parse_target(url)
    return url


def parse_target(url: str) -> Target:
    """Split and check a URL; raise InvalidUrl with a plain reason when it cannot be fetched."""
    if _CONTROL_OR_SPACE.search(url):
        raise errors.InvalidUrl("the URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidUrl(f"the URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}: URLs" if scheme else "a URL without a scheme"  # javascript: has no //
        raise errors.InvalidUrl(f"only http:// and https:// URLs can be fetched, not {shown}")
    if "@" in parts.netloc:
        raise errors.InvalidUrl("URLs with a user name or password are not accepted")
    if port == 0:
        raise errors.InvalidUrl("port 0 is not a valid port")
    host = _check_host(parts.hostname or "", parts.netloc)
    try:
        request_uri = urllib3.util.parse_url(url).request_uri  # percent-encodes what must be
    except ValueError as exc:
        raise errors.InvalidUrl(f"the URL is malformed ({exc})") from None
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80), request_uri)


def _check_host(hostname: str, netloc: str) -> str:
    """Return the ASCII host, or raise InvalidUrl for a missing or malformed one."""
    if not hostname:
        raise errors.InvalidUrl("the URL has no host name")
    if netloc.startswith("["):
        if "%" in hostname:
            raise errors.InvalidUrl("IPv6 zone identifiers are not accepted")
        return hostname  # urlsplit has already checked it is a valid IPv6 address
    try:
        ascii_host = hostname.encode("idna").decode("ascii") if not hostname.isascii() else hostname
    except UnicodeError:
        raise errors.InvalidUrl(f"{hostname!r} is not a valid host name") from None
    ascii_host = ascii_host.lower()
    if len(ascii_host) > 254 or not _HOSTNAME.match(ascii_host):
        raise errors.InvalidUrl(f"{hostname!r} is not a valid host name")
    return ascii_host


# ----------------------------------------------------------------------------------------- addresses


def resolve(host: str, port: int, allow_networks: tuple[Network, ...] = ()) -> list[IPAddress]:
    """Return every address of host, or raise RefusedAddress if any is off limits (before connecting)."""
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES:
        raise errors.RefusedAddress(f"{name} is a cloud metadata service, which jobs may not fetch")
    addresses = _lookup(host, port, name)
    for address in addresses:
        if not address_allowed(address, allow_networks):
            shown = host if _literal(host) is None else str(address)
            raise errors.RefusedAddress(
                f"{shown} is a private, local or reserved network address, which jobs may not fetch"
            )
    return addresses


def _lookup(host: str, port: int, name: str) -> list[IPAddress]:
    """Resolve A and AAAA records (or read an IP literal); map resolver failures to DnsError."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    if name == "localhost" or name.endswith(".localhost"):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise errors.DnsError(f"the host name {name} could not be resolved") from None
    except (UnicodeError, ValueError):
        raise errors.InvalidUrl(f"{name!r} is not a valid host name") from None
    found: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        found[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    if not found:
        raise errors.DnsError(f"the host name {name} has no addresses")
    return list(found)


def _literal(host: str) -> IPAddress | None:
    """Return host as an IP address when it is a standard IP literal."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_allowed(address: IPAddress, allow_networks: tuple[Network, ...] = ()) -> bool:
    """True if jobs may connect to this address: public, or inside an allowed network."""
    if address in ALWAYS_REFUSED:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_allowed(address.ipv4_mapped, allow_networks)  # ::ffff:a.b.c.d is a.b.c.d
    embedded = _embedded_ipv4(address)
    if embedded is not None and not address_allowed(embedded, allow_networks):
        return False  # any form that leads to an IPv4 address is judged by that address first
    if any(address.version == net.version and address in net for net in allow_networks):
        return True
    return addresses.globally_reachable(address)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form leads to: NAT64, 6to4, IPv4-compatible or IPv4-translated."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in addresses.NAT64 or address in _IPV4_TRANSLATED or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # :: and ::1 embed nothing
    return address.sixtofour


# -------------------------------------------------------------------------------------- the deadline


class Deadline:
    """A total time budget; at expiry a watchdog shuts watched sockets down so no read outlives it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self.lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self, host: str) -> float:
        """Seconds left; raise FetchTimeout once none are."""
        left = self.expires_at - time.monotonic()
        if left <= 0 or self.expired:
            raise self.error(host)
        return left

    def error(self, host: str) -> errors.FetchTimeout:
        """The FetchTimeout to raise for this deadline."""
        return errors.FetchTimeout(f"{host} did not send the page within {self.seconds:g} seconds")

    def watch(self, sock: socket.socket) -> None:
        """Shut this socket down when the deadline passes."""
        with self.lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def cancel(self) -> None:
        """Stop the watchdog (call before the sockets are closed)."""
        self._timer.cancel()
        with self.lock:
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    """Unblock any thread reading sock. The plain-socket method, so TLS state is not touched."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watched:
    """Mixin for a connection whose socket the deadline watchdog can shut down."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.deadline.watch(self.sock)  # type: ignore[attr-defined]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    """An HTTP connection under the deadline watchdog."""


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    """An HTTPS connection under the deadline watchdog."""


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def connection_pool(target: Target, address: IPAddress, deadline: Deadline) -> HTTPConnectionPool:
    """A one-connection pool that dials ``address`` but speaks to (and, for https, verifies) target.host."""
    left = deadline.remaining(target.server_name)
    common = {
        "host": str(address),
        "port": target.port,
        "timeout": urllib3.Timeout(connect=left, read=left),
        "maxsize": 1,
        "retries": False,
        "deadline": deadline,
    }
    if target.scheme == "http":
        return _PinnedHTTPPool(**common)
    name = target.host.rstrip(".")
    return _PinnedHTTPSPool(
        **common,
        server_hostname=name,  # SNI names the real host, not the IP we dial
        assert_hostname=name,  # and the certificate must be valid for that host
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )


# ----------------------------------------------------------------------------------------- the fetch


def fetch(
    url: str, policy: FetchPolicy, on_progress: ProgressCallback | None = None, read_body: BodyReader | None = None
) -> Page:
    """GET url under the policy and return the page, or raise a JobError subclass saying why not.

    The body is held in memory as bytes, unless ``read_body`` consumes it as it streams in (the connection is
    open while it runs, and its network errors become job errors); the page's body is then what it returns.
    """
    start = current = validate_url(url)
    deadline = Deadline(policy.timeout)
    try:
        for _hop in range(policy.max_redirects + 1):
            target = parse_target(current)
            addresses = resolve(target.host, target.port, policy.allow_networks)
            outcome = _fetch_hop(target, addresses, policy, deadline, on_progress, read_body or _join)
            if isinstance(outcome, Page):
                return Page(start, outcome.final_url, outcome.status_code, outcome.content_type, outcome.body)
            current = _redirect_url(current, outcome)
        raise errors.TooManyRedirects(f"more than {policy.max_redirects} redirects, starting at {start}")
    finally:
        deadline.cancel()


def _redirect_url(current: str, location: str) -> str:
    """Resolve a Location header against the current URL and check the result."""
    try:
        return validate_url(urljoin(current, location.strip()))
    except errors.InvalidUrl as exc:
        raise errors.InvalidUrl(f"redirected to an unusable URL: {exc}") from None


def _fetch_hop(
    target: Target,
    addresses: list[IPAddress],
    policy: FetchPolicy,
    deadline: Deadline,
    on_progress: ProgressCallback | None,
    read_body: BodyReader,
) -> Page | str:
    """Make one request; return the Page, or the Location of a redirect."""
    with _translate_errors(target.server_name, deadline), _open(target, addresses, policy, deadline) as resp:
        status = resp.status
        if status in REDIRECT_STATUSES:
            location = resp.headers.get("Location")
            if not location:
                raise errors.HttpClientError(f"HTTP {status} redirect without a Location from {target.host}")
            return location
        _check_status(status, resp.reason, resp.headers, target.server_name)
        content_type = _check_content_type(resp.headers, target.server_name)
        body = read_body(content_type, _body_chunks(resp, target.server_name, policy, deadline, on_progress))
        return Page(target.url, target.url, status, content_type, body)


@contextmanager
def _open(
    target: Target, addresses: list[IPAddress], policy: FetchPolicy, deadline: Deadline
) -> Iterator[urllib3.BaseHTTPResponse]:
    """Send the GET to the first checked address that accepts a connection; close everything after."""
    headers = {
        "Host": target.host_header,
        "User-Agent": policy.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip, deflate",
        "Connection": "close",
    }
    last_error: Exception | None = None
    for address in addresses:
        pool = connection_pool(target, address, deadline)
        try:
            try:
                resp = pool.urlopen(
                    "GET", target.request_uri, headers=headers, redirect=False, retries=False,
                    preload_content=False, decode_content=False, assert_same_host=False,
                )
            except (NewConnectionError, ConnectTimeoutError) as exc:
                last_error = exc  # try the host's next address, if any
                continue
            try:
                if deadline.expired:  # the watchdog's shutdown can look like a clean end of headers
                    raise deadline.error(target.server_name)
                yield resp
            finally:
                with deadline.lock:  # the watchdog must not shut down a socket being closed
                    resp.close()
            return
        finally:
            with deadline.lock:
                pool.close()
    raise last_error or errors.FetchConnectionError(f"{target.server_name} has no address to connect to")


@contextmanager
def _translate_errors(host: str, deadline: Deadline) -> Iterator[None]:
    """Turn urllib3 and socket exceptions into job errors with plain messages."""
    try:
        yield
    except errors.JobError:
        raise
    except NewConnectionError as exc:  # before ConnectTimeoutError: urllib3 makes it a subclass
        if deadline.expired or isinstance(exc.__context__, TimeoutError):
            raise deadline.error(host) from None
        raise errors.FetchConnectionError(f"could not connect to {host}: {_reason(exc)}") from None
    except (ConnectTimeoutError, ReadTimeoutError, TimeoutError):
        raise deadline.error(host) from None
    except zlib.error:
        raise errors.FetchConnectionError(f"{host} sent a corrupt compressed page") from None
    except SSLError as exc:
        raise errors.FetchConnectionError(f"secure connection to {host} failed: {_tls_reason(exc)}") from None
    except (ProtocolError, HTTPError, OSError) as exc:
        if deadline.expired:
            raise deadline.error(host) from None
        raise errors.FetchConnectionError(f"the connection to {host} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """A short human reason from a (possibly wrapped) network exception."""
    while exc.__context__ is not None and isinstance(exc, HTTPError):
        exc = exc.__context__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    text = str(exc.args[-1] if exc.args else exc)
    return text.split(": ", 1)[-1][:200] or type(exc).__name__


def _tls_reason(exc: BaseException) -> str:
    """A short reason for a TLS failure: the certificate problem, or OpenSSL's reason in words."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate problem: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError) and cause.reason:
        return cause.reason.replace("_", " ").lower()
    return "TLS handshake error"


def _check_status(status: int, reason: str | None, headers: urllib3.HTTPHeaderDict, host: str) -> None:
    """Raise for 4xx (permanent) and 429/5xx (transient, honouring Retry-After)."""
    if 200 <= status < 300:
        return
    phrase = reason or _phrase(status)
    message = f"HTTP {status} {phrase} from {host}".replace("  ", " ")
    if status == 429 or status >= 500:
        raise errors.HttpServerError(message, retry_after=parse_retry_after(headers.get("Retry-After")))
    raise errors.HttpClientError(message)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at 300; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # HTTP-dates are always GMT; a zone-less date is not one
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _check_content_type(headers: urllib3.HTTPHeaderDict, host: str) -> str:
    """Return the Content-Type if its words can be counted; refuse anything else before the body."""
    content_type = headers.get("Content-Type")
    if not content_type or not media_type(content_type):
        raise errors.UnsupportedContentType(f"{host} sent no Content-Type, so the page cannot be read")
    if not is_countable(content_type):
        raise errors.UnsupportedContentType(
            f"{host} sent {media_type(content_type)}; only HTML, XHTML and plain text pages can be counted"
        )
    return content_type


# ---------------------------------------------------------------------------------------- the body


class _Inflater:
    """Incremental gzip/deflate decoding that never inflates more than the byte budget allows."""

    def __init__(self, encoding: str, limit: int, host: str):
        self.encoding = encoding
        self.limit = limit
        self.host = host
        self.size = 0
        self._zlib: zlib._Decompress | None = None
        self._pending = b""  # deflate only: bytes held until the zlib header can be judged

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decode a chunk, piece by piece; raise TooLarge as soon as the output would pass the limit."""
        if self.encoding == "identity":
            yield self._count(data)
            return
        if self._zlib is None:
            data = self._pending + data
            if self.encoding == "deflate" and len(data) < 2:
                self._pending = data
                return
            self._zlib = self._start(data)
        while True:
            # max_length caps what one call may inflate; the rest of the input waits in unconsumed_tail.
            piece = self._zlib.decompress(data, min(self.limit - self.size + 1, INFLATE_STEP))
            yield self._count(piece)
            data = self._zlib.unconsumed_tail
            if not data and self._next_gzip_member():
                data = self._zlib.unused_data
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif not data and not piece:
                return

    def _next_gzip_member(self) -> bool:
        """True when another gzip member follows (gzip allows that); other trailing bytes are ignored."""
        d = self._zlib
        return self.encoding == "gzip" and d is not None and d.eof and d.unused_data.startswith(b"\x1f\x8b")

    def _start(self, data: bytes) -> zlib._Decompress:
        """Pick the zlib mode; 'deflate' is zlib-wrapped by the RFC but raw on some servers."""
        if self.encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        wrapped = (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0  # RFC 1950 header check
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise errors.TooLarge(f"the page from {self.host} is larger than {_size(self.limit)}")
        return data


def _size(n: int) -> str:
    """A byte count for people: 10 MB, 512 KB, 300 bytes."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{round(n / scale, 1):g} {unit}"
    return f"{n} bytes"


def _content_encoding(headers: urllib3.HTTPHeaderDict, host: str) -> str:
    """Return identity, gzip or deflate; refuse other (or stacked) content codings."""
    coding = (headers.get("Content-Encoding") or "identity").strip().lower()
    coding = {"x-gzip": "gzip", "": "identity"}.get(coding, coding)
    if coding not in ("identity", "gzip", "deflate"):
        raise errors.UnsupportedContentType(
            f"{host} compressed the page with {coding!r}, which is not supported"
        )
    return coding


def _content_length(headers: urllib3.HTTPHeaderDict) -> int | None:
    value = headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _join(_content_type: str, chunks: Iterator[bytes]) -> bytes:
    """The default body reader: the whole body in memory."""
    return b"".join(chunks)


def _body_chunks(
    resp: urllib3.BaseHTTPResponse,
    host: str,
    policy: FetchPolicy,
    deadline: Deadline,
    on_progress: ProgressCallback | None,
) -> Iterator[bytes]:
    """Stream the body in chunks under the deadline and both size caps, yielding it decompressed."""
    total = _content_length(resp.headers)
    if total is not None and total > policy.max_bytes:
        raise errors.TooLarge(f"the page from {host} is {_size(total)}, more than {_size(policy.max_bytes)}")
    inflater = _Inflater(_content_encoding(resp.headers, host), policy.max_bytes, host)
    received = 0
    while True:
        _bound_socket_wait(resp, deadline.remaining(host))
        chunk = resp.read1(CHUNK_SIZE, decode_content=False)  # read1: whatever arrived, so drips can't stall
        if deadline.expired:
            raise deadline.error(host)
        if not chunk:
            break
        received += len(chunk)
        if received > policy.max_bytes:
            raise errors.TooLarge(f"the page from {host} is larger than {_size(policy.max_bytes)}")
        yield from inflater.feed(chunk)
        if on_progress is not None:
            on_progress(received, total)


def _bound_socket_wait(resp: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """Make the next socket read give up when the deadline does."""
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)
