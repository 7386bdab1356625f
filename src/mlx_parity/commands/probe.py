"""``mlx-parity probe``: run one probe cell (one probe, several seeds, one process)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cell import CellProgress, ModelLoadError, run_cell
from ..errors import UsageError
from ..fixture import SMOKE
from ..knobs import KnobError, Knobs, parse_assignment
from ..probes import BUILTIN_PROBES, Probe
from ..trainers import TrainerError


def parse_seeds(text: str) -> list[int]:
    """``1,7,42`` → [1, 7, 42]; duplicates and non-integers are refused."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds:
        raise UsageError("--seeds names no seed")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds repeats a seed: {text!r}")
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


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("probe", help="run one probe over a list of seeds")
    parser.add_argument("--probe", required=True, help="probe ID (e.g. reference, core)")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,7,42")
    parser.add_argument("--out", required=True, type=Path, help="directory for seed results")
    parser.add_argument("--round", default="local", dest="round_id", help="round ID to record")
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
    seeds = parse_seeds(args.seeds)
    probe = lookup_probe(args.probe)
    try:
        knobs = probe.resolved(Knobs(), parse_overrides(args.overrides))
    except KnobError as exc:
        raise UsageError(str(exc)) from None
    fixture = SMOKE.model_copy(update={"model": args.model}) if args.model else SMOKE
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
