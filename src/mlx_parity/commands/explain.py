"""``mlx-parity explain DIR``: which configuration of the core behaves like these seed results."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import artifact
from ..collect.gather import resolve_duplicates, written_report
from ..errors import ExitCode, UsageError
from ..github.runs import fetch_run_artifacts, parse_run_source
from ..names import SEED_ARTIFACT_PATTERN
from ..noise import CALIBRATION_SEEDS, noise_floor
from ..traces import Allowance
from . import check_tolerance, parse_seed_list

if TYPE_CHECKING:  # the search trains with MLX: imported only when it runs
    from ..diagnose.traces import TraceRunner
    from ..knobs import Knobs

# Across platforms (another BLAS, Metal vs CPU) the last bits differ; this is the default
# per-step tolerance then, and the report states it.
CROSS_PLATFORM_TOLERANCE = 1e-3
# Seeds matched when --seeds names none: enough to confirm a match beyond one seed's luck.
DEFAULT_SEEDS = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="directory of a candidate's seed results, or run:<ID> of a workflow run"
    )
    parser.add_argument("--probe", help="which probe's results (when source holds several)")
    parser.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds to match (default: the first 3 usable seeds)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help="per-step |Δloss| allowed, overriding the default: the noise floor measured here "
        "for results from this platform and device, "
        f"{CROSS_PLATFORM_TOLERANCE:g} for results from another (0: bit for bit)",
    )
    parser.add_argument("--quiet", action="store_true", help="no header or progress lines")
    parser.set_defaults(handler=_run)


def load_candidate(directory: Path, probe: str | None) -> list[artifact.SeedResult]:
    found: dict[Path, artifact.SeedResult] = {}
    for path in sorted(directory.rglob("*.json")):
        try:
            found[path] = artifact.load(path)
        except artifact.ArtifactError as exc:
            if not written_report(path.relative_to(directory).as_posix(), path):
                print(f"skipped {exc}", file=sys.stderr)
    probes = sorted({r.probe_id for r in found.values()})
    if not found:
        raise UsageError(f"{directory}: no seed results to explain")
    if probe is None and len(probes) > 1:
        raise UsageError(f"{directory} holds probes {', '.join(probes)}; choose one with --probe")
    chosen = probe or probes[0]
    by_seed: dict[int, list[tuple[str, artifact.SeedResult]]] = {}
    for path, result in found.items():
        if result.probe_id == chosen:
            by_seed.setdefault(result.seed, []).append((str(path), result))
    if not by_seed:
        raise UsageError(f"{directory}: no results of probe {chosen!r} (has {', '.join(probes)})")
    selected = []
    for seed, copies in sorted(by_seed.items()):
        # As collect decides: identical copies keep one, different ones keep neither (which
        # one to match would decide the answer).
        kept, problem = resolve_duplicates((chosen, seed), copies)
        if kept is None:
            print(f"skipped seed {seed}: {problem.detail} ({problem.subject})", file=sys.stderr)
        else:
            selected.append(kept[1])
    return selected


def recorded_here(results: list[artifact.SeedResult]) -> bool:
    """Whether every result was recorded on this platform, device and MLX version."""
    from ..environment import capture

    here = capture()
    mine = (here.platform, here.mlx, device_kind(here))
    return all(
        (r.environment.platform, r.environment.mlx, device_kind(r.environment)) == mine
        for r in results
    )


def device_kind(environment: artifact.Environment) -> str:
    """gpu or cpu: what a seed trained on (its self-check), or what MLX's default device was."""
    if environment.device_check is not None:
        return environment.device_check.trained_on
    return "gpu" if "gpu" in environment.device.lower() else "cpu"


def measured_allowance(runner: TraceRunner, base: Knobs, seeds: list[int]) -> Allowance:
    """The noise floor of ``base``, measured here as a round measures it (mlx_parity/noise.py):
    on the first ``CALIBRATION_SEEDS`` of ``seeds``. Each reference trace is the runner's
    (eager) run of ``base``, which the search then reuses."""
    from ..cell import measure_noise
    from ..steps import StepRecord

    eager = base.model_copy(update={"compile": False})
    samples, losses = {}, {}
    for seed in seeds[:CALIBRATION_SEEDS]:
        trace = [StepRecord(**row) for row in runner.trace(base, seed)]
        samples[seed] = measure_noise(runner.source, runner.fixture, eager, seed, trace)
        losses[seed] = [r.loss for r in trace]
    floor = noise_floor(samples, losses)
    assert floor is not None  # a sample with steps always makes a floor
    return Allowance.from_floor(floor)


def _run(args: argparse.Namespace) -> int:
    check_tolerance(args.tolerance)
    seeds = parse_seed_list(args.seeds)
    run_id = parse_run_source(args.source)
    with tempfile.TemporaryDirectory(prefix="mlx-parity-explain-") as tmp:
        if run_id is not None:
            directory = Path(tmp)
            fetch_run_artifacts(run_id, SEED_ARTIFACT_PATTERN, directory)
        else:
            directory = Path(args.source)
            if not directory.is_dir():
                raise UsageError(f"{args.source}: not a directory")
        results = load_candidate(directory, args.probe)
    return explain_results(results, args.tolerance, seeds, args.quiet)


def explain_results(
    results: list[artifact.SeedResult],
    tolerance: float | None,
    seeds: list[int] | None = None,
    quiet: bool = False,
) -> int:
    """Explain the seed results; ``seeds`` chooses which (default: the first 3 usable)."""
    from ..cell import ModelSource
    from ..diagnose.explain import context_from, explain, targets_from
    from ..diagnose.traces import TraceRunner

    chosen = results
    if seeds:
        missing = sorted(set(seeds) - {r.seed for r in results})
        if missing:
            have = ", ".join(str(r.seed) for r in sorted(results, key=lambda r: r.seed))
            raise UsageError(f"no seed result for seed(s) {missing} (have {have})")
        chosen = [r for r in results if r.seed in seeds]
    targets = targets_from(chosen, len(seeds) if seeds else DEFAULT_SEEDS)
    if not targets:
        raise UsageError(nothing_usable(chosen, results))
    # The seeds explained, and only they, say what the search starts from.
    results = [r for r in chosen if r.seed in targets]
    base, fixture = context_from(results)
    source = ModelSource(fixture.model_path())
    source.tokenizer()
    runner = TraceRunner(fixture, source)
    # The search runs base at the targets' length; the floor's reference run is that same run.
    base = base.model_copy(update={"steps": len(next(iter(targets.values())))})
    if tolerance is not None:
        allowance = Allowance.of(tolerance)
    elif recorded_here(results):
        allowance = measured_allowance(runner, base, list(targets))
    else:
        allowance = Allowance.of(CROSS_PLATFORM_TOLERANCE)
    probe = results[0].probe_id
    if not quiet:
        print(
            f"explaining {probe} ({results[0].trainer}) on fixture {fixture.name!r}, seeds "
            f"{', '.join(map(str, targets))}, compared {allowance.describe()} "
            f"(recorded on {results[0].environment.platform}, "
            f"here {sys.platform}-{platform.machine()})",
            file=sys.stderr,
        )

    def progress(text: str) -> None:
        if not quiet:
            print(f"  … {text}", file=sys.stderr)

    explanation = explain(runner, base, targets, allowance, progress)
    print(f"{probe}: {explanation.report()}")
    return ExitCode.OK if explanation.matched is not None else ExitCode.DIFFERENCE


def nothing_usable(chosen: list[artifact.SeedResult], every: list[artifact.SeedResult]) -> str:
    """Why none of the chosen seed results can be explained, and which others could be."""
    from ..diagnose.explain import seeds_text, unusable_reason

    why = "; ".join(f"seed {r.seed} {unusable_reason(r)}" for r in chosen)
    chosen_seeds = {r.seed for r in chosen}
    others = [r.seed for r in every if r.seed not in chosen_seeds and unusable_reason(r) is None]
    usable = f" (usable: {seeds_text(others)}; choose with --seeds)" if others else ""
    return f"no usable seed results: {why}{usable}"
