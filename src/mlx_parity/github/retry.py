"""How long to wait before retrying an answer from GitHub, or that it must not be retried: pure
functions of the status, the headers and the clock, readable and testable apart from any HTTP.
They follow GitHub's REST guidance: ``retry-after`` wins; with ``x-ratelimit-remaining: 0`` wait
until ``x-ratelimit-reset``; a secondary limit without either means "wait at least a minute";
500/502/503/504 are transient and get exponential backoff (only on requests safe to repeat)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

RATE_LIMIT_STATUSES = frozenset({403, 429})
TRANSIENT_SERVER_STATUSES = frozenset({500, 502, 503, 504})

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
# GitHub: without retry-after or a reset time, wait at least one minute after a secondary limit.
SECONDARY_LIMIT_WAIT = 60.0
# What one call may spend waiting, by default: room for one such wait and the requests around it,
# so a secondary limit is retried once (a second one in a row gives up).
DEFAULT_WAIT_BUDGET = SECONDARY_LIMIT_WAIT + 30.0
# The reset time is a whole second on GitHub's clock; a little slack keeps us from arriving early.
RESET_MARGIN = 1.0
# Never hammer: even "retry-after: 0" waits this long.
MINIMUM_WAIT = 1.0


def server_error_backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th consecutive transient failure (1, 2, 4, … ≤ 30)."""
    return min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_CAP)


def rate_limit_wait(
    status: int, headers: Mapping[str, str], message: str, now: float
) -> float | None:
    """Seconds GitHub asks us to wait, or None when the answer is not a rate limit.

    ``headers`` must look names up case-insensitively (``requests`` gives such a mapping).
    A 403 without any rate-limit marker is a permission problem and returns None.
    """
    if status not in RATE_LIMIT_STATUSES:
        return None
    retry_after = _parse_retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return max(retry_after, MINIMUM_WAIT)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _parse_float(headers.get("x-ratelimit-reset"))
        if reset is not None:
            return max(reset - now, 0.0) + RESET_MARGIN
        return SECONDARY_LIMIT_WAIT
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_LIMIT_WAIT
    return None


def _parse_retry_after(value: str | None, now: float) -> float | None:
    # RFC 9110 allows delay-seconds or an HTTP date; GitHub sends seconds, proxies may send dates.
    if value is None:
        return None
    seconds = _parse_float(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
