"""Errors a user can cause, as types mapped to exit codes (0 ok, 1 a gate or seed failed,
2 unusable input)."""

from __future__ import annotations


class ParityError(Exception):
    """Base for errors the CLI reports as one clear line instead of a traceback."""

    exit_code = 2


class UsageError(ParityError):
    exit_code = 2


class GateFailed(ParityError):
    exit_code = 1
