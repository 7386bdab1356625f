"""The noise floor: how far a correct trainer's trace may stray from the baseline's, per step.

Two correct trainers seldom agree bit for bit. To tell "correct but rounded differently" from
"wrong", the baseline's cell also trains equivalent variants of the core
(``mlx_parity/core/variants.py``) on its first seeds and records per step how far their losses
and gradient norms drift from its trace (a :class:`NoiseSample` on the seed result).
:func:`noise_floor` turns those samples into the allowance verdicts are judged by:

- loss, per step k: ``MARGIN`` × the largest drift seen at any step up to k (float noise does
  not heal), and never less than ``MARGIN`` units in the last place of the float32 loss;
- gradient norm: ``MARGIN`` × the largest relative drift seen, at least ``MARGIN`` float32 eps.

A trace inside it is *equivalent* (within float noise); bitwise equal is *identical*; anything
else *diverges*. ``--tolerance`` / ``gates.trace_tolerance`` replace it with a fixed allowance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .traces import plural

# How many times the largest drift seen a probe may drift before it diverges: the variants
# sample a few seeds and two roundings, not every rounding a correct trainer could choose.
MARGIN = 4.0
# Seeds of the baseline whose variants are trained (the floor is the max over them).
CALIBRATION_SEEDS = 2
FLOAT32_EPS = float(np.finfo(np.float32).eps)

_CONFIG = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class NoiseSample(BaseModel):
    """What one baseline seed measured: per step, the largest drift of any variant's trace."""

    model_config = _CONFIG

    variants: list[str]
    # |Δloss| against the seed's own trace (NaN where a variant's loss was not finite).
    loss: list[float]
    # |probe / baseline − 1| of the gradient norm (None between optimizer updates).
    grad_norm: list[float | None]


class NoiseFloor(BaseModel):
    """The allowance a round's verdicts use, and what it rests on."""

    model_config = _CONFIG

    seeds: list[int]
    variants: list[str]
    margin: float = MARGIN
    # Allowed |Δloss| at each step (step k at index k−1; later steps use the last value).
    loss: list[float] = Field(min_length=1)
    # Allowed relative gradient-norm difference.
    grad_norm: float
    # Steps (1-based) where no variant's loss was finite: the floor there is carried over from
    # the steps before, measured nothing itself, and the report says so.
    unmeasured: list[int] = Field(default_factory=list)

    def describe(self) -> str:
        # The variants are named by adjectives ("reordered"): the noun says what they are.
        variants = f"the {' and '.join(self.variants)} {plural(len(self.variants), 'variant')}"
        seeds = f"{plural(len(self.seeds), 'seed')} {', '.join(map(str, self.seeds))}"
        first, last = f"{self.loss[0]:.2g}", f"{self.loss[-1]:.2g}"
        steps = (
            "at every step" if first == last else f"at step 1 to {last} at step {len(self.loss)}"
        )
        gaps = ""
        if self.unmeasured:
            where = plural(len(self.unmeasured), "step") + " " + step_ranges(self.unmeasured)
            gaps = f"; not measured at {where} (no variant's loss was finite there)"
        return (
            f"measured from {variants} on {seeds}: |Δloss| ≤ {first} {steps}, "
            f"gradient norm within {self.grad_norm:.2g} (×{self.margin:g}){gaps}"
        )


def step_ranges(steps: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3–5, 9``."""
    runs: list[list[int]] = []
    for step in sorted(steps):
        if runs and step == runs[-1][-1] + 1:
            runs[-1].append(step)
        else:
            runs.append([step])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def sample_drift(
    reference: Sequence[tuple[float, float | None]],
    variants: Mapping[str, Sequence[tuple[float, float | None]]],
) -> NoiseSample:
    """The per-step drift of each variant's (loss, grad_norm) steps from the reference's."""
    loss = [0.0] * len(reference)
    grad: list[float | None] = [None] * len(reference)
    for trace in variants.values():
        for i, (ref_loss, ref_norm) in enumerate(reference):
            if i >= len(trace):  # the variant stopped early: nothing measured there
                loss[i] = math.nan
                continue
            var_loss, var_norm = trace[i]
            delta = abs(var_loss - ref_loss)
            if not math.isfinite(delta):  # a non-finite loss on either side: not measured
                loss[i] = math.nan
            elif math.isfinite(loss[i]):
                loss[i] = max(loss[i], delta)
            if ref_norm and var_norm is not None:
                drift = abs(var_norm / ref_norm - 1)
                grad[i] = drift if grad[i] is None else max(grad[i], drift)
    return NoiseSample(variants=list(variants), loss=loss, grad_norm=grad)


def noise_floor(
    samples: Mapping[int, NoiseSample], baseline_losses: Mapping[int, Sequence[float]]
) -> NoiseFloor | None:
    """The round's allowance from its baseline seeds' samples; None when none was recorded."""
    usable = {seed: s for seed, s in samples.items() if s.loss}
    if not usable:
        return None
    steps = max(len(s.loss) for s in usable.values())
    loss: list[float] = []
    unmeasured: list[int] = []
    running = 0.0
    for i in range(steps):
        seen = [s.loss[i] for s in usable.values() if i < len(s.loss)]
        finite = [d for d in seen if math.isfinite(d)]
        if not finite:
            unmeasured.append(i + 1)
        running = max([running, *finite])
        ulp = max(
            (_float32_ulp(trace[i]) for trace in baseline_losses.values() if i < len(trace)),
            default=0.0,
        )
        loss.append(MARGIN * max(running, ulp))
    grads = [g for s in usable.values() for g in s.grad_norm if g is not None and math.isfinite(g)]
    return NoiseFloor(
        seeds=sorted(usable),
        variants=sorted({v for s in usable.values() for v in s.variants}),
        loss=loss,
        grad_norm=MARGIN * max([FLOAT32_EPS, *grads]),
        unmeasured=unmeasured,
    )


def _float32_ulp(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return float(np.spacing(np.float32(abs(value))))
