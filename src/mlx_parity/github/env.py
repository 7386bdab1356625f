"""Where the job is running, read from the variables GitHub Actions sets for every step.

Reading GitHub's own variables (rather than flags of our own) is what lets the same command run in a
workflow, under a local Actions runner, and in tests that point ``GITHUB_API_URL`` at a loopback
server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .errors import MissingContext

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"

# Model field -> the variable GitHub Actions sets. One table, so errors can name the variable.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "api_url": "GITHUB_API_URL",
    "server_url": "GITHUB_SERVER_URL",
    "repository": "GITHUB_REPOSITORY",
    "sha": "GITHUB_SHA",
    "token": "GITHUB_TOKEN",
    "run_id": "GITHUB_RUN_ID",
    "step_summary": "GITHUB_STEP_SUMMARY",
    "output": "GITHUB_OUTPUT",
    "event_name": "GITHUB_EVENT_NAME",
}


class GitHubContext(BaseModel):
    """The repository, commit, run and credentials of the current job; anything may be absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    repository: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    sha: str | None = None
    # SecretStr keeps the token out of repr(), str(), model_dump_json() and therefore out of logs.
    token: SecretStr | None = None
    run_id: int | None = None
    step_summary: Path | None = None
    output: Path | None = None
    event_name: str | None = None

    @field_validator("api_url", "server_url")
    @classmethod
    def _without_trailing_slash(cls, url: str) -> str:
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

    def token_value(self) -> str:
        """The raw token, for the Authorization header only."""
        if self.token is None or not self.token.get_secret_value():
            raise MissingContext(ENVIRONMENT_VARIABLES["token"])
        return self.token.get_secret_value()

    def _require_repository(self) -> str:
        if self.repository is None:
            raise MissingContext(ENVIRONMENT_VARIABLES["repository"])
        return self.repository
