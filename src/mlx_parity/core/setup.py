"""Model and optimizer setup shared by every trainer: dtype, LoRA, optimizer, schedule.

LoRA goes through mlx-lm's ``linear_to_lora_layers`` so "LoRA on the last N layers" means
exactly what it means in mlx-lm (-1 = all layers).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers

from ..knobs import Knobs

_DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}


def cast_weights(model: nn.Module, dtype: str) -> None:
    """Cast floating-point weights (``as_loaded`` keeps them as they are)."""
    if dtype != "as_loaded":
        model.set_dtype(_DTYPES[dtype])


def lora_config(knobs: Knobs) -> dict:
    """mlx-lm's LoRA parameter dict (keys None = every linear layer of a block)."""
    keys = list(knobs.lora_keys) if knobs.lora_keys is not None else None
    scale = knobs.lora_scale
    if knobs.lora_scale_rule == "alpha_over_rank":
        scale /= knobs.lora_rank  # lora_scale read as PEFT's alpha
    return {"rank": knobs.lora_rank, "scale": scale, "dropout": knobs.lora_dropout, "keys": keys}


def attach_lora(model: nn.Module, knobs: Knobs, seed: int) -> None:
    """Freeze the base, optionally reseed (LoRA init consumes RNG), add LoRA to the last layers."""
    if knobs.num_layers > len(model.layers):
        raise ValueError(
            f"num_layers={knobs.num_layers} but the model has only {len(model.layers)} layers"
        )
    if knobs.seed_after_load:
        mx.random.seed(seed)
    model.freeze()
    linear_to_lora_layers(model, knobs.num_layers, lora_config(knobs))


def learning_rate(knobs: Knobs):
    """A float for a constant rate (as mlx-lm passes it), or mlx-lm's warmup schedule."""
    if knobs.schedule == "constant":
        return knobs.lr
    constant = {"name": "linear_schedule", "arguments": [knobs.lr, knobs.lr, 1]}  # lr to lr
    schedule = build_schedule(constant | {"warmup": knobs.warmup_steps})
    if knobs.warmup_offset:
        offset = knobs.warmup_offset
        return lambda step: schedule(step + offset)
    return schedule


def build_optimizer(knobs: Knobs) -> optim.Optimizer:
    kwargs = {"learning_rate": learning_rate(knobs)}
    if knobs.optimizer_defaults == "explicit":
        kwargs["bias_correction"] = knobs.bias_correction
        if knobs.optimizer == "adamw":
            kwargs["weight_decay"] = knobs.weight_decay
    return (optim.Adam if knobs.optimizer == "adam" else optim.AdamW)(**kwargs)
