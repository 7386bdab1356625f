"""Where a seed ran: library versions, platform, device, runner and commit."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata

from .artifact import Environment


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_sha() -> str | None:
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.cache
def capture() -> Environment:
    import mlx.core as mx

    return Environment(
        mlx=_version("mlx"),
        mlx_lm=_version("mlx-lm"),
        python=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
        device=str(mx.default_device()),
        runner=os.environ.get("RUNNER_NAME", "local"),
        git_sha=_git_sha(),
    )
