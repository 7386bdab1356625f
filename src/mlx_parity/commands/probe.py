"""``mlx-parity probe``: run one probe cell (one probe, several seeds, one process)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..fixture import SMOKE, Fixture
from ..knobs import KnobError, Knobs, apply, parse_assignment
from ..matrix import load_catalog, load_round
from ..probes import BUILTIN_PROBES, Probe
from .plan import parse_seed_filter

# The round ID recorded when no round file is named: built-in probes on the smoke fixture.
LOCAL_ROUND = "local"


def parse_seeds(text: str) -> list[int]:
    """``1,7,42`` → [1, 7, 42], validated as strictly as the workflow's plan does."""
    seeds = parse_seed_filter(text)
    if not seeds:
        raise UsageError("--seeds names no seed")
    return seeds


def parse_overrides(assignments: list[str]) -> dict[str, str]:
    try:
        return dict(parse_assignment(a) for a in assignments)
    except KnobError as exc:
        raise UsageError(str(exc)) from None


def lookup_probe(probe_id: str) -> Probe:
    try:
        return BUILTIN_PROBES[probe_id]
    except KeyError:
        known = ", ".join(BUILTIN_PROBES)
        raise UsageError(f"unknown probe {probe_id!r}; known probes: {known}") from None


def resolve_cell(
    args: argparse.Namespace, overrides: dict[str, str]
) -> tuple[Probe, Knobs, Fixture]:
    """The probe, its knobs and the fixture: from the round file when ``--round`` names one
    (its catalog, settings and fixture), else the built-in probes on the smoke fixture."""
    if args.round_id != LOCAL_ROUND:
        rnd = load_round(args.round_id, args.matrix)
        probe = load_catalog(args.matrix).get(args.probe)
        base, fixture = apply(Knobs(), rnd.settings), rnd.fixture
    else:
        probe, base, fixture = lookup_probe(args.probe), Knobs(), SMOKE
    try:
        knobs = probe.resolved(base, overrides)
    except KnobError as exc:
        raise UsageError(str(exc)) from None
    if args.model:
        fixture = fixture.model_copy(update={"model": args.model})
    return probe, knobs, fixture


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("probe", help="run one probe over a list of seeds")
    parser.add_argument("--probe", required=True, help="probe ID (e.g. reference, core)")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,7,42")
    parser.add_argument("--out", required=True, type=Path, help="directory for seed results")
    parser.add_argument(
        "--round",
        default=LOCAL_ROUND,
        dest="round_id",
        help="round whose probes, settings and fixture to use (default: built-ins, smoke fixture)",
    )
    parser.add_argument("--matrix", type=Path, help="matrix directory (default ./matrix)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        dest="overrides",
        help="override a knob or training setting (repeatable)",
    )
    parser.add_argument(
        "--model", help="model directory or hub repo instead of the embedded default"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: MLX and mlx-lm load slowly, and other commands need neither.
    from ..cell import CellProgress, ModelLoadError, run_cell
    from ..trainers import TrainerError

    seeds = parse_seeds(args.seeds)
    probe, knobs, fixture = resolve_cell(args, parse_overrides(args.overrides))
    try:
        results = run_cell(
            args.round_id, probe, knobs, fixture, seeds, args.out, CellProgress(not args.quiet)
        )
    except (TrainerError, ModelLoadError) as exc:
        raise UsageError(str(exc)) from None
    for r in results:
        verdict = "pass" if r.passed else "fail"
        print(
            f"{r.probe_id} seed {r.seed}: {r.status} {verdict} cf_loss={r.cf_loss} {r.generation!r}"
        )
    return 1 if any(r.status == "error" for r in results) else 0
