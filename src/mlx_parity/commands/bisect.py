"""``mlx-parity bisect --round ID --from A --to B``: which of B's knobs make it diverge from A."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..knobs import Knobs
from ..matrix import (
    MatrixError,
    ResolvedRound,
    check_round_id,
    packaged_matrix_dir,
    resolve_round,
)
from . import add_matrix_option, check_tolerance, parse_seed_list

if TYPE_CHECKING:  # the bisection trains with MLX: imported only when it runs
    from ..diagnose.bisect import Bisection


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round", required=True, dest="round_id", help="round (fixture, settings)")
    parser.add_argument("--from", required=True, dest="from_probe", help="probe A (core)")
    parser.add_argument("--to", required=True, dest="to_probe", help="probe B (core)")
    parser.add_argument(
        "--seeds", default="", help="comma-separated seeds (default: the round's first 3)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="per-step |Δloss| allowed (default 0: bit for bit)",
    )
    add_matrix_option(parser)
    parser.add_argument(
        "--write-round",
        metavar="ROUND_ID",
        help="write a round confirming the result as rounds/ROUND_ID.toml in the matrix in "
        "use (--matrix, or the one found as described there)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_run)


def _core_knobs(rnd: ResolvedRound, probe_id: str) -> Knobs:
    probe = rnd.probe(probe_id)
    if probe.trainer.name != "core":
        raise UsageError(
            f"probe {probe_id!r} runs trainer {probe.trainer.name!r}; bisect varies the core's "
            "knobs, so both probes must be core probes (explain a candidate trainer with "
            "`explain`)"
        )
    return probe.knobs


def _run(args: argparse.Namespace) -> int:
    from ..cell import ModelSource
    from ..diagnose.bisect import bisect
    from ..diagnose.traces import TraceRunner

    check_tolerance(args.tolerance)
    rnd = resolve_round(args.round_id, args.matrix)
    a = _core_knobs(rnd, args.from_probe)
    b = _core_knobs(rnd, args.to_probe)
    seeds = parse_seed_list(args.seeds) or rnd.seeds[:3]
    if args.write_round:
        confirming_round_path(args.write_round, rnd)  # refused now, not after the training

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"  … {text}", file=sys.stderr)

    runner = TraceRunner(rnd.fixture, ModelSource(rnd.fixture.model_path()))
    result = bisect(runner, a, b, seeds, args.tolerance, args.from_probe, args.to_probe, progress)
    print(result.report())
    if args.write_round:
        path = write_confirming_round(args.write_round, rnd, result)
        print(f"wrote {path}; run it on the macOS matrix with round_id={args.write_round}")
    return 0


def _toml(value) -> str:
    # JSON strings, numbers and booleans are valid TOML; lists of them too.
    return json.dumps(value, ensure_ascii=False)


def confirming_round_path(round_id: str, resolved: ResolvedRound) -> Path:
    """Where ``--write-round`` writes: a new, valid round ID in a matrix of the user's own (the
    matrix shipped inside the package is part of the installation, not theirs to edit)."""
    check_round_id(round_id)
    matrix = resolved.matrix_dir or Path("matrix")
    if matrix == packaged_matrix_dir():
        raise UsageError(
            f"--write-round: the matrix in use is the one installed with mlx-parity ({matrix}); "
            "run from your repository (below its matrix/) or pass --matrix DIR"
        )
    path = matrix / "rounds" / f"{round_id}.toml"
    if path.exists():
        raise UsageError(f"{path} exists already; choose another round ID")
    return path


def write_confirming_round(round_id: str, resolved: ResolvedRound, result: Bisection) -> Path:
    """A round with the baseline, A, B and one probe per single differing knob; probes the
    catalog lacks are appended to the catalog file (so the workflow can run them). Both files
    are restored if the written round does not load."""
    # Checked again: the round file may have appeared while the bisection trained.
    path = confirming_round_path(round_id, resolved)
    rnd, catalog = resolved.round, resolved.catalog
    matrix = path.parent.parent  # <matrix>/rounds/<round_id>.toml
    a_knobs = catalog.get(result.from_id).knobs
    new_entries, probe_ids = [], []
    for change in result.differing:
        knobs = {**a_knobs, change.knob: change.value}
        existing = next(
            (pid for pid, p in catalog.probes.items() if p.trainer == "core" and p.knobs == knobs),
            None,
        )
        if existing is None:
            value = str(change.value).lower().replace(":", "-").replace(".", "_")
            existing = f"{result.from_id}-{change.knob}-{value}"[:64].replace("_", "-")
            inline = ", ".join(f"{k} = {_toml(v)}" for k, v in knobs.items())
            new_entries.append(
                f'\n[probes.{existing}]\ntrainer = "core"\n'
                f"description = {_toml(f'{result.from_id} with {change.describe()} (bisect)')}\n"
                f'knobs = {{ {inline} }}\nexpect = "any"\n'
            )
        probe_ids.append(existing)
    probes = list(dict.fromkeys([rnd.baseline, result.from_id, result.to_id, *probe_ids]))
    lines = [
        f"# Written by `mlx-parity bisect --round {rnd.id} --from {result.from_id} "
        f"--to {result.to_id}`: confirms the local bisection on the macOS matrix.",
        f"hypothesis = {_toml(_hypothesis(result))}",
        f"probes = {_toml(probes)}",
        f"baseline = {_toml(rnd.baseline)}",
        f"seeds = {_toml(rnd.seeds)}",
        f"pins = {_toml(rnd.pins)}",
    ]
    tables = {
        "fixture": rnd.fixture.model_dump(mode="json"),
        "settings": rnd.settings,
        "gates": {k: v for k, v in rnd.gates.model_dump().items() if v is not None},
    }
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
    lines.append("")
    catalog_file = matrix / "probes.toml"
    catalog_text = catalog_file.read_text(encoding="utf-8")
    catalog_file.write_text(catalog_text + "".join(new_entries), encoding="utf-8")
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        resolve_round(round_id, matrix)
    except MatrixError as exc:
        catalog_file.write_text(catalog_text, encoding="utf-8")
        path.unlink()
        raise UsageError(f"the written round does not load, nothing kept: {exc}") from None
    return path


def _hypothesis(result: Bisection) -> str:
    if not result.culprit:
        return f"{result.to_id} and {result.from_id} do not diverge on this fixture."
    inert = len(result.culprit) < len(result.differing)
    rest = "; the other differences are inert" if inert else ""
    return f"From {result.from_id} to {result.to_id}: {result.verdict()}{rest}."
