"""The defect classes the core's knobs can express, as changes from a base configuration.

Each change is one knob moved to one alternative value, drawn from the knob's domain in
``mlx_parity/knobs.py``. ``compile`` is absent on purpose: it never changes a loss (bit-identical
on and off), so no trace can reveal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from ..knobs import (
    BEHAVIOUR_KNOBS,
    AccumNorm,
    BatchOrder,
    DType,
    Knobs,
    LoraScaleRule,
    MaskRule,
    OptimizerDefaults,
    PaddingRule,
    apply,
)

# The clip policies worth trying: mlx-lm's (none), the silent legacy default, a global norm
# cap, and a per-tensor norm cap (a default seen in published trainers).
CLIP_ALTERNATIVES = ("value:1", "global_norm:1", "leaf_norm:1", "none")
# Gradient scales tried when no recorded gradient norm suggests one: a sum where a mean was
# meant over two micro-steps, and the reverse.
GRAD_SCALES = (0.5, 2.0)
BOTH = (False, True)


@dataclass(frozen=True, order=True)
class Change:
    knob: str
    value: Any

    def describe(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{self.knob}={value}"


def baseline_of(settings: Knobs) -> Knobs:
    """``settings`` with every behaviour knob back at mlx-lm's value: where a search starts."""
    defaults = Knobs()
    return apply(settings, {k: getattr(defaults, k) for k in BEHAVIOUR_KNOBS} | {"clip": None})


def search_space(base: Knobs, grad_scales: tuple[float, ...] = GRAD_SCALES) -> list[Change]:
    """Every single-knob change worth trying from ``base``; each is a distinct defect class.

    ``grad_scales`` are the gradient scales to try (explain passes the one the recorded
    gradient norms show). Changes that cannot apply to ``base`` are left out: accumulation
    defects without accumulation, a warmup offset without warmup."""
    accumulating = base.grad_accum > 1
    # Every value tried per knob, in search order; the base's own value is left out below.
    values = {
        "padding": get_args(PaddingRule),
        "loss_mask": get_args(MaskRule),
        "batch_order": get_args(BatchOrder),
        "val_draws_rng": BOTH,
        "accumulate": BOTH if accumulating else (),
        "clip": CLIP_ALTERNATIVES,
        "grad_scale": grad_scales,
        "seed_after_load": BOTH,
        "accum_norm": get_args(AccumNorm) if accumulating else (),
        "bias_correction": BOTH,
        "optimizer_defaults": get_args(OptimizerDefaults),
        "lora_scale_rule": get_args(LoraScaleRule),
        "warmup_offset": (0, 1) if base.schedule != "constant" else (),
        # Casting to float32 or leaving weights as loaded is the same on a float32 model.
        "dtype": [d for d in get_args(DType) if d not in ("as_loaded", "float32")],
        "num_layers": (-1 if base.num_layers != -1 else Knobs().num_layers,),
    }
    return [
        Change(knob, value)
        for knob, alternatives in values.items()
        for value in alternatives
        if value != getattr(base, knob)
    ]


def applied(base: Knobs, changes: tuple[Change, ...] | list[Change]) -> Knobs:
    return apply(base, {c.knob: c.value for c in changes})


def describe(changes: tuple[Change, ...] | list[Change]) -> str:
    return ", ".join(c.describe() for c in changes) if changes else "(no change)"
