"""``mlx-parity workflow generate|check``: write the GitHub Actions workflow, or verify that the
checked-in file is exactly what the generator writes (so hand edits cannot drift from settings).

The repository root is the current directory: settings overrides are read from
``matrix/workflow.toml`` and relative paths resolve against it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from ..errors import UsageError
from ..workflow.generate import render_workflow
from ..workflow.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("workflow", help="generate or check the GitHub Actions workflow")
    actions = parser.add_subparsers(dest="workflow_action", required=True, metavar="ACTION")

    generate = actions.add_parser("generate", help="write the workflow file")
    generate.add_argument(
        "--output", type=Path, help="where to write (default: the settings' path)"
    )
    generate.set_defaults(handler=_generate)

    check = actions.add_parser(
        "check", help="exit 1 with a diff when the workflow file differs from the generator's"
    )
    check.add_argument("--file", type=Path, help="file to check (default: the settings' path)")
    check.set_defaults(handler=_check)


def _generate(args: argparse.Namespace) -> int:
    root = Path.cwd()
    settings = load_settings(root)
    target = args.output or root / settings.path
    target.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n": the same bytes on every platform, so `check` never flags line endings.
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(render_workflow(settings))
    print(f"wrote {target}")
    return 0


def _check(args: argparse.Namespace) -> int:
    root = Path.cwd()
    settings = load_settings(root)
    target = args.file or root / settings.path
    if not target.is_file():
        raise UsageError(f"{target} does not exist; run `mlx-parity workflow generate`")
    with target.open(encoding="utf-8", newline="") as handle:
        actual = handle.read()
    expected = render_workflow(settings)
    if actual == expected:
        print(f"{target} is up to date")
        return 0
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
    return 1
