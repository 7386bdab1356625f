"""The defect classes the core's knobs can express, as changes from a base configuration.

Each change is one knob moved to one alternative value. ``compile`` is absent on purpose: it
never changes a loss (bit-identical on and off), so no trace can reveal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..knobs import Knobs, apply


@dataclass(frozen=True, order=True)
class Change:
    knob: str
    value: Any

    def describe(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{self.knob}={value}"


# Defect class → what it means to a user, for reports.
DEFECT_CLASSES = {
    "padding": "batch padding rule (+1 of mlx-lm's width)",
    "loss_mask": "which targets the loss trains on (the pad target)",
    "clip": "gradient clipping policy (e.g. a silent ±1.0 clip)",
    "seed_after_load": "seeding MLX's RNG before LoRA init",
    "accum_norm": "how accumulated gradients are normalised",
    "bias_correction": "Adam bias correction",
    "dtype": "the dtype the base weights are cast to",
    "num_layers": "how many layers get LoRA",
}


# Knobs that describe how a trainer behaves (what explain searches), as opposed to the training
# settings a candidate was asked to use (steps, lr, batch size...), which it keeps.
BEHAVIOUR_KNOBS = (
    *DEFECT_CLASSES,
    "pad_to",
    "max_grad_value",
    "max_grad_norm",
    "clip_semantics",
    "compile",
)


def baseline_of(settings: Knobs) -> Knobs:
    """``settings`` with every behaviour knob back at mlx-lm's value: where a search starts."""
    defaults = Knobs()
    return apply(settings, {k: getattr(defaults, k) for k in BEHAVIOUR_KNOBS} | {"clip": None})


def search_space(base: Knobs) -> list[Change]:
    """Every single-knob change worth trying from ``base``; each is a distinct defect class."""
    changes = [
        Change("padding", "multiple" if base.padding == "mlx-lm" else "mlx-lm"),
        Change("loss_mask", "exclusive" if base.loss_mask == "inclusive" else "inclusive"),
        *(Change("clip", c) for c in ("value:1", "global_norm:1", "none") if c != base.clip),
        Change("seed_after_load", not base.seed_after_load),
        Change("accum_norm", "token" if base.accum_norm == "mean" else "mean"),
        Change("bias_correction", not base.bias_correction),
        *(Change("dtype", d) for d in ("float16", "bfloat16") if d != base.dtype),
        Change("num_layers", -1 if base.num_layers != -1 else 16),
    ]
    return changes


def applied(base: Knobs, changes: tuple[Change, ...] | list[Change]) -> Knobs:
    return apply(base, {c.knob: c.value for c in changes})


def describe(changes: tuple[Change, ...] | list[Change]) -> str:
    return ", ".join(c.describe() for c in changes) if changes else "(no change)"
