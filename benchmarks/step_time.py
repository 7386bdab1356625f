"""Core step time over the reference trainer's, measured side by side on the embedded model,
and the time to build and load the fixture.

    .venv/bin/python benchmarks/step_time.py [--steps 40] [--repeats 3]

Both trainers run the same seeds in alternation (reference, core, reference, core, …) so drift
in machine load hits both; the first steps of each run (compile warm-up) are excluded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mlx_parity.cell import ModelSource, prepare_model
from mlx_parity.embedded_model import FixtureRecipe, ensure_fixture
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs
from mlx_parity.trainers import lookup

WARMUP_STEPS = 3


def step_times(source: ModelSource, trainer: str, knobs: Knobs, seed: int) -> list[float]:
    train = lookup(trainer).load()
    model = prepare_model(source, knobs.dtype)
    stamps = [time.perf_counter()]
    train(
        model,
        source.tokenizer(),
        SMOKE.texts(),
        knobs,
        seed,
        lambda r: stamps.append(time.perf_counter()),
    )
    deltas = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return deltas[WARMUP_STEPS:]


def fixture_build_and_load() -> tuple[float, float]:
    import os

    from mlx_lm import load

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLX_PARITY_CACHE"] = tmp
        tic = time.perf_counter()
        path = ensure_fixture(FixtureRecipe())
        built = time.perf_counter() - tic
        tic = time.perf_counter()
        load(str(Path(path)))
        loaded = time.perf_counter() - tic
        del os.environ["MLX_PARITY_CACHE"]
    return built, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    built, loaded = fixture_build_and_load()
    source = ModelSource(SMOKE.model_path())
    knobs = Knobs(steps=args.steps)
    times: dict[str, list[float]] = {"reference": [], "core": []}
    for repeat in range(args.repeats):
        for trainer in ("reference", "core"):
            times[trainer] += step_times(source, trainer, knobs, seed=repeat + 1)

    ref = statistics.median(times["reference"])
    core = statistics.median(times["core"])
    print(f"{'measure':<34}{'value':>12}")
    print(f"{'fixture build (cold cache)':<34}{built:>11.2f}s")
    print(f"{'fixture load (mlx_lm.load)':<34}{loaded:>11.2f}s")
    print(f"{'reference step (median)':<34}{ref * 1e3:>10.1f}ms")
    print(f"{'core step (median)':<34}{core * 1e3:>10.1f}ms")
    print(f"{'core / reference':<34}{core / ref:>11.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
