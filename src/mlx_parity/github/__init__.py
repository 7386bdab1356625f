"""GitHub REST client: commit statuses, check runs, run artifacts and workflow dispatch."""

from __future__ import annotations

from .archive import safe_extract
from .client import API_VERSION, GitHubClient
from .env import GitHubContext
from .errors import (
    ArtifactExpired,
    GitHubError,
    InvalidRequest,
    MissingContext,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
    UnsafeArchive,
    ValidationFailed,
)
from .limits import (
    CHECK_SUMMARY_LIMIT,
    DISPATCH_INPUTS_LIMIT,
    STATUS_DESCRIPTION_LIMIT,
    fit_check_summary,
    fit_status_description,
)
from .models import (
    Artifact,
    CheckConclusion,
    CheckRun,
    CommitState,
    CommitStatus,
    DispatchedRun,
    PostedStatus,
)
from .statuses import READ_ONLY_EXPLANATION, post_statuses_or_explain

__all__ = [
    "API_VERSION",
    "CHECK_SUMMARY_LIMIT",
    "DISPATCH_INPUTS_LIMIT",
    "READ_ONLY_EXPLANATION",
    "STATUS_DESCRIPTION_LIMIT",
    "Artifact",
    "ArtifactExpired",
    "CheckConclusion",
    "CheckRun",
    "CommitState",
    "CommitStatus",
    "DispatchedRun",
    "GitHubClient",
    "GitHubContext",
    "GitHubError",
    "InvalidRequest",
    "MissingContext",
    "NotFound",
    "PermissionDenied",
    "PostedStatus",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unreachable",
    "UnsafeArchive",
    "ValidationFailed",
    "fit_check_summary",
    "fit_status_description",
    "post_statuses_or_explain",
    "safe_extract",
]
