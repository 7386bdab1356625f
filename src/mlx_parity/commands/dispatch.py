"""``mlx-parity dispatch``: start a round on GitHub Actions from a terminal.

The round and its filters are validated here exactly as ``plan`` will validate them on the runner,
so a typo is refused in a second instead of after a workflow run has started; only then is the
workflow dispatched with the inputs ``round_id``, ``probes`` and ``seeds``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path, PurePosixPath

from ..errors import ExitCode, UsageError
from ..github.client import GitHubClient
from ..github.env import read_github_context
from ..github.errors import GitHubError, may_have_taken_effect
from ..matrix import find_matrix_dir
from ..workflow.settings import load_settings
from . import add_matrix_option
from .plan import resolve_plan

DEFAULT_REF = "main"

# A workflow file name in .github/workflows, or its numeric ID (the API accepts both).
_WORKFLOW_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml|[0-9]+")
# The characters git allows in a branch or tag name that also need no quoting anywhere.
_REF_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")


def check_ref(ref: str) -> str:
    if not _REF_PATTERN.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/", ".")):
        raise UsageError(
            f"--ref {ref!r} is not a plain branch or tag name (letters, digits, '.', '_', '-', '/')"
        )
    return ref


def check_workflow(workflow: str) -> str:
    if not _WORKFLOW_PATTERN.fullmatch(workflow):
        raise UsageError(
            f"--workflow {workflow!r} must be a file name under .github/workflows "
            "(e.g. mlx-parity.yml) or a workflow ID"
        )
    return workflow


def _generated_workflow(matrix: Path | None) -> str:
    """The file name `mlx-parity workflow generate` writes for this matrix."""
    return PurePosixPath(load_settings(matrix or find_matrix_dir()).path).name


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round", required=True, dest="round_id", help="round ID")
    parser.add_argument("--probes", default="", help="comma-separated probe IDs (empty: all)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (empty: all)")
    parser.add_argument("--ref", default=DEFAULT_REF, help=f"branch or tag (default {DEFAULT_REF})")
    parser.add_argument(
        "--workflow",
        help="workflow file name (default: the file name of the path in the matrix's "
        "workflow.toml, mlx-parity.yml unless set there)",
    )
    add_matrix_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    ref = check_ref(args.ref)
    workflow = check_workflow(args.workflow or _generated_workflow(args.matrix))
    plan = resolve_plan(args.round_id, args.probes, args.seeds, args.matrix)
    # The filters as given (validated): plan on the runner re-derives the same cells from them.
    inputs = {"round_id": plan.round.id, "probes": args.probes, "seeds": args.seeds}
    context = read_github_context()
    try:
        run = GitHubClient(context).dispatch_workflow(workflow, ref, inputs)
    except GitHubError as exc:
        if exc.exit_code != ExitCode.GITHUB:
            raise  # a missing token or an invalid request: the user's to fix
        # GitHub refused or failed the dispatch; the round itself was valid.
        raise _dispatch_failed(exc, f"{context.server_url}/{context.repository}/actions") from None
    where = run.html_url if run is not None else f"the Actions tab of {context.repository}"
    print(
        f"dispatched {workflow} on {ref}: round {plan.round.id!r}, {len(plan.cells)} cells, "
        f"{plan.seed_runs} seed runs; follow it at {where}"
    )
    return 0


def _dispatch_failed(exc: GitHubError, actions_url: str) -> GitHubError:
    if may_have_taken_effect(exc):
        # The client did not repeat the request; a blind retry could start the round twice.
        return GitHubError(
            f"GitHub may have started the round all the same ({exc.message}): check {actions_url}"
            " before dispatching it again"
        )
    return GitHubError(f"GitHub did not start the round: {exc.message}")
