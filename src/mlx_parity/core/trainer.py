"""The core training loop: padding rule, shift loss and clip policy composed with LoRA, the
optimizer, compile and gradient accumulation.

With every knob at mlx-lm's value the step is built exactly as ``mlx_lm.tuner.trainer.train``
builds its step (same graph, same compiled state), which is what makes the per-step losses equal
mlx-lm's bit for bit; each knob then changes one piece and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map

from ..knobs import Knobs
from ..steps import StepCallback, StepLog, StepRecord, StopTraining, batch_fingerprint
from .batches import encode_rows, iterate_batches
from .clip import clip_gradients, global_norm
from .loss import shifted_loss
from .setup import attach_lora, build_optimizer


def make_step(model: nn.Module, optimizer: optim.Optimizer, knobs: Knobs, loss=shifted_loss):
    """The (optionally compiled) train step and the state it threads through compile. The step
    takes (batch, lengths, accumulated, do_update) and returns (loss, ntoks, accumulated,
    grad_norm); ``accumulated`` is the running gradient sum (and, for token-weighted
    accumulation, the token count) or None right after an update."""
    loss_value_and_grad = nn.value_and_grad(model, partial(loss, rule=knobs.loss_mask))
    clip = knobs.clip_policy
    accum_steps = updates_every(knobs)
    scale = knobs.grad_scale
    token_weighted = knobs.accum_norm == "token" and accum_steps > 1

    def step(batch, lengths, accumulated, do_update):
        (lvalue, toks), grad = loss_value_and_grad(model, batch, lengths)
        if token_weighted:  # accumulated is (gradient sum, token count)
            grad = tree_map(lambda g: g * toks.astype(g.dtype), grad)
            toks_total = toks if accumulated is None else toks + accumulated[1]
            accumulated = None if accumulated is None else accumulated[0]
        if accumulated is not None:
            grad = tree_map(lambda x, y: x + y, grad, accumulated)

        if not do_update:
            return lvalue, toks, (grad, toks_total) if token_weighted else grad, None

        if token_weighted:
            grad = tree_map(lambda g: g / toks_total.astype(g.dtype), grad)
        elif accum_steps > 1:
            grad = tree_map(lambda x: x / accum_steps, grad)
        if scale != 1.0:
            grad = tree_map(lambda g: (g * scale).astype(g.dtype), grad)
        norm = global_norm(grad)
        optimizer.update(model, clip_gradients(clip, grad))
        return lvalue, toks, None, norm

    state = [model.state, optimizer.state, mx.random.state]
    if knobs.compile:
        step = mx.compile(step, inputs=state, outputs=state)
    return step, state


def updates_every(knobs: Knobs) -> int:
    """Micro-steps per optimizer update: grad_accum, unless the trainer ignores it."""
    return knobs.grad_accum if knobs.accumulate else 1


def train(
    model: nn.Module,
    optimizer: optim.Optimizer,
    batches: Iterator[tuple[mx.array, mx.array]],
    knobs: Knobs,
    on_step: StepCallback | None = None,
    loss=shifted_loss,
) -> list[StepRecord]:
    """Train for ``knobs.steps`` micro-steps; return one record per step. A callback may raise
    :class:`StopTraining` to end early; the records so far are returned."""
    step, state = make_step(model, optimizer, knobs, loss)
    model.train()
    log = StepLog(on_step)
    accumulated = None
    every = updates_every(knobs)
    with contextlib.suppress(StopTraining):
        for it, (batch, lengths) in zip(range(1, knobs.steps + 1), batches, strict=False):
            do_update = it % every == 0
            lvalue, toks, accumulated, norm = step(batch, lengths, accumulated, do_update)
            mx.eval(state, lvalue, toks, accumulated, norm)
            log.add(
                StepRecord(
                    step=it,
                    loss=lvalue.item(),
                    grad_norm=None if norm is None else norm.item(),
                    ntoks=int(toks.item()),
                    input_shape=(int(batch.shape[0]), int(batch.shape[1])),
                    lr=_current_lr(optimizer),
                    batch=batch_fingerprint(batch, lengths),
                    updates=int(optimizer.step.item()),
                )
            )
    return log.records


def train_core(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    knobs: Knobs,
    seed: int,
    on_step: StepCallback | None = None,
    loss=shifted_loss,
    after_lora=None,
) -> list[StepRecord]:
    """The ``core`` trainer: LoRA, optimizer and batches set up by the knobs, then :func:`train`
    (``loss`` and ``after_lora`` exist for the variants of ``core/variants.py``)."""
    attach_lora(model, knobs, seed)
    if after_lora is not None:
        after_lora(model)
    batches = iterate_batches(encode_rows(tokenizer, texts), knobs, seed)
    return train(model, build_optimizer(knobs), batches, knobs, on_step, loss)


def _current_lr(optimizer: optim.Optimizer) -> float:
    # Before the first update a scheduled optimizer has no learning_rate in its state yet.
    lr = optimizer.state.get("learning_rate")
    return float("nan") if lr is None else float(lr.item())
