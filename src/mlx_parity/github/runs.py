"""Fetch a past workflow run's artifacts into a local directory (for compare and explain)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from .client import GitHubClient
from .env import GitHubContext


def parse_run_source(source: str) -> int | None:
    """``run:123456`` (or a bare run ID) → 123456; anything else → None (a local path)."""
    text = source.removeprefix("run:")
    return int(text) if text.isdigit() and (source.startswith("run:") or source.isdigit()) else None


def fetch_run_artifacts(
    run_id: int, pattern: str, dest: Path, client: GitHubClient | None = None
) -> list[Path]:
    """Download every unexpired artifact of ``run_id`` whose name matches ``pattern``."""
    client = client or GitHubClient(GitHubContext.from_env())
    files: list[Path] = []
    for item in client.list_run_artifacts(run_id):
        if item.expired or not fnmatch.fnmatch(item.name, pattern):
            continue
        files += client.download_artifact(item, dest / item.name)
    return files
