"""Trainers a probe can name. Every trainer has one signature:

    train(model, tokenizer, texts, knobs, seed, on_step) -> list[StepRecord]

The harness has loaded the model and applied ``dtype``; the trainer adds LoRA, builds its
optimizer and batches, trains ``knobs.steps`` micro-steps and reports each one.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.nn as nn

from .core.batches import encode_rows, iterate_batches
from .core.setup import attach_lora, build_optimizer
from .core.trainer import StepCallback, StepRecord, train
from .knobs import Knobs
from .protocol import PluginError, as_trainer, load_plugin
from .reference import train_reference
from .trainer_rules import PLUGIN_PREFIX, TrainerError, check_knobs, check_trainer_name

# check_knobs and TrainerError are part of this module's interface for the harness.
__all__ = ["BUILTIN_TRAINERS", "TrainerError", "check_knobs", "resolve_trainer", "train_core"]

Trainer = Callable[
    [nn.Module, object, list[str], Knobs, int, StepCallback | None], list[StepRecord]
]


def train_core(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    knobs: Knobs,
    seed: int,
    on_step: StepCallback | None = None,
) -> list[StepRecord]:
    attach_lora(model, knobs, seed)
    optimizer = build_optimizer(knobs)
    rows = encode_rows(tokenizer, texts)
    batches = iterate_batches(
        rows, knobs.batch_size, knobs.max_seq_length, seed, knobs.padding, knobs.pad_to
    )
    return train(model, optimizer, batches, knobs, on_step)


BUILTIN_TRAINERS: dict[str, Trainer] = {"reference": train_reference, "core": train_core}


def resolve_trainer(name: str) -> Trainer:
    """A built-in trainer, or a plugin named ``plugin:module:function`` / ``plugin:NAME``."""
    if name.startswith(PLUGIN_PREFIX):
        try:
            return as_trainer(load_plugin(name))
        except PluginError as exc:
            raise TrainerError(str(exc)) from None
    check_trainer_name(name)
    return BUILTIN_TRAINERS[name]
