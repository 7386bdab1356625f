"""Where the job is running, read from the variables GitHub Actions sets for every step (not
flags of our own), so the same command runs in a workflow, under a local Actions runner, and in
tests that point ``GITHUB_API_URL`` at a loopback server."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..errors import UsageError
from .errors import InvalidRequest, MissingContext

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"

# Events whose GITHUB_SHA is a merge commit GitHub made, not a commit of the pull request.
PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_review", "pull_request_target"})


class GitHubContext(BaseModel):
    """The repository, commit, run and credentials of the current job; anything may be absent.
    Each field is read from the variable GitHub Actions names after it (``GITHUB_<FIELD>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    repository: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    # A full commit ID (SHA-1, or SHA-256 in a repository that uses it).
    sha: str | None = Field(None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")
    # SecretStr keeps the token out of repr(), str(), model_dump_json() and therefore out of logs.
    token: SecretStr | None = None
    run_id: int | None = None
    step_summary: Path | None = None
    output: Path | None = None
    event_name: str | None = None
    event_path: Path | None = None
    run_attempt: int = Field(1, ge=1)

    @field_validator("api_url", "server_url")
    @classmethod
    def _http_url_without_trailing_slash(cls, url: str) -> str:
        # Anything else fails only inside the HTTP library, after the budget's first retries.
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise ValueError(f"must be an http(s) URL such as {DEFAULT_API_URL}, got {url!r}")
        return url.rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GitHubContext:
        """Read the context from ``environ``; variables set to an empty string count as unset."""
        values = {
            field: environ[variable]
            for field, variable in ENVIRONMENT_VARIABLES.items()
            if environ.get(variable)
        }
        return cls.model_validate(values)

    @property
    def owner(self) -> str:
        return self._require_repository().split("/", 1)[0]

    @property
    def repo(self) -> str:
        return self._require_repository().split("/", 1)[1]

    @property
    def run_url(self) -> str | None:
        """The run's page on GitHub, or None outside a workflow run."""
        if self.repository is None or self.run_id is None:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def on_pull_request(self) -> bool:
        """Whether this job runs for a pull request (whose token is read-only when from a fork)."""
        return self.event_name in PULL_REQUEST_EVENTS

    @property
    def head_sha(self) -> str | None:
        """The commit results belong on: on a pull request, its head commit
        (``pull_request.head.sha`` in the event payload) — ``GITHUB_SHA`` is then a merge commit
        no one looks at, and statuses posted there never show on the pull request."""
        if not self.on_pull_request or self.event_path is None:
            return self.sha
        try:
            event = json.loads(self.event_path.read_text(encoding="utf-8"))
            head = event["pull_request"]["head"]["sha"]
        except (OSError, ValueError, KeyError, TypeError):
            head = None
        if not (isinstance(head, str) and re.fullmatch(r"[0-9a-f]{40}", head)):
            raise InvalidRequest(
                f"{self.event_path}: a {self.event_name} event without pull_request.head.sha; "
                "the statuses would land on the merge commit, where no one sees them"
            )
        return head

    def token_value(self) -> str:
        """The raw token, for the Authorization header only."""
        if self.token is None or not self.token.get_secret_value():
            raise MissingContext(ENVIRONMENT_VARIABLES["token"])
        return self.token.get_secret_value()

    def _require_repository(self) -> str:
        if self.repository is None:
            raise MissingContext(ENVIRONMENT_VARIABLES["repository"])
        return self.repository


# Model field -> the variable GitHub Actions sets, so errors can name the variable.
ENVIRONMENT_VARIABLES = {field: f"GITHUB_{field.upper()}" for field in GitHubContext.model_fields}


def read_github_context(environ: Mapping[str, str] = os.environ) -> GitHubContext:
    """The context of this job; a variable GitHub would never set that way is a usage error
    naming it."""
    try:
        return GitHubContext.from_env(environ)
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        variable = ENVIRONMENT_VARIABLES.get(str(error["loc"][0]), str(error["loc"][0]))
        raise UsageError(f"${variable} is not valid: {error['msg']}") from None


def append_github_file(path: Path | None, text: str) -> None:
    """Append to a file GitHub hands every step (``GITHUB_STEP_SUMMARY``, ``GITHUB_OUTPUT``);
    other commands of the step may write to it too. ``None`` (outside Actions) writes nothing."""
    if path is None:
        return
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise UsageError(
            f"cannot append to {path}, the file GitHub Actions named for this step "
            f"(GITHUB_OUTPUT or GITHUB_STEP_SUMMARY): {exc.strerror or exc}"
        ) from None
