"""``mlx-parity plan``: turn a round (and optional probe/seed filters) into the probe matrix.

This is the first job of the workflow, on an ubuntu runner: everything it reads may come from a
dispatch form, so it is validated here, before a single macOS minute is spent. A refusal exits 2
with one line on stderr and, inside Actions, the same message in the job summary. Accepted input
becomes job outputs (``matrix``, ``round_id``, and the ``probes`` and ``seeds`` collect is to
judge) and a Markdown plan summary with the estimated runner cost.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..errors import ParityError, UsageError
from ..estimate import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_SECONDS_PER_SEED,
    DEFAULT_SETUP_SECONDS,
    LayoutComparison,
    LayoutEstimate,
    compare_layouts,
    format_duration,
)
from ..github.env import append_github_file, read_github_context
from ..matrix import Cell, ResolvedRound, resolve_round
from ..stats import describe_detectability
from ..traces import plural
from . import (
    ID_CHARACTERS,
    SEED_CHARACTERS,
    add_matrix_option,
    check_round_characters,
    parse_probe_list,
    parse_seed_list,
    refuse_unsafe,
)

# GitHub refuses a matrix that expands to more jobs than this.
MATRIX_JOB_LIMIT = 256
# GitHub's limit on a job's outputs ("1 MB"); read as decimal megabytes to stay on the safe side.
JOB_OUTPUTS_LIMIT_BYTES = 1_000_000
# At plan time the baseline's pass rate is unknown; 1.0 leaves a drop room to reach every seed,
# so the sentence states what the seed count alone allows (the collector restates it measured).
PLANNING_BASELINE_RATE = 1.0


@dataclass(frozen=True)
class Plan:
    """A validated round and the cells that run it."""

    round: ResolvedRound
    cells: list[Cell]
    probes: list[str]
    seeds: list[int]
    # The baseline joined a probe filter that left it out: without it nothing can be compared.
    added_baseline: bool
    # Calibration seeds that joined a seed filter that left them out: without them the round
    # has no noise floor, and every trainer is judged bit for bit.
    added_seeds: list[int]
    # Whether the request named probes / seeds; unfiltered, collect judges the whole round.
    probes_filtered: bool
    seeds_filtered: bool

    @property
    def seed_runs(self) -> int:
        return sum(len(cell.seeds) for cell in self.cells)


def resolve_plan(
    round_id: str, probes_text: str, seeds_text: str, matrix_dir: Path | None = None
) -> Plan:
    """Validate the request completely (characters first, then against the round) and return
    the cells; raises :class:`ParityError` (exit 2) for anything that cannot run."""
    check_round_characters(round_id)
    probe_filter = parse_probe_list(probes_text)
    seed_filter = parse_seed_list(seeds_text)
    round_ = resolve_round(round_id, matrix_dir)
    baseline = round_.baseline.id
    added_baseline = bool(probe_filter) and baseline not in probe_filter
    if added_baseline:
        probe_filter = [*probe_filter, baseline]
    added_seeds = missing_calibration_seeds(round_, seed_filter)
    cells = round_.cells(probe_filter, [*seed_filter, *added_seeds])
    if len(cells) > MATRIX_JOB_LIMIT:
        raise UsageError(
            f"round {round_.id!r} needs {len(cells)} jobs; a GitHub matrix runs at most "
            f"{MATRIX_JOB_LIMIT}: raise seeds_per_cell in the round file, or narrow --probes "
            "or --seeds"
        )
    probes = list(dict.fromkeys(cell.probe_id for cell in cells))
    seeds = sorted({seed for cell in cells for seed in cell.seeds}, key=round_.seeds.index)
    return Plan(
        round_,
        cells,
        probes,
        seeds,
        added_baseline=added_baseline,
        added_seeds=added_seeds,
        probes_filtered=bool(probe_filter),
        seeds_filtered=bool(seed_filter),
    )


def missing_calibration_seeds(round_: ResolvedRound, seed_filter: list[int]) -> list[int]:
    """The seeds the baseline measures the noise floor on that ``seed_filter`` leaves out (none
    when the round sets an explicit tolerance, or when there is no filter)."""
    if not seed_filter:
        return []
    calibration = round_.calibration_seeds(round_.baseline.id)
    return [seed for seed in calibration if seed not in seed_filter]


# --- what the workflow reads ------------------------------------------------------------------


def matrix_entries(plan: Plan) -> list[dict[str, str]]:
    entries = [
        {
            "cell": cell.name,
            "probe": cell.probe_id,
            "seeds": ",".join(str(seed) for seed in cell.seeds),
            "pins": plan.round.round.pins,
        }
        for cell in plan.cells
    ]
    # Every value reaches a runner's shell (through env:); the matrix loader validated them, and
    # a second look here keeps a future loader change from quietly opening that door.
    for entry in entries:
        for key, value in entry.items():
            allowed = SEED_CHARACTERS if key == "seeds" else ID_CHARACTERS
            refuse_unsafe(f"matrix {key}", value, allowed, f"a {key} value")
    return entries


def github_outputs(plan: Plan) -> dict[str, str]:
    """The job outputs, one line each: compact JSON never contains a newline."""
    matrix = json.dumps({"include": matrix_entries(plan)}, separators=(",", ":"))
    outputs = {"matrix": matrix, "round_id": plan.round.id, **selection_outputs(plan)}
    size = len(format_outputs(outputs).encode())
    if size > JOB_OUTPUTS_LIMIT_BYTES:
        raise UsageError(
            f"the plan's job outputs take {size:,} bytes; GitHub allows {JOB_OUTPUTS_LIMIT_BYTES:,}"
        )
    return outputs


def selection_outputs(plan: Plan) -> dict[str, str]:
    """What collect is to judge (``collect --probes --seeds``): the probes and seeds scheduled,
    each empty when the request did not filter it, which means the whole round."""
    probes = ",".join(plan.probes) if plan.probes_filtered else ""
    seeds = ",".join(map(str, plan.seeds)) if plan.seeds_filtered else ""
    return {"probes": probes, "seeds": seeds}


def format_outputs(outputs: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in outputs.items())


# --- what people read -------------------------------------------------------------------------


def summary_markdown(
    plan: Plan, comparison: LayoutComparison, seconds_per_seed: float, setup_seconds: float
) -> str:
    round_ = plan.round.round
    lines = [
        f"## mlx-parity plan: round `{round_.id}`",
        "",
        # A table-free paragraph still breaks on a blank line; the hypothesis is one statement.
        f"**Hypothesis:** {' '.join(round_.hypothesis.split())}",
        "",
        f"Baseline `{round_.baseline}`, pinned dependency set `{round_.pins}`.",
    ]
    if plan.added_baseline:
        lines += [
            "",
            f"The probe filter left out the baseline `{round_.baseline}`; it was added, since "
            "every probe is compared against it.",
        ]
    if plan.added_seeds:
        added = plural(len(plan.added_seeds), "seed") + " " + ", ".join(map(str, plan.added_seeds))
        lines += [
            "",
            f"The seed filter left out {added}; added for every probe, since the noise floor is "
            "measured on them.",
        ]
    lines += ["", "| cell | probe | seeds |", "| --- | --- | --- |"]
    lines += [
        f"| `{cell.name}` | `{cell.probe_id}` | {', '.join(map(str, cell.seeds))} |"
        for cell in plan.cells
    ]
    lines += [
        "",
        f"**{len(plan.cells)} cells**, {len(plan.probes)} probes × {len(plan.seeds)} seeds = "
        f"**{plan.seed_runs} seed runs** in total.",
        "",
        "### Estimated macOS runner time",
        "",
        f"| layout | jobs | billed minutes | wall clock at max-parallel "
        f"{comparison.per_cell.max_parallel} |",
        "| --- | ---: | ---: | ---: |",
        _layout_row(comparison.per_cell, " (this plan)"),
        _layout_row(comparison.per_seed),
        "",
        _savings_sentence(comparison),
        "",
        f"Assumed: {format_duration(seconds_per_seed)} per seed and "
        f"{format_duration(setup_seconds)} of setup per job (runner start, checkout, Python, "
        "uv install of the pinned set, cache restore, model load, upload); GitHub bills each "
        "job rounded up to a whole minute; queue time not included. Override with "
        "`--seconds-per-seed` and `--setup-seconds`.",
        "",
        "### What these seeds can tell apart",
        "",
        f"Pass rates: {describe_detectability(len(plan.seeds), PLANNING_BASELINE_RATE)}. "
        "Per-step loss traces are compared seed by seed whatever the count.",
        "",
    ]
    return "\n".join(lines)


def _layout_row(estimate: LayoutEstimate, note: str = "") -> str:
    over = (
        f" (over GitHub's {MATRIX_JOB_LIMIT}-job limit)" if estimate.jobs > MATRIX_JOB_LIMIT else ""
    )
    return (
        f"| {estimate.layout}{note} | {estimate.jobs}{over} | {estimate.billed_minutes} | "
        f"{format_duration(estimate.wall_clock_seconds)} |"
    )


def _savings_sentence(comparison: LayoutComparison) -> str:
    per_cell, per_seed = comparison.per_cell, comparison.per_seed
    if comparison.minutes_saved <= 0:
        return "Both layouts bill the same here: every cell runs a single seed."
    share = comparison.minutes_saved / per_seed.billed_minutes
    return (
        f"One job per cell saves {comparison.minutes_saved} macOS minutes "
        f"({share:.0%}) and finishes in {format_duration(per_cell.wall_clock_seconds)} instead "
        f"of {format_duration(per_seed.wall_clock_seconds)}."
    )


def error_markdown(message: str) -> str:
    """The refusal for the job summary, fenced so no part of a hostile value renders."""
    longest_run = max((len(run) for run in re.findall(r"`+", message)), default=0)
    fence = "`" * max(3, longest_run + 1)
    return (
        "## mlx-parity plan: refused\n\n"
        "Nothing was scheduled; no macOS runner was started.\n\n"
        f"{fence}text\n{message}\n{fence}\n"
    )


# --- the command ------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round", required=True, dest="round_id", help="round ID")
    parser.add_argument(
        "--probes", default="", help="comma-separated probe IDs to run (empty: all of the round)"
    )
    parser.add_argument(
        "--seeds", default="", help="comma-separated seeds to run (empty: all of the round)"
    )
    add_matrix_option(parser)
    parser.add_argument(
        "--seconds-per-seed",
        type=float,
        default=DEFAULT_SECONDS_PER_SEED,
        help=f"estimated seconds per seed on the runner (default {DEFAULT_SECONDS_PER_SEED:g})",
    )
    parser.add_argument(
        "--setup-seconds",
        type=float,
        default=DEFAULT_SETUP_SECONDS,
        help=f"estimated setup seconds per job (default {DEFAULT_SETUP_SECONDS:g})",
    )
    parser.add_argument(
        "--max-parallel",
        type=int,
        default=DEFAULT_MAX_PARALLEL,
        # The workflow setting of the same name; 5 is the hosted macOS concurrency limit.
        help=f"concurrent macOS jobs for the wall-clock estimate (default {DEFAULT_MAX_PARALLEL})",
    )
    parser.set_defaults(handler=_run)
    _report_usage_errors_in_summary(parser)


def _report_usage_errors_in_summary(parser: argparse.ArgumentParser) -> None:
    """argparse refuses some values itself (``--round -h`` reads as an option and exits 2);
    those refusals reach the job summary too, like every other one."""
    refuse = parser.error

    def error(message: str) -> NoReturn:
        try:
            summary = read_github_context().step_summary
            append_github_file(summary, error_markdown(f"{parser.prog}: error: {message}"))
        except ParityError as exc:
            # This runs inside argument parsing, before the CLI's error handling: a context
            # that cannot be read (or a summary that cannot be written) is said, not raised.
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        refuse(message)

    # An instance attribute: argparse calls self.error, and only this parser should change.
    parser.error = error  # type: ignore[method-assign]


def _run(args: argparse.Namespace) -> int:
    context = read_github_context()
    try:
        _check_estimate_inputs(args)
        plan = resolve_plan(args.round_id, args.probes, args.seeds, args.matrix)
        outputs = github_outputs(plan)
    except ParityError as exc:
        append_github_file(context.step_summary, error_markdown(str(exc)))
        raise
    seeds_per_cell = [len(cell.seeds) for cell in plan.cells]
    comparison = compare_layouts(
        seeds_per_cell, args.seconds_per_seed, args.setup_seconds, args.max_parallel
    )
    summary = summary_markdown(plan, comparison, args.seconds_per_seed, args.setup_seconds)
    if context.output is not None:
        append_github_file(context.output, format_outputs(outputs))
    else:
        sys.stdout.write(format_outputs(outputs))
    append_github_file(context.step_summary, summary)
    sys.stdout.write(summary)
    return 0


def _check_estimate_inputs(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.seconds_per_seed) and args.seconds_per_seed > 0):
        raise UsageError(f"--seconds-per-seed must be a number > 0, got {args.seconds_per_seed}")
    if not (math.isfinite(args.setup_seconds) and args.setup_seconds >= 0):
        raise UsageError(f"--setup-seconds must be a number >= 0, got {args.setup_seconds}")
    if args.max_parallel < 1:
        raise UsageError(f"--max-parallel must be >= 1, got {args.max_parallel}")
