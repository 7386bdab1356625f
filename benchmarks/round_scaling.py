"""Wall time of a round with N workers over 1 worker, and the share of round time that is not
training (process start, imports, model loads, evaluation, collection).

    .venv/bin/python benchmarks/round_scaling.py [--round demo] [--workers 2]

Both runs start from empty output directories in the same session; the MLX compile cache is
warmed by a first small round so neither run pays the cold g++ compile.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlx_parity import artifact


def timed_round(round_id: str, workers: int, out: Path) -> float:
    tic = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlx_parity", "run", "--round", round_id, "--quiet",
         "--workers", str(workers), "--out", str(out)],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - tic


# Seconds spent training: each seed's trainer, and on the baseline's first seeds the
# noise floor's equivalent variants (training runs too, just not the probe's own).
TRAINING_TIMINGS = ("train_s", "noise_s")


def training_seconds(out: Path) -> float:
    return sum(
        artifact.load(p).timings.get(name, 0.0)
        for p in out.glob("*__seed*.json")
        for name in TRAINING_TIMINGS
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timed_round("smoke", 1, Path(tmp) / "warm")
        one = timed_round(args.round, 1, Path(tmp) / "one")
        many = timed_round(args.round, args.workers, Path(tmp) / "many")
        train_one = training_seconds(Path(tmp) / "one")
        train_many = training_seconds(Path(tmp) / "many")
    share_one = 1 - train_one / one
    share_many = 1 - train_many / (many * args.workers)
    print(f"{'measure':<44}{'value':>10}")
    print(f"{'round ' + args.round + ', 1 worker (wall)':<44}{one:>9.1f}s")
    print(f"{f'round {args.round}, {args.workers} workers (wall)':<44}{many:>9.1f}s")
    print(f"{'speed-up':<44}{one / many:>9.2f}x")
    print(f"{'not training, 1 worker':<44}{share_one:>9.1%}   (target < 10%)")
    print(f"{f'not training, {args.workers} workers (of worker-time)':<44}{share_many:>9.1%}")


if __name__ == "__main__":
    main()
