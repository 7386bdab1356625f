"""``mlx-parity probe``: run one probe cell (one probe, several seeds, one process)."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

from ..errors import ExitCode, UsageError
from ..knobs import apply, knob_reference, parse_assignment
from ..matrix import local_round, resolve_round
from . import add_matrix_option, output_directory, parse_seed_list


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "knobs for --set KNOB=VALUE (the defaults are mlx-lm's values and the smoke fixture's "
        "settings;\na round's [settings] and a probe's knobs override them):\n"
        + knob_reference(shutil.get_terminal_size().columns)
    )
    parser.add_argument("--probe", required=True, help="probe ID (e.g. reference, core)")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,7,42")
    parser.add_argument("--out", required=True, type=Path, help="directory for seed results")
    parser.add_argument(
        "--round",
        dest="round_id",
        help="round whose probes, settings and fixture to use (default: the built-in probes, "
        "reference and core, on the smoke fixture at the knobs' defaults, 30 steps at lr 1e-3, "
        "not matrix/defaults.toml's settings)",
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


def _run(args: argparse.Namespace) -> int:
    # Imported here: MLX and mlx-lm load slowly, and other commands need neither.
    from ..cell import CellProgress, run_cell

    seeds = parse_seed_list(args.seeds)
    if not seeds:
        raise UsageError("--seeds names no seed")
    # The named round, or the built-in probes on the smoke fixture.
    rnd = resolve_round(args.round_id, args.matrix) if args.round_id else local_round()
    if not args.round_id and args.probe not in rnd.probes:
        # A catalog probe needs its round: without one only the built-in probes exist.
        raise UsageError(
            f"without --round, only the built-in probes ({', '.join(rnd.probes)}) can run: "
            f"pass --round ID with a round that names {args.probe!r}"
        )
    probe = rnd.probe(args.probe)
    overrides = dict(parse_assignment(a) for a in args.overrides)
    probe = replace(probe, knobs=apply(probe.knobs, overrides))
    probe.trainer.check_knobs(probe.knobs)  # refused before the progress bars take stderr
    output_directory(args.out)
    fixture = rnd.fixture
    if args.model:
        fixture = fixture.model_copy(update={"model": args.model})
        fixture.model_path()  # a directory that does not exist is refused before any seed
    results = run_cell(
        rnd.id,
        probe,
        fixture,
        seeds,
        args.out,
        CellProgress(not args.quiet),
        device=rnd.round.device,
        calibrate=rnd.calibration_seeds(probe.id),
    )
    for r in results:
        if r.status == "error":
            print(f"{r.probe_id} seed {r.seed}: error: {r.error_summary}")
            continue
        verdict = "pass" if r.passed else "fail"
        print(
            f"{r.probe_id} seed {r.seed}: {r.status} {verdict} cf_loss={r.cf_loss} {r.generation!r}"
        )
    return ExitCode.SEED_FAILED if any(r.status == "error" for r in results) else ExitCode.OK
