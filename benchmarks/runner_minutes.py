"""macOS runner-minutes of the motivating round shape, one job per probe cell vs one job per
(probe, seed), from a per-seed time measured here.

    .venv/bin/python benchmarks/runner_minutes.py [--macos-scale 1.0] [--seconds-per-seed S]

What is measured: the ``core`` probe over 2 seeds with the embedded model and the default knobs
(the smoke fixture: 30 steps, batch 6, compile on), through ``run_cell`` exactly as a probe job
runs it. The second seed is the steady per-seed cost; whatever the first seed costs beyond it
(compile warm-up) is paid once per job, like the rest of the setup.

What is not measured: a macOS runner. The per-seed time used for the estimate is an input —
the local time multiplied by ``--macos-scale`` (default 1: "as fast as this machine"), or
``--seconds-per-seed`` outright — and the per-job setup is an input too (``--setup-seconds``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlx_parity.cell import ModelSource, run_cell
from mlx_parity.estimate import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_SETUP_SECONDS,
    LayoutEstimate,
    compare_layouts,
    format_duration,
)
from mlx_parity.fixture import SMOKE
from mlx_parity.matrix import local_round, resolve_round

MATRIX_DIR = Path(__file__).resolve().parent.parent / "matrix"
# "Round BM" of the motivating history: six probes over 15 seeds (matrix/rounds/motivating.toml).
MOTIVATING_ROUND = "motivating"
MEASURED_SEEDS = [1, 7]


def measure_seed_seconds() -> tuple[float, float, float]:
    """(first seed, second seed, model source start-up) in seconds, through run_cell."""
    tic = time.perf_counter()
    source = ModelSource(SMOKE.model_path())
    source.tokenizer()
    startup = time.perf_counter() - tic
    with tempfile.TemporaryDirectory(prefix="mlx-parity-bench-") as out:
        # The built-in core probe at the default knobs, on the smoke fixture.
        core = local_round().probe("core")
        results = run_cell("bench", core, SMOKE, MEASURED_SEEDS, Path(out), source=source)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(
            f"seed {failed[0].seed} did not train: {failed[0].status} {failed[0].error}"
        )
    first, second = (r.timings["total_s"] for r in results)
    return first, second, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--macos-scale",
        type=float,
        default=1.0,
        help="macOS per-seed time = measured per-seed time × this factor (an assumption)",
    )
    parser.add_argument(
        "--seconds-per-seed",
        type=float,
        help="use this macOS per-seed time instead of scaling the measured one",
    )
    parser.add_argument("--setup-seconds", type=float, default=DEFAULT_SETUP_SECONDS)
    parser.add_argument("--max-parallel", type=int, default=DEFAULT_MAX_PARALLEL)
    args = parser.parse_args()

    round_ = resolve_round(MOTIVATING_ROUND, MATRIX_DIR)
    cells = round_.cells()
    first, second, startup = measure_seed_seconds()

    print("Measured on this machine (core probe, embedded model, default knobs, run_cell):")
    print(f"  model + tokenizer load (once per job)   {startup:8.2f} s")
    print(f"  seed {MEASURED_SEEDS[0]} (includes compile warm-up)       {first:8.2f} s")
    print(f"  seed {MEASURED_SEEDS[1]} (steady per-seed time)           {second:8.2f} s")
    print()
    if args.seconds_per_seed is not None:
        seconds_per_seed = args.seconds_per_seed
        source = "given with --seconds-per-seed (not measured)"
    else:
        seconds_per_seed = second * args.macos_scale
        source = (
            f"the measured {second:.2f} s × --macos-scale {args.macos_scale:g} — an input scaled "
            "from this machine, not a macOS measurement"
        )
    print(f"macOS per-seed time: {seconds_per_seed:.2f} s, {source}")
    print(
        f"per-job setup: {args.setup_seconds:g} s (assumed: runner start, checkout, Python, "
        "uv install of the pinned set, cache restore, model load, upload)"
    )
    print()

    comparison = compare_layouts(
        [len(cell.seeds) for cell in cells],
        seconds_per_seed,
        args.setup_seconds,
        args.max_parallel,
    )
    shape = f"{len(round_.probes)} probes × {len(round_.seeds)} seeds"
    print(f"Round {round_.id!r} ({shape}), max-parallel {args.max_parallel}:")
    print(f"  {'layout':<28}{'jobs':>6}{'billed min':>12}{'wall clock':>16}")
    for estimate in (comparison.per_cell, comparison.per_seed):
        print(_row(estimate))
    saved = comparison.minutes_saved
    print(
        f"  one job per cell bills {saved} fewer macOS minutes "
        f"({saved / comparison.per_seed.billed_minutes:.0%} less)"
    )


def _row(estimate: LayoutEstimate) -> str:
    wall = format_duration(estimate.wall_clock_seconds)
    return f"  {estimate.layout:<28}{estimate.jobs:>6}{estimate.billed_minutes:>12}{wall:>16}"


if __name__ == "__main__":
    main()
