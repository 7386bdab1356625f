"""When two trainers' per-step records agree, and where they first part: the one definition the
collector, bisect and explain share (no MLX needed).

Every signal a seed result records is compared step by step, earliest first; at the same step
**structure** (the batch's shape, its rows and their order, the trained target tokens, the
optimizer updates so far: equal or not) leads, then the **gradient norm** at each update, before
clipping (within the allowance's relative bound), then the **loss** (within the allowance's
|Δloss| at that step): a batch one column wider explains its loss, not the other way round.

The verdict is ``identical`` (bitwise at every step), ``equivalent`` (inside the round's noise
floor, ``mlx_parity/noise.py``), ``close`` (inside an explicit tolerance), ``diverges`` (a signal
outside it, a non-finite loss on one side only, or traces of different lengths) or
``unavailable`` (nothing to compare).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .noise import NoiseFloor

TraceVerdict = Literal["identical", "equivalent", "close", "diverges", "unavailable"]
Signal = Literal["structure", "grad_norm", "loss", "length"]
AllowanceKind = Literal["bitwise", "tolerance", "noise"]
# Relative gradient-norm difference tolerated when no noise floor says otherwise: four float32
# eps (the same norm summed in another order).
DEFAULT_GRAD_NORM_ALLOWANCE = 4 * 2.0**-23

Row = Mapping[str, Any]


_LOSS = operator.itemgetter("loss")


def loss_trace(rows: Sequence[Row]) -> list[float]:
    """The loss of every step (at C speed: collect builds 10,000 of these)."""
    return list(map(_LOSS, rows))


def format_size(value: float) -> str:
    return f"{value:.3g}"


def format_limit(value: float) -> str:
    """A threshold as the round set it ("1000", "1.5", "1e-06"): every digit it was given, never
    the rounded "1e+03" of a measured size."""
    return f"{value:g}"


def plural(count: int, word: str) -> str:
    """``word`` in the number ``count`` needs: "seed" for 1, "seeds" for any other count."""
    return word if count == 1 else f"{word}s"


def loss_difference_text(delta: float) -> str:
    """How far a loss departed: "loss by 0.000924", the signal named as every verdict names
    it (no "|Δloss|": its bars would end a Markdown table cell)."""
    return f"loss by {format_size(delta)}"


@dataclass(frozen=True)
class Allowance:
    """How far a trace may stray from its target and still agree: ``loss[k]`` is the |Δloss|
    allowed at step k+1 (later steps use the last value), ``grad_norm`` the relative gradient-norm
    difference. ``bitwise`` allows nothing, ``tolerance`` one fixed |Δloss| (an explicit
    override), ``noise`` a measured noise floor."""

    loss: tuple[float, ...] = (0.0,)
    grad_norm: float = DEFAULT_GRAD_NORM_ALLOWANCE
    kind: AllowanceKind = "bitwise"

    @classmethod
    def of(cls, value: Allowance | float | None) -> Allowance:
        """An allowance from an explicit tolerance (0 or None: bitwise)."""
        if isinstance(value, Allowance):
            return value
        if not value:
            return cls()
        # A tolerance wide enough for losses from another platform is as wide for norms.
        grad_norm = max(float(value), DEFAULT_GRAD_NORM_ALLOWANCE)
        return cls((float(value),), grad_norm, "tolerance")

    @classmethod
    def from_floor(cls, floor: NoiseFloor) -> Allowance:
        return cls(tuple(floor.loss), floor.grad_norm, "noise")

    @classmethod
    def for_round(cls, tolerance: float | None, floor: NoiseFloor | None) -> Allowance:
        """What a round's verdicts allow: its explicit tolerance when it sets one, else the
        noise floor its baseline measured, else nothing (bitwise)."""
        if tolerance is not None or floor is None:
            return cls.of(tolerance)
        return cls.from_floor(floor)

    def at(self, step: int) -> float:
        """The |Δloss| allowed at ``step`` (1-based)."""
        return self.loss[min(step, len(self.loss)) - 1]

    def limits(self, steps: int) -> tuple[float, ...]:
        """The |Δloss| allowed at steps 1 … ``steps``."""
        return (self.loss + (self.loss[-1],) * steps)[:steps]

    def format_loss(self, value: float) -> str:
        """A |Δloss| this allowance allows, as every report writes it: a tolerance as the round
        set it, a measured floor to two digits."""
        return format_limit(value) if self.kind == "tolerance" else f"{value:.2g}"

    def describe(self) -> str:
        if self.kind == "bitwise":
            return "bit for bit"
        if self.kind == "tolerance":
            return f"within {self.format_loss(self.loss[0])} per step"
        first, last = self.format_loss(self.loss[0]), self.format_loss(self.loss[-1])
        # A floor as wide at the last step as at the first is one value, not a range.
        limits = first if first == last else f"{first}…{last}"
        return f"within the noise floor (|Δloss| ≤ {limits})"


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
    allowance: Allowance = Allowance()
    # Where the traces first part (diverges only): the step, the size of the difference there
    # (|Δloss|, or the gradient-norm ratio; None for structure, a non-finite loss or an ended
    # trace), which signal parted, and all that in words.
    step: int | None = None
    size: float | None = None
    where: str | None = None
    # The largest |Δloss| over the steps both traces have: inf where one loss is non-finite and
    # the other is not the same (None: no finite step).
    max_abs: float | None = None
    signal: Signal | None = None
    # The verdict of the losses alone, when another signal parted first.
    loss_verdict: TraceVerdict | None = None
    # The first structural difference, (step, what), wherever the verdict came from.
    structure: tuple[int, str] | None = None

    @property
    def diverges(self) -> bool:
        return self.verdict == "diverges"

    def describe(self) -> str:
        if self.verdict == "diverges":
            text = f"diverges at {self.where}"
            if self.loss_verdict in ("identical", "equivalent", "close"):
                text += f" (losses {self.loss_verdict} over {self.steps} steps)"
            return text
        if self.verdict == "unavailable":
            return "no steps to compare"
        over, largest = f"{self.verdict} over {self.steps} steps", format_size(self.max_abs or 0.0)
        if self.verdict == "close":
            return f"{over}: max |Δloss| {largest} ≤ {format_size(self.allowance.loss[0])}"
        if self.verdict == "equivalent":
            return f"{over}: max |Δloss| {largest}, inside the noise floor"
        return over


def compare_traces(
    probe: Sequence[float], target: Sequence[float], allowance: Allowance | float = 0.0
) -> TraceComparison:
    """``probe``'s losses against ``target``'s, step by step (step 1 is index 0)."""
    allowance = Allowance.of(allowance)
    if not probe and not target:
        return TraceComparison("unavailable", 0, allowance)
    if len(probe) == len(target) and all(map(operator.eq, probe, target)):
        # The common case, bitwise equal at every step, checked at C speed (NaN never equals
        # itself, so a trace with a NaN takes the loop below).
        return TraceComparison("identical", len(probe), allowance, max_abs=0.0)
    # |Δloss| per step, NaN where either side is non-finite (inf - inf too); a step parts when
    # its |Δ| is not within the allowance there, unless both sides are the same non-finite value.
    deltas = list(map(abs, map(operator.sub, probe, target)))
    finite = [d for d in deltas if d < math.inf]
    largest = max(finite) if finite else None
    if len(finite) < len(deltas) and not all(
        same_loss(probe[i], target[i]) for i, d in enumerate(deltas) if not d < math.inf
    ):
        largest = math.inf  # a loss that went non-finite where the other did not: the farthest
    limits = allowance.limits(len(deltas))
    parts = (
        i
        for i, (d, limit) in enumerate(zip(deltas, limits, strict=True))
        if not d <= limit and not same_loss(probe[i], target[i])
    )
    signal: Signal
    if (i := next(parts, None)) is not None:
        step, signal = i + 1, "loss"
        if deltas[i] < math.inf:
            size, where = deltas[i], f"step {step}: {loss_difference_text(deltas[i])}"
        else:
            size, where = None, f"step {step}: loss {probe[i]:.4g} vs {target[i]:.4g}"
    elif len(probe) != len(target):
        step, size, signal = min(len(probe), len(target)) + 1, None, "length"
        where = f"step {step}: trace length {len(probe)} vs {len(target)} steps"
    else:
        # Without a parting step, every non-finite step matched: bitwise when no finite one differs.
        within: TraceVerdict = "equivalent" if allowance.kind == "noise" else "close"
        verdict = within if largest else "identical"
        return TraceComparison(verdict, len(probe), allowance, max_abs=largest)
    return TraceComparison("diverges", len(probe), allowance, step, size, where, largest, signal)


def first_divergence(
    probe: Sequence[float], target: Sequence[float], allowance: Allowance | float = 0.0
) -> TraceComparison | None:
    """The comparison when ``probe`` departs from ``target``; None when they agree."""
    comparison = compare_traces(probe, target, allowance)
    return comparison if comparison.diverges else None


# --- every signal ------------------------------------------------------------------------------


def first_structural_difference(
    probe_rows: Sequence[Row], target_rows: Sequence[Row]
) -> tuple[int, str] | None:
    """(step, what) of the first step whose batch differs from the target's: its shape, its
    rows and their order (the batch fingerprint), its trained target tokens, or the number of
    optimizer updates made so far. Signals one side lacks are not compared. The probe's value
    comes first and the target's second, here and in every "x vs y" written about traces."""
    # The common case, every signal equal, at C speed (collect runs this for every seed of every
    # probe); rows from before a signal existed lack its key and take the loop.
    with contextlib.suppress(KeyError):
        if all(map(operator.eq, map(_SIGNALS, probe_rows), map(_SIGNALS, target_rows))):
            return None
    for mine, theirs in zip(probe_rows, target_rows, strict=False):
        if _signals(mine) == _signals(theirs):
            continue
        if tuple(mine["input_shape"]) != tuple(theirs["input_shape"]):
            what = f"batch shape {tuple(mine['input_shape'])} vs {tuple(theirs['input_shape'])}"
        elif _differs(mine, theirs, "batch"):
            what = "other rows or another order in the batch (sampling or shuffling)"
        elif mine["ntoks"] != theirs["ntoks"]:
            what = f"{mine['ntoks']} vs {theirs['ntoks']} target tokens (the loss mask?)"
        elif _differs(mine, theirs, "updates"):
            what = (
                f"{mine['updates']} vs {theirs['updates']} optimizer updates so far "
                "(gradient accumulation)"
            )
        else:
            continue  # a signal only one side recorded
        return mine["step"], what
    return None


_SIGNALS = operator.itemgetter("input_shape", "ntoks", "batch", "updates")


def _signals(row: Row) -> tuple:
    return row["input_shape"], row["ntoks"], row.get("batch"), row.get("updates")


def _differs(mine: Row, theirs: Row, signal: str) -> bool:
    a, b = mine.get(signal), theirs.get(signal)
    return a is not None and b is not None and a != b


def first_update_norm_ratio(probe_rows: Sequence[Row], target_rows: Sequence[Row]) -> float | None:
    """The probe's gradient norm over the target's at the first update both made (before any
    clipping): 0.5 means its gradients are half the size, a scale Adam hides in losses."""
    for mine, theirs in zip(probe_rows, target_rows, strict=False):
        a, b = mine["grad_norm"], theirs["grad_norm"]
        if a is not None and b is not None:
            return a / b if b else None
    return None


def simple_scale(ratio: float) -> float | None:
    """The n or 1/n a trainer would have written that ``ratio`` is (to 1e-4); None otherwise."""
    if ratio <= 0 or not math.isfinite(ratio):
        return None
    for simple in (round(ratio), 1 / max(round(1 / ratio), 1)):
        if simple and abs(ratio / simple - 1) < 1e-4:
            return float(simple)
    return None


def format_ratio(ratio: float, explained: bool = True) -> str:
    """ "0.5× (gradients scaled by 1/2)" (explained) or "0.5×", "0.981×"; a ratio near 1 with
    the digits that show how near ("0.999714×", "1.00312×", never a "1×" that reads as no
    difference), without trailing zeros. Every report text of a gradient-norm ratio is this."""
    if abs(ratio - 1) < 0.01:
        return f"{_near_one(ratio)}×"
    scale = simple_scale(ratio) if explained else None
    if scale is None:
        return f"{ratio:.3g}×"
    by = round(scale) if scale >= 1 else f"1/{round(1 / scale)}"
    return f"{ratio:.3g}× (gradients scaled by {by})"


def _near_one(ratio: float) -> str:
    """Six decimals, or as many as three significant digits of ``ratio - 1`` need when it is
    smaller still (a departure just past the float32 allowance, ~5e-7)."""
    off = abs(ratio - 1)
    decimals = 6 if off == 0 else max(6, math.ceil(-math.log10(off)) + 2)
    return f"{ratio:.{decimals}f}".rstrip("0").rstrip(".")


def norm_ratio_text(ratio: float, explained: bool = True) -> str:
    """ "gradient norm 0.5×": a gradient-norm ratio, named, as every column writes it."""
    return f"gradient norm {format_ratio(ratio, explained)}"


def first_norm_departure(
    probe_rows: Sequence[Row], target_rows: Sequence[Row], allowance: float
) -> tuple[int, float] | None:
    """(step, ratio) of the first update whose gradient-norm ratio is off 1 by > ``allowance``."""
    norm = operator.itemgetter("grad_norm")
    if len(probe_rows) == len(target_rows) and all(
        map(operator.eq, map(norm, probe_rows), map(norm, target_rows))
    ):
        return None  # the common case, every norm bitwise equal, at C speed
    for mine, theirs in zip(probe_rows, target_rows, strict=False):
        a, b = mine["grad_norm"], theirs["grad_norm"]
        if a is None or b is None or a == b:
            continue
        if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
            continue  # a non-finite loss says it first
        if abs(a / b - 1) > allowance:
            return mine["step"], a / b
    return None


# What one step whose batch differs (or that one trace lacks) adds to a distance: more than
# any loss difference a float32 loss can show in allowances (log10 of ~1e12).
STRUCTURE_WEIGHT = 12.0


def distance(probe_rows: Sequence[Row], target_rows: Sequence[Row], allowance: Allowance) -> float:
    """How far two whole traces are apart, in every signal: per step, log10(1 + |Δloss| /
    allowed) plus the same for the gradient norm, and ``STRUCTURE_WEIGHT`` for a step whose batch
    differs or that one trace lacks; the mean over the steps. 0 when they agree everywhere."""
    steps = max(len(probe_rows), len(target_rows))
    if steps == 0:
        return 0.0
    total = STRUCTURE_WEIGHT * abs(len(probe_rows) - len(target_rows))
    for i, (mine, theirs) in enumerate(zip(probe_rows, target_rows, strict=False)):
        if first_structural_difference([mine], [theirs]) is not None:
            total += STRUCTURE_WEIGHT
            continue
        delta = abs(mine["loss"] - theirs["loss"])
        if math.isfinite(delta):
            total += math.log10(1 + delta / max(allowance.at(i + 1), 1e-30))
        elif not same_loss(mine["loss"], theirs["loss"]):
            total += STRUCTURE_WEIGHT
        a, b = mine["grad_norm"], theirs["grad_norm"]
        if a is not None and b and math.isfinite(a / b):
            total += math.log10(1 + abs(a / b - 1) / max(allowance.grad_norm, 1e-30))
    return total / steps


def step_agrees(mine: Row, theirs: Row, allowance: Allowance) -> bool:
    """One step agrees in every signal: batch, updates, gradient norm and loss."""
    if first_structural_difference([mine], [theirs]) is not None:
        return False
    if first_norm_departure([mine], [theirs], allowance.grad_norm) is not None:
        return False
    return same_loss(mine["loss"], theirs["loss"], allowance.at(mine["step"]))


def compare_steps(
    probe_rows: Sequence[Row],
    target_rows: Sequence[Row],
    allowance: Allowance | float = 0.0,
    losses: tuple[Sequence[float], Sequence[float]] | None = None,
) -> TraceComparison:
    """Every signal of ``probe_rows`` against ``target_rows``; the earliest difference leads.
    ``losses`` are the two loss traces when the caller already has them."""
    allowance = Allowance.of(allowance)
    if probe_rows and probe_rows == target_rows:
        # A trainer at parity, the common case: every row equal, so every signal at every step
        # is, checked at C speed (a NaN never equals another, so a trace with one goes on).
        return TraceComparison("identical", len(probe_rows), allowance, max_abs=0.0)
    if losses is None:
        losses = loss_trace(probe_rows), loss_trace(target_rows)
    by_loss = compare_traces(*losses, allowance)
    if by_loss.verdict == "unavailable":
        return by_loss
    found: list[tuple[int, int, TraceComparison]] = []
    structural = first_structural_difference(probe_rows, target_rows)
    if structural is not None:
        by_loss = dataclasses.replace(by_loss, structure=structural)
        step, what = structural
        found.append((step, 0, _parted(by_loss, step, None, f"step {step}: {what}", "structure")))
    norms = first_norm_departure(probe_rows, target_rows, allowance.grad_norm)
    if norms is not None:
        step, ratio = norms
        where = f"step {step}: {norm_ratio_text(ratio)}"
        found.append((step, 1, _parted(by_loss, step, ratio, where, "grad_norm")))
    if by_loss.diverges:
        found.append((by_loss.step or 0, 2, by_loss))
    if not found:
        return by_loss
    return min(found, key=lambda item: item[:2])[2]


def _parted(
    by_loss: TraceComparison, step: int, size: float | None, where: str, signal: Signal
) -> TraceComparison:
    """``by_loss`` made to diverge at a signal other than the loss, keeping the loss verdict."""
    return dataclasses.replace(
        by_loss,
        verdict="diverges",
        step=step,
        size=size,
        where=where,
        signal=signal,
        loss_verdict=by_loss.verdict,
    )
