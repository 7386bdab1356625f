"""``mlx-parity workflow generate|check``: write the GitHub Actions workflow, or verify that the
checked-in file is exactly what the generator writes (so hand edits cannot drift from settings).

The workflow's path in the settings is relative to the repository root: the directory holding
the matrix (the jobs find ``matrix/`` there), so both commands work from any subdirectory; the
current directory when no matrix is found (the rounds shipped with mlx-parity). Overrides are
read from ``workflow.toml`` in the matrix directory (``--matrix``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from ..errors import ExitCode, UsageError
from ..matrix import find_matrix_dir, packaged_matrix_dir
from ..workflow.generate import render_workflow
from ..workflow.settings import WorkflowSettings, load_settings
from . import add_matrix_option


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="workflow_action", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate",
        help="write the workflow file",
        description="Write the workflow from mlx-parity's defaults and the matrix's "
        "workflow.toml, at the settings' path under the repository root: the directory holding "
        "the matrix, from any subdirectory (the working directory when no matrix/ is found).",
    )
    check = actions.add_parser(
        "check",
        help=f"exit {ExitCode.DIFFERENCE:d} with a diff when the file has drifted",
        description="Compare the workflow file with what `generate` would write: exit 0 when "
        f"they are the same, {ExitCode.DIFFERENCE:d} with a diff when the file has drifted (edit "
        "matrix/workflow.toml and regenerate, not the file).",
    )
    for action, handler in ((generate, _generate), (check, _check)):
        action.add_argument(
            "--file", type=Path, help="the workflow file (default: the settings' path)"
        )
        add_matrix_option(action)
        action.set_defaults(handler=handler)


def _settings_and_target(args: argparse.Namespace) -> tuple[WorkflowSettings, Path]:
    matrix_dir = args.matrix or find_matrix_dir()
    settings = load_settings(matrix_dir)
    # Resolved first: the parent of "--matrix ." is "." again.
    root = Path.cwd() if matrix_dir == packaged_matrix_dir() else Path(matrix_dir).resolve().parent
    return settings, args.file or root / settings.path


def _generate(args: argparse.Namespace) -> int:
    settings, target = _settings_and_target(args)
    target.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n": the same bytes on every platform, so `check` never flags line endings.
    target.write_text(render_workflow(settings), encoding="utf-8", newline="\n")
    print(f"wrote {target}")
    return ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    settings, target = _settings_and_target(args)
    if not target.is_file():
        raise UsageError(f"{target} does not exist; run `mlx-parity workflow generate`")
    actual = target.read_bytes().decode("utf-8")  # untranslated, so CRLF shows as a difference
    expected = render_workflow(settings)
    if actual == expected:
        print(f"{target} is up to date")
        return ExitCode.OK
    diff = difflib.unified_diff(
        actual.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=f"{target} (checked in)",
        tofile=f"{target} (generated)",
    )
    sys.stdout.writelines(diff)
    print(
        f"\n{target} differs from the generated workflow; "
        "run `mlx-parity workflow generate` (edit settings, not the file)",
        file=sys.stderr,
    )
    return ExitCode.DIFFERENCE
