"""``mlx-parity explain DIR``: which configuration of the core behaves like these seed results."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

from .. import artifact
from ..errors import ExitCode, UsageError
from ..github.runs import fetch_run_artifacts, parse_run_source
from ..names import SEED_ARTIFACT_PATTERN
from . import parse_seed_list

# Across platforms (another BLAS, Metal vs CPU) the last bits differ; this is the default
# per-step tolerance then, and the report states it.
CROSS_PLATFORM_TOLERANCE = 1e-3
# Seeds matched when --seeds names none: enough to confirm a match beyond one seed's luck.
DEFAULT_SEEDS = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="directory of a candidate's seed results, or run:<ID> of a workflow run"
    )
    parser.add_argument("--probe", help="which probe's results (when DIR holds several)")
    parser.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds to match (default: the first 3 usable seeds)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help="per-step |Δloss| allowed (default: 0 on this platform, "
        f"{CROSS_PLATFORM_TOLERANCE:g} for results from another platform)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_run)


def load_candidate(directory: Path, probe: str | None) -> list[artifact.SeedResult]:
    results, broken = [], []
    for path in sorted(directory.rglob("*.json")):
        try:
            results.append(artifact.load(path))
        except artifact.ArtifactError as exc:
            broken.append(str(exc))
    for line in broken:
        print(f"skipped {line}", file=sys.stderr)
    probes = sorted({r.probe_id for r in results})
    if not results:
        raise UsageError(f"{directory}: no seed results to explain")
    if probe is None and len(probes) > 1:
        raise UsageError(f"{directory} holds probes {', '.join(probes)}; choose one with --probe")
    chosen = probe or probes[0]
    selected = [r for r in results if r.probe_id == chosen]
    if not selected:
        raise UsageError(f"{directory}: no results of probe {chosen!r} (has {', '.join(probes)})")
    return selected


def default_tolerance(results: list[artifact.SeedResult]) -> float:
    from ..environment import capture

    here = capture()
    same = all(
        (r.environment.platform, r.environment.device, r.environment.mlx)
        == (here.platform, here.device, here.mlx)
        for r in results
    )
    return 0.0 if same else CROSS_PLATFORM_TOLERANCE


def _run(args: argparse.Namespace) -> int:
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

    base, fixture = context_from(results)
    if seeds:
        missing = sorted(set(seeds) - {r.seed for r in results})
        if missing:
            have = ", ".join(str(r.seed) for r in sorted(results, key=lambda r: r.seed))
            raise UsageError(f"no seed result for seed(s) {missing} (have {have})")
        results = [r for r in results if r.seed in seeds]
    targets = targets_from(results, len(seeds) if seeds else DEFAULT_SEEDS)
    if not targets:
        raise UsageError("no usable seed results (every one errored or has no steps)")
    if tolerance is None:
        tolerance = default_tolerance(results)
    source = ModelSource(fixture.model_path())
    source.tokenizer()
    probe = results[0].probe_id
    print(
        f"explaining {probe} ({results[0].trainer}) on fixture {fixture.name!r}, seeds "
        f"{', '.join(map(str, targets))}, tolerance {tolerance:g} "
        f"(recorded on {results[0].environment.platform}, "
        f"here {sys.platform}-{platform.machine()})",
        file=sys.stderr,
    )

    def progress(text: str) -> None:
        if not quiet:
            print(f"  … {text}", file=sys.stderr)

    explanation = explain(TraceRunner(fixture, source), base, targets, tolerance, progress)
    print(f"{probe}: {explanation.report()}")
    return ExitCode.OK if explanation.matched is not None else ExitCode.DIFFERENCE
