"""Errors a user can cause, as types, and the exit status each maps to.

Every error the CLI reports derives from :class:`ParityError` and carries its exit code, so
``mlx-parity`` maps error types to codes in one place (``cli.py``) and prints one line, never a
traceback. The table is also in the README ("Exit status").
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    # The round was judged and a gate failed (collect, run).
    GATE_FAILED = 1
    # Unusable input: a flag, a matrix file, an artifact, a model, a plugin that does not load.
    USAGE = 2
    # GitHub could not be reached, or refused or failed a request (status, dispatch, run:<ID>).
    GITHUB = 3
    # A comparison found a difference: the workflow file drifted (workflow check), two reports
    # differ (compare), a candidate is not explained by any configuration (explain), init kept
    # a file that differs from what it would write.
    DIFFERENCE = 4
    # A probe cell ran, but some seed ended in an error (probe).
    SEED_FAILED = 5
    INTERRUPTED = 130


class ParityError(Exception):
    """Base for errors the CLI reports as one clear line instead of a traceback."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(ParityError):
    exit_code = ExitCode.USAGE


def display_path(path: Path) -> str:
    """The path relative to the working directory when it lies below it (short CI log lines)."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
