"""Why a page could not be counted: each error says whether a retry may help and how the job page headlines it."""

from engine import JobError, PermanentError, TimedOut, TransientError

__all__ = [
    "DnsError", "FetchConnectionError", "FetchTimeout", "HttpClientError", "HttpServerError", "InvalidUrl",
    "JobError", "RefusedAddress", "TooLarge", "TooManyRedirects", "UnsupportedContentType",
]


class InvalidUrl(PermanentError):
    """The URL is malformed or uses a scheme other than http(s)."""

    headline = "That is not a web address we can fetch."


class RefusedAddress(PermanentError):
    """The host resolves to an address jobs may not reach (SSRF policy)."""

    headline = "That address is not allowed."


class HttpClientError(PermanentError):
    """The server answered 4xx (other than 429)."""

    headline = "The site refused to give us the page."


class TooLarge(PermanentError):
    """The body (after decompression) exceeds FETCH_MAX_BYTES."""

    headline = "The page is too large to count."


class UnsupportedContentType(PermanentError):
    """The response is not text/html, application/xhtml+xml or text/plain."""

    headline = "That address is not a web page or plain text."


class TooManyRedirects(PermanentError):
    """More than the allowed number of redirects."""

    headline = "The page redirected too many times."


class DnsError(TransientError):
    """The host name could not be resolved."""

    headline = "The site's name could not be found."


class FetchConnectionError(TransientError):
    """The connection failed or was reset."""

    headline = "The site could not be reached."


class FetchTimeout(TimedOut):
    """The server was too slow: connect, read or total deadline exceeded."""

    headline = "The site took too long to answer."


class HttpServerError(TransientError):
    """The server answered 5xx or 429."""

    headline = "The site had a problem answering."
