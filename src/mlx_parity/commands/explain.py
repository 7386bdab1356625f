"""``mlx-parity explain DIR``: which configuration of the core behaves like these seed results."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

from .. import artifact
from ..errors import UsageError
from ..github.runs import fetch_run_artifacts, parse_run_source

# Across platforms (another BLAS, Metal vs CPU) the last bits differ; this is the default
# per-step tolerance then, and the report states it.
CROSS_PLATFORM_TOLERANCE = 1e-3


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "explain", help="name the core configuration a candidate trainer behaves like"
    )
    parser.add_argument(
        "source", help="directory of a candidate's seed results, or run:<ID> of a workflow run"
    )
    parser.add_argument("--probe", help="which probe's results (when DIR holds several)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds to match (default 3)")
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
    if not 1 <= args.seeds <= 15:
        raise UsageError("--seeds must be between 1 and 15")
    run_id = parse_run_source(args.source)
    with tempfile.TemporaryDirectory(prefix="mlx-parity-explain-") as tmp:
        if run_id is not None:
            directory = Path(tmp)
            fetch_run_artifacts(run_id, "seed-results-*", directory)
        else:
            directory = Path(args.source)
            if not directory.is_dir():
                raise UsageError(f"{args.source}: not a directory")
        results = load_candidate(directory, args.probe)
    return explain_results(results, args.tolerance, args.seeds, args.quiet)


def explain_results(
    results: list[artifact.SeedResult], tolerance: float | None, max_seeds: int, quiet: bool
) -> int:
    from ..cell import ModelLoadError, ModelSource
    from ..diagnose.explain import context_from, explain, targets_from
    from ..diagnose.traces import TraceRunner

    base, fixture = context_from(results)
    targets = targets_from(results, max_seeds)
    if not targets:
        raise UsageError("no usable seed results (every one errored or has no steps)")
    if tolerance is None:
        tolerance = default_tolerance(results)
    try:
        source = ModelSource(fixture.model_path())
        source.tokenizer()
    except ModelLoadError as exc:
        raise UsageError(str(exc)) from None
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
    return 0 if explanation.matched is not None else 1
