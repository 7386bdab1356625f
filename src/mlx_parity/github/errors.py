"""What can go wrong talking to GitHub, as types the caller can tell apart. The client builds
messages from the method, the path and GitHub's own ``message`` field, token scrubbed; they never
carry request headers."""

from __future__ import annotations

from ..errors import ExitCode, ParityError


class GitHubError(ParityError):
    """GitHub refused a request, failed to answer it, or answered something unusable."""

    exit_code = ExitCode.GITHUB

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The HTTP status GitHub answered with, when there was an answer.
        self.status = status


class MissingContext(GitHubError):
    """A GitHub Actions variable the operation needs is not set (e.g. outside a workflow)."""

    exit_code = ExitCode.USAGE

    def __init__(self, variable: str) -> None:
        super().__init__(f"{variable} is not set; run inside GitHub Actions or export it")
        self.variable = variable


class InvalidRequest(GitHubError, ValueError):
    """Refused before sending: GitHub would reject it, or it would do something unintended."""

    exit_code = ExitCode.USAGE


class Unauthorized(GitHubError):
    """401: the token is missing, expired or wrong."""


class PermissionDenied(GitHubError):
    """403 that is not a rate limit: the token may not do this, usually the read-only
    ``GITHUB_TOKEN`` of a fork's pull request ("Resource not accessible by integration")."""


class NotFound(GitHubError):
    """404: no such repository, commit, run or artifact, or the token cannot see it."""


class ArtifactExpired(GitHubError):
    """410, or the artifact list says so: the artifact outlived its retention period."""


class ValidationFailed(GitHubError):
    """422: GitHub understood the request and refused its content."""


class RateLimited(GitHubError):
    """Rate limited for longer than the client was allowed to wait."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None) -> None:
        super().__init__(message, status=status)
        # How long GitHub asked us to wait when we gave up, in seconds.
        self.retry_after = retry_after


class ServerError(GitHubError):
    """5xx from GitHub that did not clear up within the wait budget (or must not be retried)."""


class Unreachable(GitHubError):
    """No HTTP answer at all (connection refused, reset, timed out) within the wait budget."""


class UnsafeArchive(GitHubError):
    """A downloaded archive tries to write outside its destination or is implausibly large."""


def may_have_taken_effect(error: GitHubError) -> bool:
    """Whether a write that failed with ``error`` may have happened all the same: GitHub can act
    on a request and then answer 5xx, or the answer can be lost. A 4xx or a rate limit means it
    did not act."""
    return isinstance(error, (ServerError, Unreachable))
