"""Fetch a past workflow run's artifacts into a local directory (for compare and explain)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..errors import UsageError
from .client import GitHubClient
from .env import GitHubContext
from .errors import ArtifactExpired

RUN_PREFIX = "run:"


def parse_run_source(source: str) -> int | None:
    """``run:123456`` → 123456; anything else is a local path (None). A bare number is a path:
    a folder named ``123`` must never turn into a download."""
    if not source.startswith(RUN_PREFIX):
        return None
    text = source.removeprefix(RUN_PREFIX)
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{source!r}: a workflow run is written run:<numeric run ID>")
    return int(text)


def fetch_run_artifacts(
    run_id: int, pattern: str, dest: Path, client: GitHubClient | None = None
) -> list[Path]:
    """Download every artifact of ``run_id`` whose name matches ``pattern``; raises
    :class:`ArtifactExpired` when one has expired (a partial set would pass for a whole one)."""
    client = client or GitHubClient(GitHubContext.from_env())
    matching = [a for a in client.list_run_artifacts(run_id) if fnmatch.fnmatch(a.name, pattern)]
    expired = [repr(a.name) for a in matching if a.expired]
    if expired:
        raise ArtifactExpired(
            f"run {run_id}: {', '.join(expired)} expired (GitHub deletes a run's artifacts after "
            "the repository's retention period); run the round again"
        )
    files: list[Path] = []
    for item in matching:
        files += client.download_artifact(item, dest / item.name)
    return files
