"""The few fields of GitHub's payloads this project reads or writes, as validated models.
Response models ignore fields they do not name, so GitHub adding fields never breaks a round."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CommitState = Literal["error", "failure", "pending", "success"]
CheckConclusion = Literal[
    "action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"
]


class CommitStatus(BaseModel):
    """A commit status to post: one per probe, context ``mlx-parity/<probe>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: CommitState
    context: str = Field(min_length=1)
    description: str = ""
    target_url: str | None = None


class _GitHubResponse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# What GitHub answers to a write only informs; an accepted write (2xx) whose body lacks these
# fields is still accepted, so every field is optional.
class PostedStatus(_GitHubResponse):
    id: int | None = None
    state: str | None = None
    context: str | None = None
    description: str | None = None
    target_url: str | None = None


class CheckRun(_GitHubResponse):
    id: int | None = None
    name: str | None = None
    status: str | None = None
    conclusion: str | None = None
    html_url: str | None = None


class Artifact(_GitHubResponse):
    id: int
    name: str
    size_in_bytes: int
    expired: bool
    archive_download_url: str


class ArtifactPage(_GitHubResponse):
    total_count: int
    artifacts: list[Artifact]


class DispatchedRun(_GitHubResponse):
    """What GitHub answers when asked for run details on dispatch (newer servers only)."""

    workflow_run_id: int
    run_url: str
    html_url: str
