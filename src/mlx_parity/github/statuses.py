"""Posting a round's commit statuses without letting a read-only token fail the round: a fork's
pull request runs with one, and GitHub's 403 "Resource not accessible by integration" is then
expected, so the collector gets an explanation for the job summary instead of an exception. On any
other event the job's own permissions are at fault, and the 403 is an error naming the one missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .client import GitHubClient
from .errors import MissingContext, PermissionDenied
from .models import CommitStatus

logger = logging.getLogger(__name__)

# Written into the job summary itself, so it must not send the reader there.
READ_ONLY_EXPLANATION = "read-only token (fork pull request?): statuses not posted"


def missing_permission(refusal: PermissionDenied, permission: str) -> PermissionDenied:
    """``refusal`` (a 403 outside a pull request) as an error naming the permission to grant."""
    return PermissionDenied(
        f"{refusal.message}; the job's token needs `permissions: {permission}` in the workflow",
        status=refusal.status,
    )


def post_statuses_or_explain(
    client: GitHubClient, sha: str, statuses: Sequence[CommitStatus]
) -> str | None:
    """Post every status on ``sha``; None when all were posted, else why they were not. Only a
    refused permission on a pull request or a missing token/repository is explained; other
    failures (a 403 elsewhere, rate limits beyond the budget, GitHub outages) still raise."""
    posted = 0
    try:
        for status in statuses:
            client.post_status(
                sha, status.state, status.context, status.description, status.target_url
            )
            posted += 1
    except PermissionDenied as exc:
        if not client.context.on_pull_request:
            raise missing_permission(exc, "statuses: write") from None
        explanation = READ_ONLY_EXPLANATION
        if posted:
            explanation += f" ({posted} of {len(statuses)} were posted before GitHub refused)"
        logger.warning("%s [%s]", explanation, exc.message)
        return explanation
    except MissingContext as exc:
        explanation = f"{exc.variable} is not set: statuses not posted"
        logger.warning(explanation)
        return explanation
    return None
