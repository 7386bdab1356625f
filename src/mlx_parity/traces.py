"""When two per-step loss traces agree, and where they first part: the one definition the
collector, bisect and explain share (no MLX needed).

A verdict is ``identical`` (bitwise at every step), ``close`` (every |Δloss| within a
tolerance), ``diverges`` (a step outside it, a non-finite loss on one side only, or traces of
different lengths) or ``unavailable`` (nothing to compare).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

TraceVerdict = Literal["identical", "close", "diverges", "unavailable"]


def format_size(value: float) -> str:
    return f"{value:.3g}"


def same_loss(a: float, b: float, tolerance: float = 0.0) -> bool:
    """Bitwise at tolerance 0, else |a - b| <= tolerance. A non-finite loss matches only the
    same non-finite value (NaN matches NaN) at any tolerance."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b if tolerance == 0.0 else abs(a - b) <= tolerance


@dataclass(frozen=True)
class TraceComparison:
    verdict: TraceVerdict
    steps: int
    tolerance: float = 0.0
    # Where the traces first part (diverges only): the step, |Δloss| there (None when one side
    # is not finite or one trace ended), and that place in words.
    step: int | None = None
    size: float | None = None
    where: str | None = None
    # The largest finite |Δloss| over the steps both traces have (None: no finite step).
    max_abs: float | None = None

    @property
    def diverges(self) -> bool:
        return self.verdict == "diverges"

    def describe(self) -> str:
        if self.verdict == "diverges":
            return f"diverges at {self.where}"
        if self.verdict == "close":
            return (
                f"close over {self.steps} steps: max |Δloss| {format_size(self.max_abs or 0.0)} "
                f"≤ {format_size(self.tolerance)}"
            )
        if self.verdict == "identical":
            return f"identical over {self.steps} steps"
        return "no steps to compare"


def compare_traces(
    probe: Sequence[float], target: Sequence[float], tolerance: float = 0.0
) -> TraceComparison:
    """``probe``'s losses against ``target``'s, step by step (step 1 is index 0)."""
    if not probe and not target:
        return TraceComparison("unavailable", 0, tolerance)
    if len(probe) == len(target) and all(map(operator.eq, probe, target)):
        # The common case, bitwise equal at every step, checked at C speed (NaN never equals
        # itself, so a trace with a NaN takes the loop below).
        return TraceComparison("identical", len(probe), tolerance, max_abs=0.0)
    largest: float | None = None
    first: tuple[int, float | None, str] | None = None
    exact = True
    for i, (a, b) in enumerate(zip(probe, target, strict=False)):
        delta = abs(a - b)  # NaN when either side is non-finite (inf - inf too)
        finite = delta < math.inf
        if finite:
            largest = delta if largest is None or delta > largest else largest
            if delta == 0.0:
                continue
        elif same_loss(a, b):
            continue
        exact = False
        if first is None and not (finite and delta <= tolerance):
            step = i + 1
            if finite:
                first = (step, abs(a - b), f"step {step} by {format_size(abs(a - b))}")
            else:
                first = (step, None, f"step {step}: loss {a:.4g} vs {b:.4g}")
    if first is None and len(probe) != len(target):
        step = min(len(probe), len(target)) + 1
        first = (step, None, f"step {step}: trace length {len(probe)} vs {len(target)} steps")
    if first is not None:
        step, size, where = first
        return TraceComparison("diverges", len(probe), tolerance, step, size, where, largest)
    verdict: TraceVerdict = "identical" if exact else "close"
    return TraceComparison(verdict, len(probe), tolerance, max_abs=largest)


def first_divergence(
    probe: Sequence[float], target: Sequence[float], tolerance: float = 0.0
) -> TraceComparison | None:
    """The comparison when ``probe`` departs from ``target``; None when they agree."""
    comparison = compare_traces(probe, target, tolerance)
    return comparison if comparison.diverges else None
