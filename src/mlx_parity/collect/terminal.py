"""A round report as a terminal shows it: one aligned table, a probe a row, then the gates that
failed, the problems and where the full reports are. ``run`` prints this; the Markdown, whose
tables are wider than a terminal and whose per-seed detail and chart are for GitHub, goes to
``report.md`` and the job summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..names import REPORT_HTML, REPORT_JSON, REPORT_MARKDOWN
from .compare import ProbeReport, RoundReport
from .markdown import (
    DASH,
    SEED_INSENSITIVE,
    divergence_text,
    knobs_text,
    pass_rate_text,
    shorten,
    trace_text,
)

HEADERS = ("probe", "knobs vs baseline", "expects", "trace", "pass rate (95% CI)")
# To fit the terminal, columns are cut (ending in "…") in this order, each down to its
# narrowest: the knobs first, the verdict columns never.
SHRINK_ORDER = ((1, 8), (3, 12), (0, 12))
# Problems named one by one before the rest are only counted.
NAMED_PROBLEMS = 5


def probe_row(probe: ProbeReport) -> list[str]:
    expects = "(baseline)" if probe.is_baseline else probe.expect
    return [probe.id, knobs_text(probe), expects, trace_text(probe), pass_rate_text(probe)]


def probe_table(report: RoundReport, width: int | None) -> list[str]:
    """Columns padded to their widest cell (cut in ``SHRINK_ORDER`` to fit ``width``), and under
    a probe that diverged, where it first did: the longest text, so it gets a line of its own."""
    rows = [probe_row(p) for p in report.probes]
    widths = [max(len(row[i]) for row in [list(HEADERS), *rows]) for i in range(len(HEADERS))]
    if width is not None:
        overflow = sum(widths) + 2 * (len(widths) - 1) - width
        for column, narrowest in SHRINK_ORDER:
            cut = max(0, min(overflow, widths[column] - narrowest))
            widths[column] -= cut
            overflow -= cut

    def line(cells: Sequence[str]) -> str:
        padded = (f"{shorten(c, w):<{w}}" for c, w in zip(cells, widths, strict=True))
        return shorten("  ".join(padded).rstrip(), width)

    lines = [line(HEADERS), line(["-" * w for w in widths])]
    for probe, row in zip(report.probes, rows, strict=True):
        lines.append(line(row))
        if (divergence := divergence_text(probe)) != DASH:
            lines.append(shorten(f"    first divergence: {divergence}", width))
    return lines


def render_terminal(report: RoundReport, reports: Path, width: int | None = None) -> str:
    """The report for a terminal ``width`` columns wide (None: as wide as the rows need)."""
    held = sum(g.passed for g in report.gates)
    lines = [
        f"round {report.round_id}: {'passed' if report.passed else 'FAILED'} · "
        f"{len(report.probes)} probes × {len(report.seeds)} seeds · baseline {report.baseline}",
        shorten(f"traces compared {report.allowance}", width),
        "",
        *probe_table(report, width),
        *(
            shorten(f"⚠ seeds have no effect on {p.id}: {SEED_INSENSITIVE}", width)
            for p in report.probes
            if p.seed_insensitive
        ),
        "",
        f"gates: {held} of {len(report.gates)} hold",
        *(shorten(f"  failed: {g.title}: {g.detail}", width) for g in report.failed_gates()),
    ]
    if report.problems:
        lines.append(f"problems: {len(report.problems)}")
        lines += [
            shorten(f"  {p.kind} {p.subject}: {p.detail}", width)
            for p in report.problems[:NAMED_PROBLEMS]
        ]
        if len(report.problems) > NAMED_PROBLEMS:
            lines.append(f"  … {len(report.problems) - NAMED_PROBLEMS} more in the reports")
    lines.append(f"reports: {reports / REPORT_MARKDOWN}, {REPORT_HTML}, {REPORT_JSON}")
    return "\n".join(lines)
