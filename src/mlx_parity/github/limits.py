"""GitHub's documented size limits. Over-long text is cut with a visible mark rather than
rejected: a round's report must still reach the pull request when a probe writes a novel into
its description."""

from __future__ import annotations

STATUS_DESCRIPTION_LIMIT = 140
CHECK_SUMMARY_LIMIT = 65_535
DISPATCH_INPUTS_LIMIT = 25

ELLIPSIS = "…"


def fit_status_description(description: str) -> str:
    """The description as GitHub will accept it: at most 140 characters, ending in … when cut."""
    if len(description) <= STATUS_DESCRIPTION_LIMIT:
        return description
    return description[: STATUS_DESCRIPTION_LIMIT - len(ELLIPSIS)] + ELLIPSIS


def fit_check_summary(summary: str) -> str:
    """The summary cut to 65,535 characters, ending in a note that says how much was dropped."""
    if len(summary) <= CHECK_SUMMARY_LIMIT:
        return summary
    # The note's length depends on the numbers in it; they are bounded by len(summary).
    note = truncation_note(shown=len(summary), total=len(summary))
    shown = CHECK_SUMMARY_LIMIT - len(note)
    return summary[:shown] + truncation_note(shown=shown, total=len(summary))


def truncation_note(*, shown: int, total: int) -> str:
    return (
        f"\n\n{ELLIPSIS}\n\n**Summary truncated**: {shown:,} of {total:,} characters shown "
        "(GitHub's check-run limit); the full report is in the job summary and the run's artifacts."
    )
