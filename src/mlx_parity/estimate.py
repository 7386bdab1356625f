"""What a round costs on hosted macOS runners, in billed minutes and wall-clock time.

Two layouts of the same seeds are compared: **one job per probe cell** (what ``plan`` emits),
each paying the setup once and running its seeds in one process, and **one job per (probe,
seed)** (the motivating hand-written workflow), where every seed pays it. All assumptions are
inputs: ``setup_seconds`` is all a job spends around its seeds (runner start, checkout,
setup-python, the uv install, cache restore and save, model load, artifact upload; 150 s is a
typical hosted-macOS figure); ``seconds_per_seed`` is one seed's training and evaluation on the
runner (``benchmarks/runner_minutes.py`` measures it locally and scales it). GitHub bills every
job separately, rounded **up** to a whole minute; jobs start in matrix order as one of
``max_parallel`` slots frees (hosted macOS allows 5 concurrent jobs on the Free, Pro and Team
plans); queueing and the ubuntu ``plan``/``collect`` jobs are left out, so wall-clock figures are
lower bounds. Pure functions over plain numbers: no GitHub, no MLX, no files.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SETUP_SECONDS = 150.0
# One seed of the smoke fixture on gemma-3-270m on a hosted Apple-silicon runner: an assumed
# figure for planning, overridable with --seconds-per-seed.
DEFAULT_SECONDS_PER_SEED = 45.0
DEFAULT_MAX_PARALLEL = 5

PER_CELL = "one job per probe cell"
PER_SEED = "one job per (probe, seed)"


@dataclass(frozen=True)
class LayoutEstimate:
    """The jobs of one layout and what they cost."""

    layout: str
    # Duration of every job, in matrix order.
    job_seconds: tuple[float, ...]
    max_parallel: int

    @property
    def jobs(self) -> int:
        return len(self.job_seconds)

    @property
    def billed_minutes(self) -> int:
        return sum(billed_minutes(seconds) for seconds in self.job_seconds)

    @property
    def wall_clock_seconds(self) -> float:
        return wall_clock_seconds(self.job_seconds, self.max_parallel)


@dataclass(frozen=True)
class LayoutComparison:
    per_cell: LayoutEstimate
    per_seed: LayoutEstimate

    @property
    def minutes_saved(self) -> int:
        return self.per_seed.billed_minutes - self.per_cell.billed_minutes


def billed_minutes(job_seconds: float) -> int:
    """Minutes GitHub bills for one job: its duration rounded up to a whole minute."""
    if job_seconds < 0 or not math.isfinite(job_seconds):
        raise ValueError(f"a job's duration must be a finite number >= 0, got {job_seconds!r}")
    # Rounded to the millisecond first, so 150 + 2 × 45 is 4 minutes and not 4 + 1e-14.
    return math.ceil(round(job_seconds, 3) / 60)


def wall_clock_seconds(job_seconds: Sequence[float], max_parallel: int) -> float:
    """When the last job ends if jobs start in order whenever one of the slots is free."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    # Each slot is represented by the time it becomes free; the next job takes the earliest one.
    slots = [0.0] * min(max_parallel, len(job_seconds))
    for seconds in job_seconds:
        free_at = heapq.heappop(slots)
        heapq.heappush(slots, free_at + seconds)
    return max(slots, default=0.0)


def compare_layouts(
    seeds_per_cell: Sequence[int],
    seconds_per_seed: float,
    setup_seconds: float = DEFAULT_SETUP_SECONDS,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
) -> LayoutComparison:
    """Both layouts for the same cells (given as the number of seeds each cell runs)."""
    if any(n < 0 for n in seeds_per_cell):
        raise ValueError(f"a cell cannot run a negative number of seeds: {list(seeds_per_cell)}")
    if not (math.isfinite(seconds_per_seed) and seconds_per_seed > 0):
        raise ValueError(f"seconds_per_seed must be a finite number > 0, got {seconds_per_seed!r}")
    if not (math.isfinite(setup_seconds) and setup_seconds >= 0):
        raise ValueError(f"setup_seconds must be a finite number >= 0, got {setup_seconds!r}")
    per_cell = tuple(setup_seconds + n * seconds_per_seed for n in seeds_per_cell)
    per_seed = (setup_seconds + seconds_per_seed,) * sum(seeds_per_cell)
    return LayoutComparison(
        per_cell=LayoutEstimate(PER_CELL, per_cell, max_parallel),
        per_seed=LayoutEstimate(PER_SEED, per_seed, max_parallel),
    )


def format_duration(seconds: float) -> str:
    """``3510`` → ``58 min 30 s``; ``45`` → ``45 s`` (whole seconds: these are estimates)."""
    minutes, rest = divmod(round(seconds), 60)
    if minutes == 0:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
