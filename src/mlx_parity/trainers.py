"""Every trainer a probe can name — the built-in ``reference`` and ``core``, and plugins — with
the knobs each can honour.

Known without importing any trainer: validating a matrix (``plan``, ``collect``, the workflow's
ubuntu jobs) never imports MLX, mlx-lm or a user's plugin. :meth:`TrainerSpec.load` imports the
trainer, when a seed is about to train. Every trainer, once loaded, has one signature::

    train(model, tokenizer, texts, knobs, seed, on_step) -> list[StepRecord]

The harness has loaded the model and applied ``dtype``; the trainer adds LoRA, builds its
optimizer and batches, trains ``knobs.steps`` micro-steps and reports each one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .knobs import BEHAVIOUR_KNOBS, CLIP_ARGUMENTS, Knobs

PLUGIN_PREFIX = "plugin:"
ENTRY_POINT_GROUP = "mlx_parity.trainers"
# plugin:package.module:function, or plugin:NAME for an entry point.
_PLUGIN_TARGET = re.compile(
    r"(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)|(?P<entry>[\w.-]+)"
)

# The behaviour knobs mlx-lm's trainer lets a caller choose (the model's dtype, LoRA layers,
# the RNG seeding around LoRA init, Adam's bias correction); every other one its code fixes at
# its value, so a reference probe that sets one is refused instead of silently ignoring it.
REFERENCE_CHOOSES = ("num_layers", "seed_after_load", "dtype", "bias_correction")
FIXED_BY_MLX_LM: dict[str, Any] = {
    name: Knobs.model_fields[name].default
    for name in BEHAVIOUR_KNOBS
    if name not in REFERENCE_CHOOSES + CLIP_ARGUMENTS
} | {"clip": "none"}

Trainer = Callable[..., list]


class TrainerError(UsageError):
    """A trainer that does not exist, does not load, or cannot honour a probe's knobs."""


@dataclass(frozen=True)
class TrainerSpec:
    name: str
    # "module:function" of a built-in; None for a plugin (resolved by the protocol).
    target: str | None = None
    # Knob values the trainer cannot change.
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_plugin(self) -> bool:
        return self.name.startswith(PLUGIN_PREFIX)

    def check_knobs(self, knobs: Knobs) -> None:
        """Refuse knob values the trainer cannot express, before any seed runs."""
        bad = [f"{k}={getattr(knobs, k)}" for k, v in self.fixed.items() if getattr(knobs, k) != v]
        if bad:
            raise TrainerError(
                f"the {self.name} trainer cannot set {', '.join(bad)} (mlx-lm's own loop fixes "
                "them); use a core probe to vary these knobs"
            )

    def load(self) -> Trainer:
        """Import the trainer (MLX, mlx-lm, the user's plugin) and return it."""
        if self.is_plugin:
            from .protocol import as_trainer, load_plugin

            return as_trainer(load_plugin(self.name))
        module, _, function = (self.target or "").partition(":")
        return getattr(importlib.import_module(module), function)


BUILTIN_TRAINERS: dict[str, TrainerSpec] = {
    "reference": TrainerSpec(
        "reference", "mlx_parity.reference:train_reference", fixed=FIXED_BY_MLX_LM
    ),
    "core": TrainerSpec("core", "mlx_parity.core.trainer:train_core"),
}


def lookup(name: str) -> TrainerSpec:
    """The trainer a probe names; a plugin's name is checked for form only (not imported)."""
    if name in BUILTIN_TRAINERS:
        return BUILTIN_TRAINERS[name]
    if name.startswith(PLUGIN_PREFIX):
        if _PLUGIN_TARGET.fullmatch(name.removeprefix(PLUGIN_PREFIX)):
            return TrainerSpec(name)
        raise TrainerError(
            f"trainer {name!r}: expected plugin:package.module:function or plugin:NAME"
        )
    known = ", ".join(BUILTIN_TRAINERS)
    raise TrainerError(
        f"unknown trainer {name!r}; known trainers: {known}, or plugin:module:function"
    )
