"""The error classes jobs raise: each carries a message a person understands, says whether a retry may help, and
has a headline that the job page shows above the message. Jobs define their own subclasses beside them.

Also the engine's own refusals: a queue entry it will not run, and a submission option that is invalid."""

from __future__ import annotations

from typing import ClassVar

# Headlines by error type; each JobError subclass adds its own when it is defined.
HEADLINES: dict[str, str] = {
    "JobTimeout": "The job took too long and was stopped.",
    "Stopped": "The job was stopped.",
    "InternalError": "Something went wrong while running the job.",
    "JobFailed": "The job ended unexpectedly.",
    "WorkerLost": "The worker running the job was lost.",
}
DEFAULT_HEADLINE = "The job failed."
UNDECODABLE = "The queue entry is not valid JSON (pickled or corrupt); it was not run."


class JobError(Exception):
    """A job failure whose message is safe to show to users."""

    transient = False
    headline: ClassVar[str] = DEFAULT_HEADLINE

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "headline" in cls.__dict__:
            HEADLINES[cls.__name__] = cls.headline

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


class TimedOut(TransientError):
    """A wait ran out (a server that did not answer in time). Another wait may succeed, but one that failed twice
    mostly burns a worker thread for its full length: retried once at most (engine.failure)."""


class ForbiddenJob(PermanentError):
    """A queue entry names a function outside the job catalogue, or cannot be decoded."""

    headline = "This job is not one we run."


class InvalidRequest(ValueError):
    """A submission option is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def headline(kind: str) -> str:
    """The headline for an error type; unknown types get a plain one."""
    return HEADLINES.get(kind, DEFAULT_HEADLINE)
