"""``mlx-parity status``: post a round report's commit statuses and its check run.

One status per probe (context ``mlx-parity/<round>/<probe>``) and one for the round
(``mlx-parity/<round>``), each linking to this workflow run, plus a check run named
``mlx-parity round <round>`` carrying the Markdown report. On a pull request they go on the pull
request's head commit (``GITHUB_SHA`` is then a merge commit no one sees). A pull request from a
fork runs with a read-only token, and a local run may have none: posting then degrades to an
explanation in the job summary and the exit code stays 0, because the round's verdict is in the
report and must not turn red over a permission the contributor could never have had. On any other
event a refused permission is the workflow's to fix, and fails the step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..collect.compare import RoundReport
from ..collect.markdown import fit_summary
from ..collect.report import build_statuses, parse_report
from ..errors import ExitCode, UsageError
from ..github.client import GitHubClient
from ..github.env import GitHubContext, append_github_file, read_github_context
from ..github.errors import GitHubError, MissingContext, PermissionDenied, may_have_taken_effect
from ..github.limits import CHECK_SUMMARY_LIMIT
from ..github.models import CheckConclusion, CommitStatus
from ..github.statuses import missing_permission, post_statuses_or_explain
from ..names import REPORT_JSON, check_run_name

# The round's status decides the check run's conclusion; "error" means the round could not be
# judged (missing artifacts, a crash), which a check run can only call a failure.
_CONCLUSIONS: dict[str, CheckConclusion] = {
    "success": "success",
    "failure": "failure",
    "error": "failure",
    "pending": "neutral",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", required=True, type=Path, help=f"the collector's report JSON ({REPORT_JSON})"
    )
    parser.add_argument(
        "--check-run",
        action="store_true",
        help="also create a check run whose summary is the Markdown report (needs --markdown)",
    )
    parser.add_argument(
        "--markdown", type=Path, help="the collector's Markdown report, for --check-run"
    )
    parser.set_defaults(handler=_run)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {what} {str(path)!r}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    if args.check_run and args.markdown is None:
        raise UsageError("--check-run needs --markdown report.md for the check-run summary")
    report = parse_report(_read(args.report, "report"), str(args.report))
    markdown = _read(args.markdown, "Markdown report") if args.check_run else None
    context = read_github_context()
    explanation = _post(context, report, markdown)
    if explanation is not None:
        text = f"**mlx-parity status:** {explanation}. The round's report is unaffected.\n"
        append_github_file(context.step_summary, f"\n{text}")
        sys.stdout.write(text)
    return ExitCode.OK


def _post(context: GitHubContext, report: RoundReport, markdown: str | None) -> str | None:
    """Post everything; the explanation when permissions or context stopped it, else None."""
    sha = context.head_sha
    if sha is None:
        return "GITHUB_SHA is not set: statuses not posted; run inside GitHub Actions"
    client = GitHubClient(context)
    statuses = build_statuses(report, context.run_url)
    try:
        explanation = post_statuses_or_explain(client, sha, statuses)
    except GitHubError as exc:
        if exc.exit_code != ExitCode.GITHUB:
            raise
        # An outage, a limit or a permission outside a pull request. Messages from the client
        # name the method and path, never a header; the token is scrubbed from GitHub's text too.
        raise GitHubError(f"GitHub did not take the round's results: {exc.message}") from None
    if explanation is not None:
        # The check run needs the same write access the statuses just lacked.
        return explanation + (" (check run skipped too)" if markdown is not None else "")
    print(f"posted {len(statuses)} commit statuses on {sha}")
    if markdown is None:
        return None
    overall = statuses[-1]  # build_statuses puts the round's own status last
    return _create_check_run(client, context, sha, report, overall, markdown)


def _create_check_run(
    client: GitHubClient,
    context: GitHubContext,
    sha: str,
    report: RoundReport,
    overall: CommitStatus,
    markdown: str,
) -> str | None:
    # Per-seed rows give way first, keeping the report's markup whole; the client's own cut
    # to 65,535 characters is only a last guard.
    summary = fit_summary(markdown, CHECK_SUMMARY_LIMIT, "65,535-character check-run")
    try:
        run = client.create_check_run(
            check_run_name(report.round_id),
            sha,
            _CONCLUSIONS[overall.state],
            overall.description or overall.state,
            summary,
            context.run_url,
        )
    except PermissionDenied as exc:
        if not context.on_pull_request:
            raise _check_run_failed(missing_permission(exc, "checks: write")) from None
        return "the token may not create check runs (it needs checks: write): check run skipped"
    except MissingContext as exc:
        return f"{exc.variable} is not set: check run skipped"
    except GitHubError as exc:
        if exc.exit_code != ExitCode.GITHUB:
            raise
        raise _check_run_failed(exc) from None
    print(f"created check run {run.name!r}" + (f": {run.html_url}" if run.html_url else ""))
    return None


def _check_run_failed(exc: GitHubError) -> GitHubError:
    if may_have_taken_effect(exc):
        # Not retried: a second check run would show twice on the commit.
        return GitHubError(
            f"the statuses were posted; GitHub may have created the check run too ({exc.message}):"
            " look at the commit's checks before running status again"
        )
    return GitHubError(
        f"the statuses were posted, but GitHub did not create the check run: {exc.message}"
    )
