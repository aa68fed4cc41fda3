"""Job error classes: each carries a message a person understands, and says whether a retry may help."""


class JobError(Exception):
    """A job failure whose message is safe to show to users."""

    transient = False

    @property
    def type(self) -> str:
        return type(self).__name__


class PermanentError(JobError):
    """Retrying cannot help: fail at once."""


class TransientError(JobError):
    """The same call may succeed later: retry with backoff."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


# Permanent
class InvalidUrl(PermanentError):
    """The URL is malformed or uses a scheme other than http(s)."""


class RefusedAddress(PermanentError):
    """The host resolves to an address jobs may not reach (SSRF policy)."""


class HttpClientError(PermanentError):
    """The server answered 4xx (other than 429)."""


class TooLarge(PermanentError):
    """The body (after decompression) exceeds FETCH_MAX_BYTES."""


class UnsupportedContentType(PermanentError):
    """The response is not text/html, application/xhtml+xml or text/plain."""


class TooManyRedirects(PermanentError):
    """More than the allowed number of redirects."""


class ForbiddenJob(PermanentError):
    """A queue entry names a function outside the job catalogue, or cannot be decoded."""


class MailRejected(PermanentError):
    """The SMTP server answered 5xx: a recipient, the sender or the message was refused for good."""


class MailConfigError(PermanentError):
    """Mail cannot be sent as configured: SMTP_URL unset, login refused, TLS unavailable or untrusted."""


# Transient
class DnsError(TransientError):
    """The host name could not be resolved."""


class FetchConnectionError(TransientError):
    """The connection failed or was reset."""


class FetchTimeout(TransientError):
    """The server was too slow: connect, read or total deadline exceeded."""


class HttpServerError(TransientError):
    """The server answered 5xx or 429."""


class MailDeferred(TransientError):
    """The SMTP server answered 4xx (greylisting, rate limit, mailbox busy): try again later."""


class MailConnectionError(TransientError):
    """The SMTP server could not be reached, timed out, or dropped the connection."""
