"""``mlx-parity collect DIR --round ID``: compare a round's seed results with its baseline and
report — Markdown on stdout (and in the job summary under GitHub Actions), optionally JSON and
HTML files.

Exit status: 0 when every gate holds, 1 when a gate fails, 2 when the input is unusable (an
unknown round, no such directory, no artifact at all).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..artifact import write_atomic
from ..collect.compare import RoundReport, build_report
from ..collect.gather import gather, gc_paused
from ..collect.html import render_html
from ..collect.markdown import SUMMARY_LIMIT, fit_summary, render_markdown
from ..collect.report import REPORT_FILE, write_report_json
from ..errors import UsageError
from ..github.env import ENVIRONMENT_VARIABLES, GitHubContext
from ..matrix import Catalog, Round, load_catalog, load_round


def collect_round(directory: Path, round_: Round, catalog: Catalog) -> RoundReport:
    """Gather every artifact below ``directory`` and compare the round's probes with its
    baseline. Raises :class:`UsageError` when there is nothing to collect."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    # One pause for both stages: every re-enable of the collector costs a pass over the heap.
    with gc_paused():
        gathered = gather(directory, round_)
        if gathered.files_seen == 0:
            raise UsageError(f"no artifacts (*.json) under {directory}")
        return build_report(round_, catalog, gathered)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "collect",
        help="compare a round's seed results with its baseline and report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="folder of seed results")
    parser.add_argument("--round", required=True, dest="round_id", metavar="ID", help="round ID")
    parser.add_argument(
        "--matrix", type=Path, metavar="DIR", help="matrix directory (default: found upwards)"
    )
    parser.add_argument("--markdown", type=Path, metavar="F", help="write the Markdown report")
    parser.add_argument("--json", type=Path, metavar="F", help="write the JSON report")
    parser.add_argument("--html", type=Path, metavar="F", help="write the HTML report")
    parser.add_argument("--quiet", action="store_true", help="do not print the Markdown")
    parser.set_defaults(handler=_run)


def _github_context() -> GitHubContext:
    try:
        return GitHubContext.from_env()
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        variable = ENVIRONMENT_VARIABLES.get(field, field)
        raise UsageError(f"${variable} is not valid: {exc.errors()[0]['msg']}") from None


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
        return cls(directory / "report.md", directory / REPORT_FILE, directory / "report.html")


def collect_and_report(
    directory: Path,
    round_: Round,
    catalog: Catalog,
    *,
    quiet: bool = False,
    outputs: ReportOutputs | None = None,
) -> int:
    """Collect, write the reports, print the Markdown, fill the job summary; the exit status.

    ``outputs`` None (the local round runner) writes the three reports beside the artifacts.
    """
    context = _github_context()
    report = collect_round(directory, round_, catalog)
    outputs = outputs or ReportOutputs.beside(Path(directory))
    markdown = render_markdown(report)
    if outputs.markdown:
        write_atomic(outputs.markdown, markdown)
    if outputs.json:
        write_report_json(report, outputs.json, context.run_url)
    if outputs.html:
        write_atomic(outputs.html, render_html(report))
    if context.step_summary is not None:
        append_step_summary(context.step_summary, markdown)
    if not quiet:
        print(markdown)
    return 0 if report.passed else 1


def _run(args: argparse.Namespace) -> int:
    round_ = load_round(args.round_id, args.matrix)
    catalog = load_catalog(args.matrix)
    outputs = ReportOutputs(args.markdown, args.json, args.html)
    return collect_and_report(args.directory, round_, catalog, quiet=args.quiet, outputs=outputs)


def append_step_summary(path: Path, markdown: str) -> None:
    """Append the report, fitted into what is left of GitHub's 1 MiB per-step budget."""
    used = path.stat().st_size if path.exists() else 0
    room = SUMMARY_LIMIT - used
    if room <= 0:
        print(f"mlx-parity collect: {path} is full; job summary not written", file=sys.stderr)
        return
    with path.open("a", encoding="utf-8") as handle:
        handle.write(fit_summary(markdown, room))
