"""Posting a round's commit statuses without letting a read-only token fail the round: a fork's
pull request runs with one, and GitHub's 403 "Resource not accessible by integration" is then
expected, so the collector gets an explanation for the job summary instead of an exception."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .client import GitHubClient
from .errors import MissingContext, PermissionDenied
from .models import CommitStatus

logger = logging.getLogger(__name__)

READ_ONLY_EXPLANATION = (
    "read-only token (fork pull request?): statuses not posted; see the job summary"
)


def post_statuses_or_explain(
    client: GitHubClient, sha: str, statuses: Sequence[CommitStatus]
) -> str | None:
    """Post every status on ``sha``; None when all were posted, else why they were not. Only a
    refused permission or a missing token/repository is explained; other failures (rate limits
    beyond the budget, GitHub outages) still raise."""
    posted = 0
    try:
        for status in statuses:
            client.post_status(
                sha, status.state, status.context, status.description, status.target_url
            )
            posted += 1
    except PermissionDenied as exc:
        explanation = READ_ONLY_EXPLANATION
        if posted:
            explanation += f" ({posted} of {len(statuses)} were posted before GitHub refused)"
        logger.warning("%s [%s]", explanation, exc.message)
        return explanation
    except MissingContext as exc:
        explanation = f"{exc.variable} is not set: statuses not posted; see the job summary"
        logger.warning(explanation)
        return explanation
    return None
