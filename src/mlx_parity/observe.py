"""Watching a training loop from outside: what every micro-step trained on, its loss, token
count and learning rate, and the gradient norm of every update — without editing the loop or
reading its stack frames. :class:`MlxLmObserver` covers loops built on mlx-lm's ``train`` (or
taking its arguments), :class:`LossObserver` any loop whose loss function can be wrapped; both
report to a :class:`~mlx_parity.steps.StepLog`, which orders the steps, hands each to the
harness and stops training on a non-finite loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import mlx.core as mx
from mlx_lm.tuner import trainer as mlx_trainer
from mlx_lm.tuner.callbacks import TrainingCallback

from .core.clip import global_norm
from .steps import StepLog, StepRecord, batch_fingerprint

# Where a watched optimizer keeps the norm of the gradient it was last handed: the optimizer's
# state goes through mx.compile as the loop's state, so the norm comes out of a compiled step.
GRAD_NORM_KEY = "mlx_parity_grad_norm"


def watch_optimizer(optimizer):
    """Make ``optimizer`` record the global norm of each gradient it applies (unchanged update)."""
    apply = optimizer.apply_gradients

    def apply_gradients(gradients, parameters):
        optimizer.state[GRAD_NORM_KEY] = global_norm(gradients)
        return apply(gradients, parameters)

    optimizer.apply_gradients = apply_gradients
    return optimizer


class MlxLmObserver(TrainingCallback):
    """Observes a loop shaped like ``mlx_lm.tuner.trainer.train`` run with
    ``steps_per_report=1``: :meth:`iterate_batches` is its batch iterator (batch shapes), this
    object its ``training_callback`` (loss, tokens, lr) and :meth:`optimizer` wraps its optimizer
    (gradient norm)."""

    def __init__(self, log: StepLog) -> None:
        self.log = log
        self.shapes: list[tuple[int, int]] = []
        self.batches: list[str] = []
        self._optimizer = None
        self._tokens_so_far = 0
        self._updates_so_far = 0

    def iterate_batches(self, source: Callable[..., Iterator] = mlx_trainer.iterate_batches):
        """``source`` recording the shape of every training batch (validation passes, which
        mlx-lm runs with ``loop=False``, are not training steps)."""

        @functools.wraps(source)
        def recording(*args: Any, **kwargs: Any) -> Iterator:
            for batch, lengths in source(*args, **kwargs):
                if kwargs.get("loop", kwargs.get("train", False)):
                    self.shapes.append((int(batch.shape[0]), int(batch.shape[1])))
                    self.batches.append(batch_fingerprint(batch, lengths))
                yield batch, lengths

        return recording

    def optimizer(self, optimizer):
        self._optimizer = watch_optimizer(optimizer)
        return optimizer

    def on_train_loss_report(self, info: dict) -> None:
        step = info["iteration"]
        tokens = int(info["trained_tokens"])
        # An update happened when the optimizer's own step count moved (a trainer may ignore
        # the accumulation it was given); without a watched optimizer, updates and gradient
        # norms are unknown rather than guessed.
        updates = None if self._optimizer is None else int(self._optimizer.step.item())
        updated = updates is not None and updates > self._updates_so_far
        if updated:
            self._updates_so_far = updates
        norm = self._optimizer.state.get(GRAD_NORM_KEY) if updated else None
        self.log.add(
            StepRecord(
                step=step,
                loss=float(info["train_loss"]),
                grad_norm=None if norm is None else norm.item(),
                ntoks=tokens - self._tokens_so_far,
                input_shape=self.shapes[step - 1],
                lr=float(info["learning_rate"]),
                batch=self.batches[step - 1],
                updates=updates,
            )
        )
        self._tokens_so_far = tokens


class LossObserver:
    """Observes a loop through its loss function, which must run eagerly (a compiled step runs
    Python only while tracing). Each call is a micro-step; :meth:`update` tells the observer an
    optimizer update happened, with its learning rate and gradient norm."""

    def __init__(self, log: StepLog) -> None:
        self.log = log
        self._pending: list[tuple[mx.array, mx.array, tuple[int, int], str]] = []
        self._updates = 0

    def wrap(self, loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """``loss_fn(model, batch, lengths, ...) -> (loss, ntoks, ...)``, recorded per call."""

        @functools.wraps(loss_fn)
        def recording(model, batch, lengths, *args: Any, **kwargs: Any):
            out = loss_fn(model, batch, lengths, *args, **kwargs)
            shape = (int(batch.shape[0]), int(batch.shape[1]))
            try:
                fingerprint = batch_fingerprint(batch, lengths)
            except ValueError as exc:  # MLX refuses to read an array while tracing a compile
                if "function transformations" not in str(exc):
                    raise
                from .protocol import PluginError

                raise PluginError(
                    "watch_loss: the wrapped loss ran inside mx.compile, where a step cannot be "
                    "recorded; call it from an eager step, or report steps with report_step"
                ) from None
            self._pending.append((out[0], out[1], shape, fingerprint))
            return out

        return recording

    def flush(self) -> None:
        """Report micro-steps left after the last update (a partial window, never applied)."""
        self._report(applied=False)

    def update(self, lr: float | None = None, grad_norm: float | None = None) -> None:
        """Report the micro-steps since the last update; the last of them carries the norm."""
        self._report(applied=True, lr=lr, grad_norm=grad_norm)

    def _report(
        self, applied: bool, lr: float | None = None, grad_norm: float | None = None
    ) -> None:
        pending, self._pending = self._pending, []
        before = self._updates
        self._updates += applied
        for index, (loss, ntoks, shape, batch) in enumerate(pending):
            last = applied and index == len(pending) - 1
            self.log.add(
                StepRecord(
                    step=len(self.log.records) + 1,
                    loss=loss.item(),
                    grad_norm=grad_norm if last else None,
                    ntoks=int(ntoks.item()),
                    input_shape=shape,
                    lr=float("nan") if lr is None else float(lr),
                    batch=batch,
                    updates=before + last,
                )
            )
