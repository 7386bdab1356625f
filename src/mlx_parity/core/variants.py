"""Mathematically equivalent variants of the core: the yardstick of the noise floor.

Two correct trainers rarely agree bit for bit: they sum in another order, fuse other kernels,
compile or not. Each variant here changes only how the core's arithmetic is rounded, never what
it computes, so how far its trace drifts from the core's is float noise on this fixture, this
platform and this device, step by step. ``mlx_parity/noise.py`` turns those drifts into the
envelope verdicts are judged against.

- ``reordered``: the loss summed row by row, then over the rows: another reduction order
  (the reported loss rounds differently; the gradients do not change);
- ``reassociated``: LoRA's product taken as ``x @ (A @ B)`` instead of ``(x @ A) @ B``; the
  gradients round differently from the first update on, and Adam carries that forward.

Both run eagerly (compile off), which on a GPU runs other kernels than the compiled baseline
and on the CPU gives the same bits (tests/test_core_parity.py); it also spares a cold C++
compile of graphs no other run uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal, get_args

import mlx.nn as nn
from mlx_lm.tuner.lora import LoRALinear

from ..knobs import Knobs
from ..steps import StepCallback, StepRecord
from .loss import shifted_loss

Variant = Literal["reordered", "reassociated"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)


class ReassociatedLoRALinear(LoRALinear):
    """mlx-lm's LoRA layer with its low-rank product associated the other way."""

    def __call__(self, x):
        y = self.linear(x)
        z = self.dropout(x) @ (self.lora_a @ self.lora_b)
        return y + (self.scale * z).astype(x.dtype)


def reassociate_lora(model: nn.Module) -> None:
    for _, module in model.named_modules():
        if type(module) is LoRALinear:
            module.__class__ = ReassociatedLoRALinear


def train_variant(
    variant: Variant,
    model: nn.Module,
    tokenizer,
    texts: list[str],
    knobs: Knobs,
    seed: int,
    on_step: StepCallback | None = None,
) -> list[StepRecord]:
    """The core at ``knobs`` on ``seed``, with ``variant``'s rounding."""
    from . import trainer

    loss: Callable = shifted_loss
    after_lora: Callable[[nn.Module], None] | None = None
    knobs = knobs.model_copy(update={"compile": False})
    if variant == "reordered":
        loss = partial(shifted_loss, by_row=True)
    elif variant == "reassociated":
        after_lora = reassociate_lora
    else:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return trainer.train_core(
        model, tokenizer, texts, knobs, seed, on_step, loss=loss, after_lora=after_lora
    )
