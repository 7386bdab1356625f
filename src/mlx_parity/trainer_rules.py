"""What a trainer name allows, known without importing any trainer: which names exist and
which knob values each can honour. Kept free of mlx-lm so that loading a matrix (plan, collect,
the workflow's ubuntu jobs) stays fast."""

from __future__ import annotations

from typing import Any

from .knobs import Knobs

BUILTIN_TRAINER_NAMES = ("reference", "core")
PLUGIN_PREFIX = "plugin:"

# Knobs mlx-lm's trainer has no notion of: they are fixed by its code, so a reference probe
# that sets them is refused instead of silently ignoring them.
FIXED_BY_MLX_LM: dict[str, Any] = {
    "padding": "mlx-lm",
    "pad_to": 32,
    "loss_mask": "inclusive",
    "clip": "none",
    "compile": True,
    "accum_norm": "mean",
}


class TrainerError(ValueError):
    """A trainer that does not exist, or knobs it cannot honour."""


def unsupported_knobs(knobs: Knobs) -> dict[str, Any]:
    """Knobs set to a value mlx-lm's trainer cannot express."""
    return {k: getattr(knobs, k) for k, v in FIXED_BY_MLX_LM.items() if getattr(knobs, k) != v}


def check_trainer_name(name: str) -> None:
    """A built-in name, or a plugin that imports (plugins are the user's code: load them)."""
    if name.startswith(PLUGIN_PREFIX):
        from .protocol import PluginError, load_plugin

        try:
            load_plugin(name)
        except PluginError as exc:
            raise TrainerError(str(exc)) from None
    elif name not in BUILTIN_TRAINER_NAMES:
        known = ", ".join(BUILTIN_TRAINER_NAMES)
        raise TrainerError(
            f"unknown trainer {name!r}; known trainers: {known}, or plugin:module:function"
        )


def check_knobs(trainer: str, knobs: Knobs) -> None:
    """Refuse knob values a trainer cannot express, before any seed runs."""
    if trainer == "reference" and (bad := unsupported_knobs(knobs)):
        names = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainerError(
            f"the reference trainer is mlx-lm's own loop and cannot set {names}; "
            "use a core probe to vary these knobs"
        )
