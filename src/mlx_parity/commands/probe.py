"""``mlx-parity probe``: run one probe cell (one probe, several seeds, one process)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ExitCode, UsageError
from ..knobs import apply, parse_assignment
from ..matrix import ResolvedProbe, ResolvedRound, local_round, resolve_round
from . import add_matrix_option, parse_seed_list


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--probe", required=True, help="probe ID (e.g. reference, core)")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,7,42")
    parser.add_argument("--out", required=True, type=Path, help="directory for seed results")
    parser.add_argument(
        "--round",
        dest="round_id",
        help="round whose probes, settings and fixture to use (default: the built-in probes "
        "on the smoke fixture)",
    )
    add_matrix_option(parser)
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


def resolve_cell(args: argparse.Namespace) -> tuple[ResolvedRound, ResolvedProbe]:
    """The round (the named one, or the built-in probes on the smoke fixture) and the probe
    with ``--set`` overrides applied."""
    rnd = resolve_round(args.round_id, args.matrix) if args.round_id else local_round()
    probe = rnd.probe(args.probe)
    overrides = dict(parse_assignment(a) for a in args.overrides)
    knobs = apply(probe.knobs, overrides)
    probe.trainer.check_knobs(knobs)
    return rnd, ResolvedProbe(probe.probe, probe.trainer, knobs, probe.expect)


def _run(args: argparse.Namespace) -> int:
    # Imported here: MLX and mlx-lm load slowly, and other commands need neither.
    from ..cell import CellProgress, run_cell

    seeds = parse_seed_list(args.seeds)
    if not seeds:
        raise UsageError("--seeds names no seed")
    rnd, probe = resolve_cell(args)
    fixture = rnd.fixture
    if args.model:
        fixture = fixture.model_copy(update={"model": args.model})
    progress = CellProgress(not args.quiet)
    results = run_cell(
        rnd.id,
        probe,
        fixture,
        seeds,
        args.out,
        progress,
        device=rnd.round.device,
        calibrate=rnd.calibration_seeds(probe.id),
    )
    for r in results:
        verdict = "pass" if r.passed else "fail"
        print(
            f"{r.probe_id} seed {r.seed}: {r.status} {verdict} cf_loss={r.cf_loss} {r.generation!r}"
        )
    return ExitCode.SEED_FAILED if any(r.status == "error" for r in results) else ExitCode.OK
