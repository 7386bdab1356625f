"""``mlx-parity status``: post the collector's commit statuses (and optionally a check run).

The statuses come from the round report (``statuses: [{context, state, description}]``, one per
probe plus the overall ``mlx-parity``); each links to this workflow run. A pull request from a
fork runs with a read-only token, and a local run may have none: posting then degrades to an
explanation in the job summary and the exit code stays 0, because the round's verdict is in the
report and must not turn red over a permission the contributor could never have had.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ParityError, UsageError
from ..github import (
    CheckConclusion,
    CommitState,
    CommitStatus,
    GitHubClient,
    GitHubContext,
    GitHubError,
    MissingContext,
    PermissionDenied,
    post_statuses_or_explain,
)

OVERALL_CONTEXT = "mlx-parity"
CHECK_RUN_NAME = "mlx-parity"

# The overall status decides the check run's conclusion; "error" means the round could not be
# judged (missing artifacts, a crash), which a check run can only call a failure.
_CONCLUSIONS: dict[str, CheckConclusion] = {
    "success": "success",
    "failure": "failure",
    "error": "failure",
    "pending": "neutral",
}


class PostingFailed(ParityError):
    """GitHub did not take the statuses for a reason other than permissions (outage, limits)."""

    exit_code = 1


class ReportStatus(BaseModel):
    # The collector may add fields; only these three are ours to post.
    model_config = ConfigDict(extra="ignore", frozen=True)

    context: str = Field(min_length=1)
    state: CommitState
    description: str = ""


class StatusReport(BaseModel):
    """The part of the collector's report JSON this command reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    statuses: list[ReportStatus] = Field(min_length=1)
    round_id: str | None = None


def load_report(path: Path) -> StatusReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the report {str(path)!r}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    try:
        return StatusReport.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or '<report>'}: {error['msg']}"
            for error in exc.errors(include_input=False)[:3]
        )
        raise UsageError(f"{path} has no usable statuses: {problems}") from None


def commit_statuses(report: StatusReport, target_url: str | None) -> list[CommitStatus]:
    return [
        CommitStatus(
            state=status.state,
            context=status.context,
            description=status.description,
            target_url=target_url,
        )
        for status in report.statuses
    ]


def overall_status(report: StatusReport) -> ReportStatus:
    """The round's own status; without one, the worst probe status stands for the round."""
    for status in report.statuses:
        if status.context == OVERALL_CONTEXT:
            return status
    order = ["success", "pending", "failure", "error"]
    return max(report.statuses, key=lambda status: order.index(status.state))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="post a round report's commit statuses to GitHub")
    parser.add_argument(
        "--report", required=True, type=Path, help="the collector's report JSON (report.json)"
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


def _run(args: argparse.Namespace) -> int:
    if args.check_run and args.markdown is None:
        raise UsageError("--check-run needs --markdown report.md for the check-run summary")
    report = load_report(args.report)
    markdown = _read_markdown(args.markdown) if args.check_run else None
    try:
        context = GitHubContext.from_env()
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]) for error in exc.errors(include_input=False))
        raise UsageError(f"unusable GitHub Actions variables: {problems}") from None

    explanation = _post(context, report, markdown)
    if explanation is not None:
        _explain(context, explanation)
    return 0


def _post(context: GitHubContext, report: StatusReport, markdown: str | None) -> str | None:
    """Post everything; the explanation when permissions or context stopped it, else None."""
    if context.sha is None:
        return "GITHUB_SHA is not set: statuses not posted; run inside GitHub Actions"
    client = GitHubClient(context)
    statuses = commit_statuses(report, context.run_url)
    try:
        explanation = post_statuses_or_explain(client, context.sha, statuses)
        if explanation is not None:
            # The check run needs the same write access the statuses just lacked.
            return explanation + (" (check run skipped too)" if markdown is not None else "")
        print(f"posted {len(statuses)} commit statuses on {context.sha}")
        if markdown is not None:
            return _create_check_run(client, context, report, markdown)
    except GitHubError as exc:
        # Messages from the client name the method and path, never a header; the token is
        # scrubbed from GitHub's own text as well.
        raise PostingFailed(f"GitHub did not take the round's results: {exc.message}") from None
    return None


def _create_check_run(
    client: GitHubClient, context: GitHubContext, report: StatusReport, markdown: str
) -> str | None:
    overall = overall_status(report)
    name = f"{CHECK_RUN_NAME} round {report.round_id}" if report.round_id else CHECK_RUN_NAME
    try:
        # The client cuts the summary to GitHub's 65,535 characters with a visible note.
        run = client.create_check_run(
            name,
            context.sha or "",
            _CONCLUSIONS[overall.state],
            overall.description or overall.state,
            markdown,
            context.run_url,
        )
    except PermissionDenied:
        return "the token may not create check runs (it needs checks: write): check run skipped"
    except MissingContext as exc:
        return f"{exc.variable} is not set: check run skipped"
    print(f"created check run {run.name!r}" + (f": {run.html_url}" if run.html_url else ""))
    return None


def _read_markdown(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the Markdown report {str(path)!r}: {exc}") from None


def _explain(context: GitHubContext, explanation: str) -> None:
    text = f"**mlx-parity status:** {explanation}. The round's report is unaffected.\n"
    if context.step_summary is not None:
        with context.step_summary.open("a", encoding="utf-8") as handle:
            handle.write(f"\n{text}")
    sys.stdout.write(text)
