"""SSRF-safe fetching (jobs.wordcount.fetch) against local servers: refusals, pinning, limits, deadlines, errors."""

from __future__ import annotations

import gzip
import http.server
import ipaddress
import socket
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Iterator

import pytest
import urllib3
from urllib3.connectionpool import HTTPSConnectionPool

from jobs.wordcount import errors, fetch, text
from tests.pageserver import ConnectionRecorder, PageServer, deflate_bomb, gzip_bomb

LOOPBACK_1 = ipaddress.ip_network("127.0.0.1/32")
ALLOW_PAGE_SERVER = fetch.FetchPolicy(allow_networks=(LOOPBACK_1,), timeout=5.0)
NOTHING_ALLOWED = fetch.FetchPolicy(timeout=5.0)


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with PageServer() as s:
        yield s


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    """A listener on 127.0.0.1 that must never see a connection from a refused fetch."""
    with ConnectionRecorder("127.0.0.1") as r:
        yield r


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every TCP connection urllib3 opens, recorded (and still made)."""
    seen: list[tuple] = []
    real = urllib3.util.connection.create_connection

    def spy(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    return seen


def no_connection(recorder: ConnectionRecorder) -> bool:
    """True if the recorder was never connected to (a connect would have completed before fetch returned)."""
    return not recorder.wait_for(1, timeout=0.1)


# ---------------------------------------------------------------------------------------- validate_url

VALID_URLS = [
    "http://example.com",
    "https://EXAMPLE.com:8443/p?q=1#frag",
    "http://bücher.de/straße",
    "http://[2001:db8::1]:8080/",
    "http://under_score.example.com/",
    "http://example.com./",
]


@pytest.mark.parametrize("url", VALID_URLS)
def test_valid_urls_pass(url: str) -> None:
    assert fetch.validate_url(url) == url


def test_validate_strips_outer_whitespace() -> None:
    assert fetch.validate_url("  http://example.com/ \n") == "http://example.com/"


INVALID_URLS = [
    None,
    b"http://example.com/",
    "",
    "example.com",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "javascript:alert(1)",
    "http://",
    "http:///path-only",
    "http://user:pass@example.com/",
    "http://example.com@127.0.0.1/",
    "http://@example.com/",
    "http://evil.com\\@127.0.0.1/",
    "http://[::1/",
    "http://[not-an-ip]/",
    "http://[fe80::1%25eth0]/",
    "http://example.com:99999/",
    "http://example.com:0/",
    "http://example.com:port/",
    "http://exa mple.com/",
    "http://example.com/\npath",
    "http://-leading-hyphen.com/",
    "http://a..b/",
    "http://" + "a" * 64 + ".com/",
    "http://example.com/" + "a" * 2048,
]


@pytest.mark.parametrize("url", INVALID_URLS)
def test_invalid_urls_are_refused(url: object) -> None:
    with pytest.raises(errors.InvalidUrl):
        fetch.validate_url(url)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "named"), [("javascript:alert(1)", "not javascript: URLs"),
                                            ("ftp://example.com/", "not ftp: URLs"),
                                            ("example.com/page", "not a URL without a scheme")])
def test_a_refused_scheme_is_named_as_written(url: str, named: str) -> None:
    with pytest.raises(errors.InvalidUrl, match=named):
        fetch.validate_url(url)


def test_validate_url_does_no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("validate_url must not resolve names")

    monkeypatch.setattr(fetch, "_getaddrinfo", boom)
    monkeypatch.setattr(socket, "getaddrinfo", boom)
    assert fetch.validate_url("http://some.host.example/") == "http://some.host.example/"


# ------------------------------------------------------------------------------------- SSRF refusals

# Forms that all reach 127.0.0.1 (or 0.0.0.0, which Linux routes to it) on the recorder's port.
LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://2130706433:{port}/",  # decimal
    "http://0177.0.0.1:{port}/",  # octal
    "http://0x7f.1:{port}/",  # hex, short form
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::]:{port}/",
    "http://[::127.0.0.1]:{port}/",  # IPv4-compatible IPv6
    "http://[::7f00:1]:{port}/",
    "http://[::ffff:0:7f00:1]:{port}/",  # IPv4-translated IPv6
    "http://[::ffff:0:127.0.0.1]:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",  # trailing dot
    "http://app.localhost:{port}/",
    "https://127.0.0.1:{port}/",
]


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_loopback_forms_refused_without_connecting(
    form: str, recorder: ConnectionRecorder, connects: list
) -> None:
    with pytest.raises(errors.RefusedAddress) as info:
        fetch.fetch(form.format(port=recorder.port), NOTHING_ALLOWED)
    assert "may not fetch" in str(info.value)
    assert no_connection(recorder)
    assert connects == []


def test_ipv6_loopback_refused_without_connecting(connects: list) -> None:
    with ConnectionRecorder("::1") as recorder6:
        with pytest.raises(errors.RefusedAddress):
            fetch.fetch(recorder6.url("/"), NOTHING_ALLOWED)
        assert no_connection(recorder6)
    assert connects == []


def test_userinfo_trick_is_invalid_without_connecting(recorder: ConnectionRecorder, connects: list) -> None:
    with pytest.raises(errors.InvalidUrl):
        fetch.fetch(f"http://example.com@127.0.0.1:{recorder.port}/", NOTHING_ALLOWED)
    assert no_connection(recorder)
    assert connects == []


PRIVATE_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
    "http://224.0.0.1/",  # multicast
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[2001:db8::1]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[::a9fe:a9fe]/",  # IPv4-compatible 169.254.169.254
    "http://[::ffff:0:a00:1]/",  # IPv4-translated 10.0.0.1
    "http://[::8.8.8.8]/",  # IPv4-compatible, even of a public address: not global unicast
    "http://[0:0:1::1]/",  # elsewhere in ::/8
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./",
]


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_private_and_reserved_targets_refused(url: str, connects: list) -> None:
    with pytest.raises(errors.RefusedAddress):
        fetch.fetch(url, NOTHING_ALLOWED)
    assert connects == []


def test_metadata_refused_by_name_before_any_lookup(monkeypatch: pytest.MonkeyPatch, connects: list) -> None:
    def resolver(*args: object, **kwargs: object) -> list:
        raise AssertionError("metadata names must be refused before resolving")

    monkeypatch.setattr(fetch, "_getaddrinfo", resolver)
    with pytest.raises(errors.RefusedAddress):
        fetch.fetch("http://metadata.google.internal/", NOTHING_ALLOWED)
    assert connects == []


def test_metadata_address_refused_even_inside_allowed_network(connects: list) -> None:
    policy = fetch.FetchPolicy(allow_networks=(ipaddress.ip_network("169.254.0.0/16"),))
    with pytest.raises(errors.RefusedAddress):
        fetch.fetch("http://169.254.169.254/", policy)
    assert connects == []


@pytest.mark.parametrize(
    ("address", "allow", "expected"),
    [
        ("93.184.216.34", (), True),
        ("2606:2800:220:1:248:1893:25c8:1946", (), True),
        ("127.0.0.1", (), False),
        ("127.0.0.1", ("127.0.0.0/8",), True),
        ("::ffff:127.0.0.1", ("127.0.0.0/8",), True),  # judged by the mapped IPv4
        ("::ffff:8.8.8.8", (), True),
        ("::1", ("127.0.0.0/8",), False),
        ("10.1.2.3", ("10.0.0.0/8",), True),
        ("10.1.2.3", ("192.168.0.0/16",), False),
        ("0.0.0.0", ("0.0.0.0/0",), False),  # never a destination
        ("169.254.169.254", ("0.0.0.0/0",), False),
        ("64:ff9b::808:808", (), True),  # NAT64 of 8.8.8.8
        ("64:ff9b::a00:1", (), False),  # NAT64 of 10.0.0.1
        ("2002:808:808::1", (), True),  # 6to4 of 8.8.8.8
        ("2002:c0a8:101::1", (), False),  # 6to4 of 192.168.1.1
        ("224.0.0.251", (), False),
        ("::8.8.8.8", (), False),  # IPv4-compatible: not global unicast, whatever it embeds
        ("::127.0.0.1", ("127.0.0.0/8",), False),
        ("::127.0.0.1", ("::/0",), False),  # judged by its IPv4 first
        ("::ffff:0:808:808", (), False),  # IPv4-translated
        ("::ffff:0:7f00:1", ("127.0.0.0/8",), False),
        ("0:0:1::1", (), False),  # the rest of ::/8
        ("::1:2:3", (), False),
        ("::1", ("::1/128",), True),  # an allowed IPv6 network still opens what it names
    ],
)
def test_address_allowed(address: str, allow: tuple[str, ...], expected: bool) -> None:
    networks = tuple(ipaddress.ip_network(n) for n in allow)
    assert fetch.address_allowed(ipaddress.ip_address(address), networks) is expected


def test_one_private_record_refuses_the_whole_name(
    server: PageServer, monkeypatch: pytest.MonkeyPatch, connects: list
) -> None:
    """A name with a public and a private address is refused, whichever comes first."""
    def resolver(host: str, port: int, *args: object, **kwargs: object) -> list:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(fetch, "_getaddrinfo", resolver)
    url = server.add("/mixed", body=b"<p>x</p>").replace("127.0.0.1", "mixed.test")
    with pytest.raises(errors.RefusedAddress) as info:
        fetch.fetch(url, ALLOW_PAGE_SERVER)
    assert "10.0.0.1" not in str(info.value)  # don't reveal what an internal name resolves to
    assert connects == []


def test_allowed_network_is_fetched(server: PageServer) -> None:
    url = server.add("/ok", body=b"<p>hello world</p>")
    page = fetch.fetch(url, ALLOW_PAGE_SERVER)
    assert (page.url, page.final_url, page.status_code) == (url, url, 200)
    assert page.content_type == "text/html; charset=utf-8"
    assert page.body == b"<p>hello world</p>"


def test_redirect_to_private_hop_is_refused_before_connecting(server: PageServer) -> None:
    with ConnectionRecorder("127.0.0.2") as private:
        url = server.redirect("/to-private", private.url("/secret"))
        with pytest.raises(errors.RefusedAddress):
            fetch.fetch(url, ALLOW_PAGE_SERVER)
        assert server.hits("/to-private") == 1
        assert no_connection(private)


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("http://169.254.169.254/latest/meta-data/", errors.RefusedAddress),
        ("http://metadata.google.internal/", errors.RefusedAddress),
        ("http://localhost./", errors.RefusedAddress),
        ("file:///etc/passwd", errors.InvalidUrl),
        ("http://user@example.com/", errors.InvalidUrl),
    ],
)
def test_redirect_hops_are_checked(server: PageServer, location: str, error: type, connects: list) -> None:
    url = server.redirect(f"/hop-{abs(hash(location))}", location)
    with pytest.raises(error):
        fetch.fetch(url, ALLOW_PAGE_SERVER)
    assert connects == [("127.0.0.1", server.port)]  # only the allowed first hop


def test_dns_rebinding_cannot_swap_the_checked_address(
    server: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once per hop and the connection goes to exactly that address."""
    lookups: list[str] = []

    def rebinding_resolver(host: str, port: int, *args: object, **kwargs: object) -> list:
        lookups.append(host)
        ip = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"  # the second answer would be private
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(fetch, "_getaddrinfo", rebinding_resolver)
    server.add("/rebind", body=b"<p>pinned</p>")
    with ConnectionRecorder("127.0.0.2", port=server.port) as evil:
        page = fetch.fetch(f"http://rebind.test:{server.port}/rebind", ALLOW_PAGE_SERVER)
        assert page.body == b"<p>pinned</p>"
        assert lookups == ["rebind.test"]
        assert no_connection(evil)
    assert server.requests[-1].headers["Host"] == f"rebind.test:{server.port}"


def test_next_address_is_tried_when_one_refuses(server: PageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def resolver(host: str, port: int, *args: object, **kwargs: object) -> list:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.3", port)),  # nothing listens there
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(fetch, "_getaddrinfo", resolver)
    server.add("/two", body=b"<p>second</p>")
    policy = fetch.FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), timeout=5.0)
    assert fetch.fetch(f"http://two.test:{server.port}/two", policy).body == b"<p>second</p>"


def test_proxy_environment_is_ignored(
    server: PageServer, recorder: ConnectionRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{recorder.port}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = server.add("/direct", body=b"<p>direct</p>")
    assert fetch.fetch(url, ALLOW_PAGE_SERVER).body == b"<p>direct</p>"
    assert no_connection(recorder)


# ------------------------------------------------------------------------------------------ redirects


def test_relative_redirect(server: PageServer) -> None:
    server.add("/dir/target", body=b"<p>arrived</p>")
    url = server.redirect("/dir/start", "target", status=301)
    page = fetch.fetch(url, ALLOW_PAGE_SERVER)
    assert page.url == url
    assert page.final_url == server.url("/dir/target")
    assert page.body == b"<p>arrived</p>"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses_are_followed(server: PageServer, status: int) -> None:
    server.add(f"/s{status}/end", body=b"<p>end</p>")
    url = server.redirect(f"/s{status}/go", f"/s{status}/end", status=status)
    assert fetch.fetch(url, ALLOW_PAGE_SERVER).final_url == server.url(f"/s{status}/end")


def _chain(server: PageServer, name: str, hops: int) -> str:
    server.add(f"/{name}/{hops}", body=b"<p>done</p>")
    for i in range(hops):
        server.redirect(f"/{name}/{i}", f"/{name}/{i + 1}")
    return server.url(f"/{name}/0")


def test_five_redirects_are_fine(server: PageServer) -> None:
    assert fetch.fetch(_chain(server, "five", 5), ALLOW_PAGE_SERVER).body == b"<p>done</p>"


def test_six_redirects_are_too_many(server: PageServer) -> None:
    with pytest.raises(errors.TooManyRedirects):
        fetch.fetch(_chain(server, "six", 6), ALLOW_PAGE_SERVER)
    assert server.hits("/six/6") == 0


def test_redirect_loop(server: PageServer) -> None:
    server.redirect("/loop", "/loop")
    with pytest.raises(errors.TooManyRedirects):
        fetch.fetch(server.url("/loop"), ALLOW_PAGE_SERVER)


# ------------------------------------------------------------------------------------ time and size


def test_slow_drip_body_hits_the_deadline(server: PageServer) -> None:
    url = server.add("/drip", body=b"<p>", drip=0.2, drip_forever=True)
    start = time.monotonic()
    with pytest.raises(errors.FetchTimeout) as info:
        fetch.fetch(url, fetch.FetchPolicy(allow_networks=(LOOPBACK_1,), timeout=1.5))
    assert 1.4 < time.monotonic() - start < 3.5
    assert "127.0.0.1" in str(info.value)


def _drip_headers(h: http.server.BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not h.server.page_server.stopping.wait(0.1):  # type: ignore[attr-defined]
        h.wfile.write(b"a")
        h.wfile.flush()


def test_slow_drip_headers_hit_the_deadline(server: PageServer) -> None:
    url = server.add_handler("/drip-headers", _drip_headers)
    start = time.monotonic()
    with pytest.raises(errors.FetchTimeout):
        fetch.fetch(url, fetch.FetchPolicy(allow_networks=(LOOPBACK_1,), timeout=1.0))
    assert time.monotonic() - start < 3.0


def test_silent_server_times_out() -> None:
    with ConnectionRecorder("127.0.0.2") as silent:
        policy = fetch.FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout=1.0)
        start = time.monotonic()
        with pytest.raises(errors.FetchTimeout):
            fetch.fetch(silent.url("/"), policy)
        assert time.monotonic() - start < 3.0
        assert silent.count == 1


def _slow_redirect(h: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(0.4)
    n = int(h.path.rsplit("/", 1)[1])
    h.send_response(302)
    h.send_header("Location", f"/slowhop/{n + 1}")
    h.send_header("Content-Length", "0")
    h.send_header("Connection", "close")
    h.end_headers()


def test_deadline_is_total_across_hops(server: PageServer) -> None:
    """Each hop is quicker than the timeout, but together they are not."""
    for i in range(5):
        server.add_handler(f"/slowhop/{i}", _slow_redirect)
    with pytest.raises(errors.FetchTimeout):
        fetch.fetch(server.url("/slowhop/0"), fetch.FetchPolicy(allow_networks=(LOOPBACK_1,), timeout=1.0))
    assert server.hits("/slowhop/4") == 0


SMALL = fetch.FetchPolicy(allow_networks=(LOOPBACK_1,), timeout=5.0, max_bytes=1024 * 1024)


def test_honest_content_length_over_limit_fails_at_once(server: PageServer) -> None:
    url = server.add("/big-declared", body=b"x" * (2 * 1024 * 1024))
    progress: list[tuple[int, int | None]] = []
    with pytest.raises(errors.TooLarge) as info:
        fetch.fetch(url, SMALL, on_progress=lambda done, total: progress.append((done, total)))
    assert progress == []  # refused on the header, before reading the body
    assert "1 MB" in str(info.value)


def test_lying_small_content_length_never_reads_past_it(server: PageServer) -> None:
    url = server.add("/lie-small", body=b"<p>" + b"x" * (3 * 1024 * 1024), content_length=10)
    page = fetch.fetch(url, SMALL)
    assert page.body == b"<p>xxxxxxx"


def test_lying_large_content_length_is_a_broken_connection(server: PageServer) -> None:
    url = server.add("/lie-large", body=b"<p>short</p>", content_length=5000)
    with pytest.raises(errors.FetchConnectionError):
        fetch.fetch(url, SMALL)


def test_body_without_length_is_capped_while_streaming(server: PageServer) -> None:
    url = server.add("/no-length", body=b"x" * (3 * 1024 * 1024), content_length=None)
    with pytest.raises(errors.TooLarge):
        fetch.fetch(url, SMALL)


def test_chunked_body_over_limit(server: PageServer) -> None:
    url = server.add("/chunked-big", body=b"x" * (3 * 1024 * 1024), chunked=True)
    with pytest.raises(errors.TooLarge):
        fetch.fetch(url, SMALL)


def test_chunked_body_under_limit_with_progress(server: PageServer) -> None:
    body = b"<p>" + b"word " * 100_000 + b"</p>"
    url = server.add("/chunked-ok", body=body, chunked=True, chunk_size=10_000)
    progress: list[tuple[int, int | None]] = []
    page = fetch.fetch(url, SMALL, on_progress=lambda done, total: progress.append((done, total)))
    assert page.body == body
    assert progress[-1] == (len(body), None)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_progress_reports_content_length(server: PageServer) -> None:
    body = b"<p>" + b"y" * 200_000 + b"</p>"
    url = server.add("/progress", body=body)
    progress: list[tuple[int, int | None]] = []
    fetch.fetch(url, SMALL, on_progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (len(body), len(body))
    assert len(progress) >= 2


@pytest.mark.parametrize(
    ("encoding", "bomb"),
    [
        ("gzip", lambda: gzip_bomb()),
        ("deflate", lambda: deflate_bomb()),
        ("deflate", lambda: deflate_bomb(raw=True)),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw"],
)
def test_compression_bombs_are_capped_without_inflating(server: PageServer, encoding: str, bomb) -> None:
    payload = bomb()  # 50 MB of zeros in ~50 KB
    url = server.add(f"/bomb-{encoding}-{len(payload)}", body=payload, headers={"Content-Encoding": encoding})
    tracemalloc.start()
    try:
        with pytest.raises(errors.TooLarge):
            fetch.fetch(url, SMALL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024  # the 1 MB cap plus buffers, nowhere near 50 MB


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "deflate-raw"])
def test_compressed_pages_are_decoded(server: PageServer, encoding: str) -> None:
    body = "<p>compressed café</p>".encode() * 1000
    if encoding in ("gzip", "x-gzip"):
        payload = gzip.compress(body)
    elif encoding == "deflate":
        payload = zlib.compress(body)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        payload = c.compress(body) + c.flush()
    header = "deflate" if encoding == "deflate-raw" else encoding
    url = server.add(f"/enc-{encoding}", body=payload, headers={"Content-Encoding": header})
    page = fetch.fetch(url, SMALL)
    assert page.body == body
    assert server.requests[-1].headers["Accept-Encoding"] == "gzip, deflate"


def test_body_reader_gets_the_body_in_bounded_pieces(server: PageServer) -> None:
    body = b"<p>" + b"streamed words " * 60_000 + b"</p>"  # ~900 KB that gzip shrinks to a few KB
    url = server.add("/stream-gzip", body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    seen: list[int] = []

    def read_body(content_type: str, chunks: Iterator[bytes]) -> str:
        seen.extend(len(chunk) for chunk in chunks)
        return content_type

    page = fetch.fetch(url, SMALL, read_body=read_body)
    assert page.body == "text/html; charset=utf-8"  # what the reader returned
    assert sum(seen) == len(body)
    assert max(seen) <= fetch.INFLATE_STEP  # a small compressed chunk never inflates to the whole page


def test_body_reader_still_capped(server: PageServer) -> None:
    url = server.add("/stream-big", body=b"x" * (3 * 1024 * 1024), content_length=None)
    received: list[int] = []
    with pytest.raises(errors.TooLarge):
        fetch.fetch(url, SMALL, read_body=lambda _type, chunks: received.extend(map(len, chunks)))
    assert 0 < sum(received) <= SMALL.max_bytes


def test_unknown_content_encoding_is_refused(server: PageServer) -> None:
    url = server.add("/brotli", body=b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"})
    with pytest.raises(errors.UnsupportedContentType, match="br"):
        fetch.fetch(url, SMALL)


def test_corrupt_gzip_is_a_connection_error(server: PageServer) -> None:
    url = server.add("/corrupt", body=b"\x1f\x8bnot really gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(errors.FetchConnectionError, match="corrupt"):
        fetch.fetch(url, SMALL)


# ------------------------------------------------------------------------------------- content types


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "application/json"])
def test_binary_types_refused_before_download(server: PageServer, content_type: str) -> None:
    url = server.add(f"/bin/{content_type}", body=b"\x89PNG" + bytes(500_000), content_type=content_type)
    progress: list[tuple[int, int | None]] = []
    with pytest.raises(errors.UnsupportedContentType) as info:
        fetch.fetch(url, SMALL, on_progress=lambda done, total: progress.append((done, total)))
    assert content_type in str(info.value)
    assert progress == []


def test_missing_content_type_is_refused(server: PageServer) -> None:
    url = server.add("/no-type", body=b"<p>what am I</p>", content_type=None)
    with pytest.raises(errors.UnsupportedContentType, match="no Content-Type"):
        fetch.fetch(url, SMALL)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xhtml+xml", "TEXT/HTML; charset=UTF-8"])
def test_countable_types_are_fetched(server: PageServer, content_type: str) -> None:
    url = server.add(f"/type/{content_type.split(';')[0]}", body=b"words here", content_type=content_type)
    assert fetch.fetch(url, SMALL).content_type == content_type


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<p>café crème</p>".encode("iso-8859-1"), "text/html; charset=ISO-8859-1", {"café": 1, "crème": 1}),
        (
            '<meta charset="windows-1251"><p>Привет мир</p>'.encode("cp1251"),
            "text/html",
            {"привет": 1, "мир": 1},
        ),
        ("<p>naïve façade</p>".encode(), "text/html", {"naïve": 1, "façade": 1}),
    ],
    ids=["header-latin1", "meta-cp1251", "no-charset-utf8"],
)
def test_charset_variants_end_to_end(
    server: PageServer, body: bytes, content_type: str, expected: dict
) -> None:
    url = server.add(f"/charset/{abs(hash(body))}", body=body, content_type=content_type)
    page = fetch.fetch(url, SMALL)
    assert text.count_words(text.extract_text(page.body, page.content_type)) == Counter(expected)


# ------------------------------------------------------------------------------------ status mapping


def test_404_is_a_client_error(server: PageServer) -> None:
    with pytest.raises(errors.HttpClientError) as info:
        fetch.fetch(server.url("/does-not-exist"), SMALL)
    assert str(info.value) == "HTTP 404 Not Found from 127.0.0.1"
    assert info.value.transient is False


def test_403_is_a_client_error(server: PageServer) -> None:
    url = server.add("/forbidden", status=403, body=b"no")
    with pytest.raises(errors.HttpClientError, match="HTTP 403"):
        fetch.fetch(url, SMALL)


def test_500_is_a_transient_server_error(server: PageServer) -> None:
    url = server.add("/boom", status=500, body=b"oops")
    with pytest.raises(errors.HttpServerError) as info:
        fetch.fetch(url, SMALL)
    assert info.value.transient is True
    assert info.value.retry_after is None
    assert "HTTP 500" in str(info.value) and "127.0.0.1" in str(info.value)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"), [(429, "7", 7.0), (503, "7", 7.0), (429, "99999", 300.0)]
)
def test_retry_after_is_passed_on(server: PageServer, status: int, retry_after: str, expected: float) -> None:
    url = server.add(f"/busy-{status}-{retry_after}", status=status, headers={"Retry-After": retry_after})
    with pytest.raises(errors.HttpServerError) as info:
        fetch.fetch(url, SMALL)
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("100000", 300.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert fetch.parse_retry_after(value, now=now) == expected


def test_dns_failure() -> None:
    with pytest.raises(errors.DnsError, match="no-such-host.invalid"):
        fetch.fetch("http://no-such-host.invalid/", NOTHING_ALLOWED)


def test_connection_refused() -> None:
    with socket.socket() as probe:  # find a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.FetchConnectionError, match="connection refused") as info:
        fetch.fetch(f"http://127.0.0.1:{port}/", ALLOW_PAGE_SERVER)
    assert "Traceback" not in str(info.value)


# -------------------------------------------------------------------------------------------- https


def test_https_pool_dials_the_ip_but_verifies_the_host() -> None:
    target = fetch.parse_target("https://www.example.com/path")
    deadline = fetch.Deadline(5.0)
    pool = fetch.connection_pool(target, ipaddress.ip_address("93.184.216.34"), deadline)
    try:
        assert isinstance(pool, HTTPSConnectionPool)
        assert pool.host == "93.184.216.34"
        assert pool.port == 443
        assert pool.conn_kw["server_hostname"] == "www.example.com"
        assert pool.assert_hostname == "www.example.com"
        assert pool.cert_reqs == "CERT_REQUIRED"
        conn = pool._new_conn()  # built, not connected
        assert conn.host == "93.184.216.34"
        assert conn.server_hostname == "www.example.com"
        assert conn.assert_hostname == "www.example.com"
        conn.close()
    finally:
        pool.close()
        deadline.cancel()
    assert target.host_header == "www.example.com"
    assert fetch.parse_target("https://example.com.:8443/").host_header == "example.com:8443"
    assert fetch.parse_target("http://[2001:db8::1]:8080/").host_header == "[2001:db8::1]:8080"


def test_https_really_speaks_tls(server: PageServer) -> None:
    """An https URL against a plain-HTTP server fails in the TLS handshake, not silently in clear text."""
    url = server.add("/tls", body=b"<p>plain</p>").replace("http://", "https://")
    with pytest.raises(errors.FetchConnectionError, match="secure connection"):
        fetch.fetch(url, ALLOW_PAGE_SERVER)
