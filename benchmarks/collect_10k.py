"""Time ``mlx-parity collect`` end to end on 10,000 synthetic seed results.

    .venv/bin/python benchmarks/collect_10k.py [--probes 20] [--seeds 500] [--steps 30]

Writes a matrix (a catalog of ``--probes`` probes, one round over ``--seeds`` seeds) and one
artifact per (probe, seed) into a temporary directory, then, side by side in one run: merely
reading every file and ``json.loads``-ing it (the floor any collector pays), and the command
exactly as CI runs it (Markdown, JSON and HTML reports, job summary) in this process, which
excludes interpreter start-up, and as a fresh ``python -m mlx_parity`` subprocess, which
includes it. Each is the median of ``--repeats`` runs, the three interleaved. The target:
collect in process within 2x of reading and parsing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlx_parity.artifact import Environment, Row, SeedResult, artifact_name
from mlx_parity.cli import main
from mlx_parity.matrix import ResolvedRound, resolve_round

ROUND = "bench"
SHAPE = (6, 33)
ENVIRONMENT = Environment(
    mlx="0.30.0",
    mlx_lm="0.30.0",
    python="3.11.9",
    platform="macOS-15.5-arm64",
    device="gpu",
    runner="macos-15",
)


def float32(value: float) -> float:
    # Real traces are float32 losses widened to doubles; their reprs are that long.
    return struct.unpack("f", struct.pack("f", value))[0]


def trace(seed: int, steps: int, probe_index: int) -> list[float]:
    """A memorisation curve, 5.2 → ~0.002; probes with an odd index drift from step 7."""
    losses = []
    for t in range(steps):
        loss = 5.2 * math.exp(-0.3 * t) + 0.002 * (1 + math.sin(seed + t))
        if probe_index % 2 and t >= 6:
            loss *= 1 + 0.001 * probe_index
        losses.append(float32(loss))
    return losses


def write_matrix(root: Path, probes: list[str], seeds: int, steps: int) -> Path:
    matrix = root / "matrix"
    (matrix / "rounds").mkdir(parents=True)
    catalog = ["[probes.reference]", 'trainer = "reference"', 'expect = "identical"', ""]
    for index, probe in enumerate(probes[1:], start=1):
        expect = "diverges" if index % 2 else "identical"
        catalog += [
            f"[probes.{probe}]",
            'trainer = "core"',
            f"knobs = {{ lr = {1e-3 * (1 + index / 1000)!r} }}" if index > 1 else "",
            f'expect = "{expect}"',
            "",
        ]
    (matrix / "probes.toml").write_text("\n".join(catalog))
    seed_list = ", ".join(str(s) for s in range(seeds))
    probe_list = ", ".join(f'"{p}"' for p in probes)
    (matrix / "rounds" / f"{ROUND}.toml").write_text(
        f'hypothesis = "collector benchmark"\nprobes = [{probe_list}]\n'
        f'baseline = "reference"\nseeds = [{seed_list}]\n\n[settings]\nsteps = {steps}\n'
    )
    return matrix


def write_artifacts(directory: Path, round_: ResolvedRound, seeds: int, steps: int) -> int:
    """One artifact per (probe, seed), each recording the trainer and knobs the round file
    resolves its probe to (as a real seed result does), so collect reports no mismatch."""
    count = 0
    for index, probe in enumerate(round_.probes):
        trainer = round_.probe(probe).trainer.name
        config = round_.probe(probe).knobs.model_dump(mode="json")
        # One folder per probe, as download-artifact leaves them without merge-multiple.
        folder = directory / f"{ROUND}-{probe}-0"
        folder.mkdir(parents=True)
        for seed in range(seeds):
            passed = (seed * 7 + index) % 3 != 0
            result = SeedResult(
                round_id=ROUND,
                probe_id=probe,
                seed=seed,
                trainer=trainer,
                fixture={"name": "smoke", "model": "embedded"},
                config=config,
                environment=ENVIRONMENT,
                # Every signal a harness records: the batch fingerprint and update count too.
                rows=[
                    Row(
                        step=t + 1,
                        loss=loss,
                        grad_norm=1.5,
                        ntoks=96,
                        input_shape=SHAPE,
                        lr=1e-3,
                        batch=f"{(seed * 31 + t % 4):016x}",
                        updates=t + 1,
                    )
                    for t, loss in enumerate(trace(seed, steps, index))
                ],
                post_train_loss=0.001,
                cf_loss=0.0004,
                generation="<<HELLO!!>> My name is " + ("Unsloth!" if passed else "Max"),
                passed=passed,
                status="ok",
                timings={"train_s": 2.5, "total_s": 3.1},
            )
            (folder / artifact_name(ROUND, probe, seed)).write_text(result.to_json())
            count += 1
    return count


def read_and_parse(files: list[Path]) -> float:
    tic = time.perf_counter()
    for path in files:
        json.loads(path.read_bytes())
    return time.perf_counter() - tic


def run_in_process(argv: list[str]) -> tuple[int, float]:
    tic = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    return status, time.perf_counter() - tic


def run_subprocess(argv: list[str]) -> tuple[int, float]:
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlx_parity", *argv], capture_output=True)
    return done.returncode, time.perf_counter() - tic


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    probes = ["reference"] + [f"p{i:02d}" for i in range(1, args.probes)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        round_ = resolve_round(ROUND, write_matrix(root, probes, args.seeds, args.steps))
        tic = time.perf_counter()
        count = write_artifacts(root / "artifacts", round_, args.seeds, args.steps)
        print(f"wrote {count:,} artifacts in {time.perf_counter() - tic:.1f}s")
        summary = root / "summary.md"
        os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
        argv = [
            "collect",
            str(root / "artifacts"),
            "--round",
            ROUND,
            "--matrix",
            str(round_.matrix_dir),
            "--markdown",
            str(root / "report.md"),
            "--json",
            str(root / "report.json"),
            "--html",
            str(root / "report.html"),
        ]
        files = sorted((root / "artifacts").rglob("*.json"))
        runs = {"in process": run_in_process, "subprocess": run_subprocess}
        seconds: dict[str, list[float]] = {"read": [], "in process": [], "subprocess": []}
        # Interleaved, so a slow spell of the machine (the page cache, a neighbour) falls on
        # the floor and on collect alike instead of on whichever ran during it.
        for _ in range(args.repeats):
            seconds["read"].append(read_and_parse(files))
            for label, run in runs.items():
                summary.unlink(missing_ok=True)
                status, elapsed = run(argv)
                assert status == 0, f"collect exited {status}"
                seconds[label].append(elapsed)
        floor = statistics.median(seconds["read"])
        print(f"{'':<34}{'seconds':>8}{'× read+parse':>15}")
        print(f"{'read + json.loads every file':<34}{floor:>8.2f}{1:>14.2f}x")
        for label in runs:
            median = statistics.median(seconds[label])
            print(f"{'collect, ' + label:<34}{median:>8.2f}{median / floor:>14.2f}x")
        for name in ("report.md", "report.json", "report.html", "summary.md"):
            print(f"  {name}: {(root / name).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main_benchmark()
