"""When two per-step loss traces agree, and where they first part: one definition for the
collector and for bisect/explain (no MLX needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass


def same_loss(a: float, b: float, tolerance: float = 0.0) -> bool:
    """Bitwise at tolerance 0 (NaN equals NaN at the same step), else |a - b| <= tolerance."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if tolerance == 0.0:
        return a == b
    return abs(a - b) <= tolerance


@dataclass(frozen=True)
class Divergence:
    step: int
    size: float  # |Δloss| at that step (inf when one side ended or is non-finite)

    def describe(self) -> str:
        return f"step {self.step} by {self.size:.3g}"


def first_divergence(
    probe: list[float], target: list[float], tolerance: float
) -> Divergence | None:
    """Where ``probe`` first departs from ``target`` (None: they agree over every step)."""
    for i, (a, b) in enumerate(zip(probe, target, strict=False)):
        if not same_loss(a, b, tolerance):
            size = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
            return Divergence(i + 1, size)
    if len(probe) != len(target):
        return Divergence(min(len(probe), len(target)) + 1, math.inf)
    return None
