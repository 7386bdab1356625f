"""``mlx-parity collect DIR --round ID``: compare a round's seed results with its baseline and
report — Markdown on stdout (and in the job summary under GitHub Actions), optionally JSON and
HTML files.

Probes are described by what their seed results record; seeds whose recorded config differs
from the round file are listed under Problems. A filtered run (``--probes``, ``--seeds``: what
``plan`` scheduled) is judged on its own cells, the baseline always among them. Exit status: 0
when every gate holds, 1 when a gate fails, 2 when the input is unusable (an unknown round, no
such directory, no artifact).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..artifact import write_atomic
from ..collect.compare import RoundReport, build_report
from ..collect.gather import gather, gc_paused
from ..collect.html import render_html
from ..collect.markdown import SUMMARY_LIMIT, fit_summary, render_markdown
from ..collect.report import report_json
from ..collect.terminal import render_terminal
from ..errors import ExitCode, UsageError
from ..github.env import append_github_file, read_github_context
from ..matrix import ResolvedRound, resolve_round
from ..names import REPORT_HTML, REPORT_JSON, REPORT_MARKDOWN
from . import add_matrix_option, parse_probe_list, parse_seed_list, plain_text


class NothingToCollect(UsageError):
    """No artifact at all (in CI: every probe job failed before writing one). It carries the
    report of that, every cell missing, so the reports and statuses can still say so."""

    def __init__(self, message: str, report: RoundReport) -> None:
        super().__init__(message)
        self.report = report


def collect_round(
    directory: Path, round_: ResolvedRound, attempt: int | None = None
) -> RoundReport:
    """Gather every artifact below ``directory`` and compare the round's probes with its
    baseline; ``attempt`` is this workflow run's attempt. Raises :class:`NothingToCollect`
    when there is nothing to collect."""
    directory = Path(directory)
    # One pause for both stages: every re-enable of the collector costs a pass over the heap.
    with gc_paused():
        gathered = gather(directory, round_, attempt)  # a missing folder holds no file
        report = build_report(round_, gathered)
    if not directory.is_dir():
        raise NothingToCollect(f"{directory} is not a directory", report)
    if gathered.files_seen == 0:
        raise NothingToCollect(f"no artifacts (*.json) under {directory}", report)
    return report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = plain_text(__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("directory", type=Path, metavar="DIR", help="folder of seed results")
    parser.add_argument("--round", required=True, dest="round_id", metavar="ID", help="round ID")
    parser.add_argument(
        "--probes",
        default="",
        help="judge only these comma-separated probe IDs, and the baseline (empty: all)",
    )
    parser.add_argument(
        "--seeds", default="", help="judge only these comma-separated seeds (empty: all)"
    )
    add_matrix_option(parser)
    parser.add_argument("--markdown", type=Path, metavar="F", help="write the Markdown report")
    parser.add_argument("--json", type=Path, metavar="F", help="write the JSON report")
    parser.add_argument("--html", type=Path, metavar="F", help="write the HTML report")
    parser.add_argument("--quiet", action="store_true", help="do not print the Markdown")
    parser.set_defaults(handler=_run)


@dataclass(frozen=True)
class ReportOutputs:
    """Where the Markdown, JSON and HTML reports go (None: not written)."""

    markdown: Path | None = None
    json: Path | None = None
    html: Path | None = None

    @classmethod
    def beside(cls, directory: Path) -> ReportOutputs:
        """``report.md``, ``report.json`` and ``report.html`` in ``directory`` — what
        ``mlx-parity compare`` finds when given the folder."""
        return cls(directory / REPORT_MARKDOWN, directory / REPORT_JSON, directory / REPORT_HTML)


def collect_and_report(
    directory: Path,
    round_: ResolvedRound,
    *,
    quiet: bool = False,
    outputs: ReportOutputs | None = None,
    for_terminal: bool = False,
    selection: str = "",
) -> int:
    """Collect, write the reports, print the Markdown, fill the job summary; the exit status.
    ``outputs`` None (the local round runner) writes the three reports beside the artifacts;
    ``for_terminal`` prints the report's terminal form instead of the Markdown; ``selection``
    is a line the Markdown carries under its title (see :func:`selection_line`)."""
    context = read_github_context()
    attempt = context.run_attempt if context.run_id is not None else None
    nothing: NothingToCollect | None = None
    try:
        report = collect_round(directory, round_, attempt)
    except NothingToCollect as exc:
        if outputs is None:  # a local run: nothing to report beside, and no pull request
            raise
        # Still written and summarised: the pull request must hear that no cell reported.
        report, nothing = exc.report, exc
    outputs = outputs or ReportOutputs.beside(Path(directory))
    markdown = with_selection_line(render_markdown(report), selection)
    if outputs.markdown:
        write_atomic(outputs.markdown, markdown)
    if outputs.json:
        write_atomic(outputs.json, report_json(report, context.run_url))
    if outputs.html:
        write_atomic(outputs.html, render_html(report))
    if context.step_summary is not None:
        append_step_summary(context.step_summary, markdown)
    if not quiet and for_terminal:
        # As wide as the terminal; piped, as wide as the rows need.
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        print(render_terminal(report, Path(directory), width))
    elif not quiet:
        print(markdown)
    if nothing is not None:
        raise nothing
    return ExitCode.OK if report.passed else ExitCode.GATE_FAILED


def _run(args: argparse.Namespace) -> int:
    probe_filter, seed_filter = parse_probe_list(args.probes), parse_seed_list(args.seeds)
    round_ = resolve_round(args.round_id, args.matrix)
    selection = ""
    if probe_filter or seed_filter:
        selected = round_.selected(probe_filter, seed_filter)
        round_, selection = selected, selection_line(round_, selected)
    outputs = ReportOutputs(args.markdown, args.json, args.html)
    return collect_and_report(
        args.directory, round_, quiet=args.quiet, outputs=outputs, selection=selection
    )


def selection_line(whole: ResolvedRound, selected: ResolvedRound) -> str:
    """What a report of a filtered run covers: its cells are all that was planned, so the
    round's other probes and seeds are neither missing nor judged."""
    probes = ", ".join(f"`{probe_id}`" for probe_id in selected.probes)
    seeds = ", ".join(map(str, selected.seeds))
    return (
        f"**Selection:** probes {probes} ({len(selected.probes)} of {len(whole.probes)}) × "
        f"seeds {seeds} ({len(selected.seeds)} of {len(whole.seeds)}): a filtered run, whose "
        "report judges only these cells."
    )


def with_selection_line(markdown: str, selection: str) -> str:
    if not selection:
        return markdown
    title, rest = markdown.split("\n", 1)
    return f"{title}\n\n{selection}\n{rest}"


def append_step_summary(path: Path, markdown: str) -> None:
    """Append the report, fitted into what is left of GitHub's 1 MiB per-step budget."""
    used = path.stat().st_size if path.exists() else 0
    room = SUMMARY_LIMIT - used
    if room <= 0:
        print(f"mlx-parity collect: {path} is full; job summary not written", file=sys.stderr)
        return
    append_github_file(path, fit_summary(markdown, room))
