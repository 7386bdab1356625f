"""``mlx-parity plan``: turn a round (and optional probe/seed filters) into the probe matrix.

This is the first job of the workflow, on an ubuntu runner: everything it reads may come from a
dispatch form, so it is validated here, before a single macOS minute is spent. A refusal exits 2
with one line on stderr and, inside Actions, the same message in the job summary. Accepted input
becomes three job outputs (``matrix``, ``round_id``, ``cells``) and a Markdown plan summary with
the estimated runner cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from ..artifact import PROBE_ID_PATTERN
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
from ..github import GitHubContext
from ..matrix import Cell, Round, load_catalog, load_round
from ..stats import describe_detectability

# GitHub refuses a matrix that expands to more jobs than this.
MATRIX_JOB_LIMIT = 256
# GitHub's limit on a job's outputs ("1 MB"); read as decimal megabytes to stay on the safe side.
JOB_OUTPUTS_LIMIT_BYTES = 1_000_000
# At plan time the baseline's pass rate is unknown; 1.0 leaves a drop room to reach every seed,
# so the sentence states what the seed count alone allows (the collector restates it measured).
PLANNING_BASELINE_RATE = 1.0

# Allow-lists, checked character by character before anything is looked up, so a hostile value
# (quotes, `$(`, backticks, newlines, spaces, slashes) is named in the refusal and never reaches a
# path, a job output or a log line where a runner could read it as a workflow command.
_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_SEED_CHARACTERS = frozenset("0123456789")
_SEED_PATTERN = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Plan:
    """A validated round and the cells that run it."""

    round: Round
    cells: list[Cell]
    probes: list[str]
    seeds: list[int]
    # The baseline joined a probe filter that left it out: without it nothing can be compared.
    added_baseline: bool

    @property
    def seed_runs(self) -> int:
        return sum(len(cell.seeds) for cell in self.cells)


# --- validation -------------------------------------------------------------------------------


def refuse_unsafe(flag: str, value: str, allowed: frozenset[str], what: str) -> None:
    """Refuse ``value`` when it holds any character outside ``allowed``, naming each one."""
    bad = sorted({char for char in value if char not in allowed and char != ","})
    if bad:
        listed = " ".join(repr(char) for char in bad)
        raise UsageError(f"{flag} {value!r} contains characters {what} never has: {listed}")


def check_round_characters(round_id: str) -> None:
    if "," in round_id:
        raise UsageError(f"--round {round_id!r}: name one round, not a list")
    refuse_unsafe("--round", round_id, _ID_CHARACTERS, "a round ID")


def split_list(flag: str, text: str) -> list[str]:
    """``a,b`` → ``["a", "b"]``; an empty text is "no filter"; empty items and repeats refused."""
    if text == "":
        return []
    items = text.split(",")
    if any(item == "" for item in items):
        raise UsageError(f"{flag} {text!r} has an empty item; write items as a,b,c")
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise UsageError(f"{flag} {text!r} repeats {', '.join(map(repr, repeated))}")
    return items


def parse_probe_filter(text: str) -> list[str]:
    refuse_unsafe("--probes", text, _ID_CHARACTERS, "a probe list")
    probes = split_list("--probes", text)
    for probe_id in probes:
        if not re.fullmatch(PROBE_ID_PATTERN, probe_id):
            raise UsageError(
                f"--probes: {probe_id!r} is not a probe ID (1-64 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit)"
            )
    return probes


def parse_seed_filter(text: str) -> list[int]:
    refuse_unsafe("--seeds", text, _SEED_CHARACTERS, "a seed list")
    items = split_list("--seeds", text)
    for item in items:
        if not _SEED_PATTERN.fullmatch(item):
            raise UsageError(f"--seeds: {item!r} is too long to be a seed")
    seeds = [int(item) for item in items]
    # "7" and "07" are the same seed.
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r} repeats a seed")
    return seeds


def resolve_plan(
    round_id: str, probes_text: str, seeds_text: str, matrix_dir: Path | None = None
) -> Plan:
    """Validate the request completely (characters first, then against the round) and return
    the cells; raises :class:`ParityError` (exit 2) for anything that cannot run."""
    check_round_characters(round_id)
    probe_filter = parse_probe_filter(probes_text)
    seed_filter = parse_seed_filter(seeds_text)
    round_ = load_round(round_id, matrix_dir)
    catalog = load_catalog(matrix_dir)
    added_baseline = bool(probe_filter) and round_.baseline not in probe_filter
    if added_baseline:
        probe_filter = [*probe_filter, round_.baseline]
    cells = round_.cells(catalog, probe_filter=probe_filter, seed_filter=seed_filter)
    if len(cells) > MATRIX_JOB_LIMIT:
        raise UsageError(
            f"round {round_.id!r} needs {len(cells)} jobs; a GitHub matrix runs at most "
            f"{MATRIX_JOB_LIMIT}: raise seeds_per_cell in the round file, or narrow --probes "
            "or --seeds"
        )
    probes = list(dict.fromkeys(cell.probe_id for cell in cells))
    seeds = sorted({seed for cell in cells for seed in cell.seeds}, key=round_.seeds.index)
    return Plan(round_, cells, probes, seeds, added_baseline)


# --- what the workflow reads ------------------------------------------------------------------


def matrix_entries(plan: Plan) -> list[dict[str, str]]:
    entries = [
        {
            "cell": cell.name,
            "probe": cell.probe_id,
            "seeds": ",".join(str(seed) for seed in cell.seeds),
            "pins": plan.round.pins,
        }
        for cell in plan.cells
    ]
    # Every value reaches a runner's shell (through env:); the matrix loader validated them, and
    # a second look here keeps a future loader change from quietly opening that door.
    for entry in entries:
        for key, value in entry.items():
            allowed = _SEED_CHARACTERS if key == "seeds" else _ID_CHARACTERS
            refuse_unsafe(f"matrix {key}", value, allowed, f"a {key} value")
    return entries


def github_outputs(plan: Plan) -> dict[str, str]:
    """The job outputs, one line each: compact JSON never contains a newline."""
    matrix = json.dumps({"include": matrix_entries(plan)}, separators=(",", ":"))
    outputs = {"matrix": matrix, "round_id": plan.round.id, "cells": str(len(plan.cells))}
    size = sum(len(f"{key}={value}\n".encode()) for key, value in outputs.items())
    if size > JOB_OUTPUTS_LIMIT_BYTES:
        raise UsageError(
            f"the plan's job outputs take {size:,} bytes; GitHub allows {JOB_OUTPUTS_LIMIT_BYTES:,}"
        )
    return outputs


def format_outputs(outputs: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in outputs.items())


# --- what people read -------------------------------------------------------------------------


def summary_markdown(
    plan: Plan, comparison: LayoutComparison, seconds_per_seed: float, setup_seconds: float
) -> str:
    round_ = plan.round
    lines = [
        f"## mlx-parity plan: round `{round_.id}`",
        "",
        f"**Hypothesis:** {_one_line(round_.hypothesis)}",
        "",
        f"Baseline `{round_.baseline}`, pinned dependency set `{round_.pins}`.",
    ]
    if plan.added_baseline:
        lines += [
            "",
            f"The probe filter left out the baseline `{round_.baseline}`; it was added, since "
            "every probe is compared against it.",
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
        "pip install of the pinned set, cache restore, model load, upload); GitHub bills each "
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


def _one_line(text: str) -> str:
    # A table-free paragraph still breaks on a blank line; the hypothesis is one statement.
    return " ".join(text.split())


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


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plan", help="validate a round and write the probe matrix for GitHub Actions"
    )
    parser.add_argument("--round", required=True, dest="round_id", help="round ID")
    parser.add_argument(
        "--probes", default="", help="comma-separated probe IDs to run (empty: all of the round)"
    )
    parser.add_argument(
        "--seeds", default="", help="comma-separated seeds to run (empty: all of the round)"
    )
    parser.add_argument(
        "--matrix", type=Path, help="matrix directory (default: the nearest matrix/)"
    )
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
        if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
            _append(Path(summary), error_markdown(f"{parser.prog}: error: {message}"))
        refuse(message)

    # An instance attribute: argparse calls self.error, and only this parser should change.
    parser.error = error  # type: ignore[method-assign]


def read_context() -> GitHubContext:
    try:
        return GitHubContext.from_env()
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]) for error in exc.errors(include_input=False))
        raise UsageError(f"unusable GitHub Actions variables: {problems}") from None


def _run(args: argparse.Namespace) -> int:
    context = read_context()
    try:
        _check_estimate_inputs(args)
        plan = resolve_plan(args.round_id, args.probes, args.seeds, args.matrix)
        outputs = github_outputs(plan)
    except ParityError as exc:
        if context.step_summary is not None:
            _append(context.step_summary, error_markdown(str(exc)))
        raise
    comparison = compare_layouts(
        [len(cell.seeds) for cell in plan.cells],
        args.seconds_per_seed,
        args.setup_seconds,
        args.max_parallel,
    )
    summary = summary_markdown(plan, comparison, args.seconds_per_seed, args.setup_seconds)
    if context.output is not None:
        _append(context.output, format_outputs(outputs))
    else:
        sys.stdout.write(format_outputs(outputs))
    if context.step_summary is not None:
        _append(context.step_summary, summary)
    sys.stdout.write(summary)
    return 0


def _check_estimate_inputs(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.seconds_per_seed) and args.seconds_per_seed > 0):
        raise UsageError(f"--seconds-per-seed must be a number > 0, got {args.seconds_per_seed}")
    if not (math.isfinite(args.setup_seconds) and args.setup_seconds >= 0):
        raise UsageError(f"--setup-seconds must be a number >= 0, got {args.setup_seconds}")
    if args.max_parallel < 1:
        raise UsageError(f"--max-parallel must be >= 1, got {args.max_parallel}")


def _append(path: Path, text: str) -> None:
    # Append: GitHub hands every step one file, and other commands of the step may write too.
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
