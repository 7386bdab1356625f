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


def meaning(knob: str) -> str:
    """What a knob means to a user, for reports: its description in ``Knobs``."""
    return Knobs.model_fields[knob].description or knob


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


def _others(domain: type, current: Any) -> list[Change]:
    return [value for value in get_args(domain) if value != current]


def search_space(base: Knobs, grad_scales: tuple[float, ...] = GRAD_SCALES) -> list[Change]:
    """Every single-knob change worth trying from ``base``; each is a distinct defect class.

    ``grad_scales`` are the gradient scales to try (explain passes the one the recorded
    gradient norms show). Changes that cannot apply to ``base`` are left out: accumulation
    defects without accumulation, a warmup offset without warmup."""
    # Casting to float32 or leaving weights as loaded is the same on a float32 model.
    dtypes = [d for d in _others(DType, base.dtype) if d not in ("as_loaded", "float32")]
    accumulating = base.grad_accum > 1
    return [
        *(Change("padding", v) for v in _others(PaddingRule, base.padding)),
        *(Change("loss_mask", v) for v in _others(MaskRule, base.loss_mask)),
        *(Change("batch_order", v) for v in _others(BatchOrder, base.batch_order)),
        Change("val_draws_rng", not base.val_draws_rng),
        *([Change("accumulate", not base.accumulate)] if accumulating else []),
        *(Change("clip", c) for c in CLIP_ALTERNATIVES if c != base.clip),
        *(Change("grad_scale", v) for v in grad_scales if v != base.grad_scale),
        Change("seed_after_load", not base.seed_after_load),
        *(Change("accum_norm", v) for v in _others(AccumNorm, base.accum_norm) if accumulating),
        Change("bias_correction", not base.bias_correction),
        *(
            Change("optimizer_defaults", v)
            for v in _others(OptimizerDefaults, base.optimizer_defaults)
        ),
        *(Change("lora_scale_rule", v) for v in _others(LoraScaleRule, base.lora_scale_rule)),
        *([Change("warmup_offset", 1 - base.warmup_offset)] if base.schedule != "constant" else []),
        *(Change("dtype", d) for d in dtypes),
        Change("num_layers", -1 if base.num_layers != -1 else Knobs().num_layers),
    ]


def applied(base: Knobs, changes: tuple[Change, ...] | list[Change]) -> Knobs:
    return apply(base, {c.knob: c.value for c in changes})


def describe(changes: tuple[Change, ...] | list[Change]) -> str:
    return ", ".join(c.describe() for c in changes) if changes else "(no change)"
