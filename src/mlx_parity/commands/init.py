"""``mlx-parity init``: start using mlx-parity in a git repository.

Writes a matrix (catalog, defaults, a smoke round and a parity round) with a probe for the
repository's trainer through its plugin, the workflow settings, the pin sets the jobs install
and the workflow itself. Two layouts:

- ``trainer``: the repository is a trainer package; the probe jobs install it from the checkout
  beside a pinned mlx-parity.
- ``parity``: a repository of rounds; the code under test is pinned in ``runner/pins/`` (add
  it there) beside a pinned mlx-parity.

Running it again changes nothing; a file that differs from what init would write is kept unless
``--force`` is given. Everything written is checked by loading both rounds before init reports
success.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from importlib import metadata, resources
from pathlib import Path
from string import Template

from ..errors import ExitCode, UsageError, display_path
from ..matrix import resolve_round
from ..probes import BUILTIN_PROBES
from ..trainers import PLUGIN_PREFIX, lookup
from ..workflow.generate import render_workflow
from ..workflow.settings import BRANCH_PATTERN, load_settings
from . import parse_probe_list, plain_text

LAYOUTS = ("trainer", "parity")
# Where each template goes, relative to the repository root.
TEMPLATES = {
    "probes.toml": "matrix/probes.toml",
    "defaults.toml": "matrix/defaults.toml",
    "rounds/smoke.toml": "matrix/rounds/smoke.toml",
    "rounds/parity.toml": "matrix/rounds/parity.toml",
    "workflow.toml": "matrix/workflow.toml",
    "pins/default.txt": "runner/pins/default.txt",
    "pins/control.txt": "runner/pins/control.txt",
}
# A requirement for mlx-parity, with or without extras; the name must end where the project's
# does (mlx_parity_extra is another project).
_MLX_PARITY_REQUIREMENT = re.compile(
    r"^\s*(mlx-parity|mlx_parity)(\[[^\]]*\])?(?![A-Za-z0-9._-])(.*)$"
)
# The mlx-parity pin set whose versions a new repository starts from (tested together).
TESTED_PINS = "default.txt"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = plain_text(__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--plugin",
        required=True,
        help="your trainer's mlx-parity plugin: package.module:function, or an installed "
        "entry-point NAME",
    )
    parser.add_argument(
        "--probe", dest="probe_id", help="the probe's ID (default: derived from --plugin)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="trainer (the repository is the code under test) or parity (default: trainer "
        "when the repository has a pyproject.toml or setup.py)",
    )
    parser.add_argument(
        "--mlx-parity",
        dest="mlx_parity",
        help="how the jobs install mlx-parity, as a requirement (default: "
        "mlx-parity==<this version>)",
    )
    parser.add_argument("--branch", default="main", help="the branch pushes run on (main)")
    parser.add_argument("--force", action="store_true", help="overwrite files that differ")
    parser.add_argument("--dir", type=Path, default=".", help="the repository (default: here)")
    parser.set_defaults(handler=_run)


def repository_root(directory: Path) -> Path:
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        raise UsageError(f"{directory} is not inside a git repository (git init first)") from None
    return Path(out.stdout.strip())


def probe_id_for(plugin: str) -> str:
    """``my_trainer.parity:train`` → ``my-trainer``; an entry-point name with its dots and
    underscores as dashes (``my_trainer.parity`` → ``my-trainer-parity``)."""
    name = plugin.split(":")[0].split(".")[0] if ":" in plugin else plugin
    return re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-") or "trainer"


def check_inputs(probe_id: str, branch: str) -> None:
    """Refuse flags that would make init write a matrix or workflow that cannot load, before
    anything is written (a written file would then be kept as "edited" on the next run)."""
    if len(parse_probe_list(probe_id, "--probe")) != 1:
        raise UsageError(f"--probe {probe_id!r}: name one probe")
    # Case too: GitHub artifact names compare case-insensitively, so the catalog refuses 'Core'.
    builtin = next((b for b in BUILTIN_PROBES if b.lower() == probe_id.lower()), None)
    if builtin is not None:
        raise UsageError(
            f"--probe {probe_id!r} is the built-in probe {builtin!r} (every round compares "
            "with it); choose another ID for your trainer with --probe"
        )
    if not re.fullmatch(BRANCH_PATTERN, branch):
        raise UsageError(
            f"--branch {branch!r} is not a branch name or pattern (letters, digits and "
            "._/-*?+![] only)"
        )


def with_extra(requirement: str) -> str:
    """The requirement with the ``mlx`` extra: ``mlx-parity==1.0`` → ``mlx-parity[mlx]==1.0``."""
    match = _MLX_PARITY_REQUIREMENT.match(requirement)
    if match is None:
        raise UsageError(f"--mlx-parity {requirement!r} is not a requirement for mlx-parity")
    return f"{match.group(1)}[mlx]{match.group(3)}"


def render_files(
    layout: str, plugin: str, probe_id: str, requirement: str, branch: str
) -> dict[str, str]:
    """Every file init writes (relative path → text), the workflow excepted."""
    packaged = resources.files("mlx_parity") / "resources"
    pins = (packaged / "pins" / TESTED_PINS).read_text().splitlines()
    values = {
        "layout": layout,
        "plugin": plugin,
        "probe_id": probe_id,
        # A TOML table-name part: bare when it can be, quoted when it has a dot.
        "probe_key": probe_id if re.fullmatch(r"[A-Za-z0-9_-]+", probe_id) else f'"{probe_id}"',
        "branch": branch,
        "mlx_parity": with_extra(requirement),
        "mlx_parity_plain": requirement,
        "tested_pins": "\n".join(p for p in pins if p.strip() and not p.startswith("#")),
        "checkout": " ." if layout == "trainer" else "",
        "code_under_test": (
            "\n# The checkout (your trainer) is installed beside it."
            if layout == "trainer"
            else "\n# Add the code under test below, pinned (for example a trainer's release)."
        ),
    }
    return {
        target: Template((packaged / "init" / template).read_text("utf-8")).substitute(values)
        for template, target in TEMPLATES.items()
    }


def write_files(root: Path, files: dict[str, str], force: bool) -> dict[str, str]:
    """Write each file unless an identical one is there; a differing one only with ``force``.
    Returns what happened to each: written, unchanged, overwritten or kept."""
    outcome = {}
    for relative, text in files.items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            outcome[relative] = "unchanged"
        elif path.is_file() and not force:
            outcome[relative] = "kept (differs; --force overwrites it)"
        else:
            outcome[relative] = "overwritten" if path.exists() else "written"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
    return outcome


def _run(args: argparse.Namespace) -> int:
    root = repository_root(args.dir)
    plugin = args.plugin.removeprefix(PLUGIN_PREFIX)
    lookup(PLUGIN_PREFIX + plugin)  # the plugin's name must have the right form
    probe_id = args.probe_id or probe_id_for(plugin)
    check_inputs(probe_id, args.branch)
    packaged = any((root / name).is_file() for name in ("pyproject.toml", "setup.py"))
    layout = args.layout or ("trainer" if packaged else "parity")
    requirement = args.mlx_parity or f"mlx-parity=={metadata.version('mlx-parity')}"
    files = render_files(layout, plugin, probe_id, requirement, args.branch)
    outcome = write_files(root, files, args.force)
    matrix_dir = root / "matrix"
    for round_id in ("smoke", "parity"):
        resolve_round(round_id, matrix_dir)  # what was written (or kept) must load
    settings = load_settings(matrix_dir)
    workflow = {settings.path: render_workflow(settings)}
    outcome |= write_files(root, workflow, args.force)
    width = max(len(path) for path in outcome)
    for path, what in outcome.items():
        print(f"  {path:<{width}}  {what}")
    print(
        f"\n{display_path(root)}: layout {layout}, probe {probe_id!r} (plugin:{plugin}). Next: "
        "`mlx-parity run --round smoke` here, then commit and push; dispatch the full round "
        "with `mlx-parity dispatch --round parity`."
    )
    kept = [path for path, what in outcome.items() if what.startswith("kept")]
    return ExitCode.DIFFERENCE if kept else ExitCode.OK
