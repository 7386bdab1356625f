"""Names other parts rely on — the workflow, the collector, ``status``, ``compare`` and
``explain`` — spelled once: artifact names, report files and commit-status contexts."""

from __future__ import annotations

# One artifact per probe cell holds its seed results; collect downloads them by pattern.
SEED_ARTIFACT_PREFIX = "seed-results-"
SEED_ARTIFACT_PATTERN = f"{SEED_ARTIFACT_PREFIX}*"
# A seed-result artifact is named <prefix><cell><separator><run attempt>.
ATTEMPT_SEPARATOR = "-attempt"
# The collect job uploads the three reports under this artifact name.
REPORT_ARTIFACT = "parity-report"
REPORT_MARKDOWN = "report.md"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_FILES = (REPORT_MARKDOWN, REPORT_JSON, REPORT_HTML)
# Commit statuses: each round's own under "mlx-parity/<round>", each probe's under
# "mlx-parity/<round>/<probe>", so a dispatched round never overwrites the push round's statuses
# on the same commit; the round's check run is "mlx-parity round <round>".
STATUS_CONTEXT = "mlx-parity"


def round_context(round_id: str) -> str:
    return f"{STATUS_CONTEXT}/{round_id}"


def probe_context(round_id: str, probe_id: str) -> str:
    return f"{round_context(round_id)}/{probe_id}"


def check_run_name(round_id: str) -> str:
    return f"{STATUS_CONTEXT} round {round_id}"


def parse_seed_artifact(name: str) -> tuple[str, int] | None:
    """(cell, attempt) of a seed-result artifact's name; None for any other name."""
    if not name.startswith(SEED_ARTIFACT_PREFIX):
        return None
    cell, separator, attempt = name.removeprefix(SEED_ARTIFACT_PREFIX).rpartition(ATTEMPT_SEPARATOR)
    if not (separator and cell and attempt.isascii() and attempt.isdigit()):
        return None
    return cell, int(attempt)
