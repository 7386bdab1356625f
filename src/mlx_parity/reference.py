"""The reference trainer: mlx-lm's own training code, run the way the motivating probe 31 ran it.

``mlx_lm.load`` → ``mx.random.seed`` after load → ``linear_to_lora_layers`` → mlx-lm's
``TextDataset``/``CacheDataset`` → ``mlx_lm.tuner.trainer.train`` with ``default_loss`` and
``iterate_batches``. Nothing here re-types mlx-lm: per-step facts are observed from outside —
the loss through ``TrainingCallback`` with a report every step, the batch shapes by wrapping
``iterate_batches``, and the gradient norm by an optimizer subclass that reads the gradient it
is handed before applying the unchanged update.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.tuner import trainer as mlx_trainer
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.datasets import CacheDataset, TextDataset
from mlx_lm.tuner.utils import linear_to_lora_layers

from .core.clip import global_norm
from .core.setup import lora_config, optimizer_class, optimizer_kwargs
from .knobs import Knobs
from .steps import StepCallback, StepLog, StepRecord, StopTraining
from .trainers import BUILTIN_TRAINERS


def _norm_recording(optimizer_cls: type) -> type:
    class NormRecording(optimizer_cls):
        # The norm lands in the optimizer state, which mlx-lm threads through mx.compile,
        # so it comes out of the compiled step like any other state.
        def apply_gradients(self, gradients, parameters):
            self.state["grad_norm"] = global_norm(gradients)
            return super().apply_gradients(gradients, parameters)

    NormRecording.__name__ = f"NormRecording{optimizer_cls.__name__}"
    return NormRecording


class _Recorder(TrainingCallback):
    def __init__(self, optimizer, shapes: list, knobs: Knobs, on_step: StepCallback | None):
        self.optimizer = optimizer
        self.shapes = shapes
        self.knobs = knobs
        self.log = StepLog(on_step)
        self._tokens_so_far = 0

    def on_train_loss_report(self, info: dict) -> None:
        it = info["iteration"]
        ntoks = int(info["trained_tokens"]) - self._tokens_so_far
        self._tokens_so_far = int(info["trained_tokens"])
        updated = it % self.knobs.grad_accum == 0
        norm = self.optimizer.state.get("grad_norm") if updated else None
        self.log.add(
            StepRecord(
                step=it,
                loss=float(info["train_loss"]),
                grad_norm=None if norm is None else norm.item(),
                ntoks=ntoks,
                input_shape=self.shapes[it - 1],
                lr=float(info["learning_rate"]),
            )
        )


def train_reference(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    knobs: Knobs,
    seed: int,
    on_step: StepCallback | None = None,
) -> list[StepRecord]:
    """Fine-tune ``model`` (as loaded, dtype already applied) with mlx-lm's trainer."""
    BUILTIN_TRAINERS["reference"].check_knobs(knobs)

    np.random.seed(seed)  # mlx-lm's CLI seeds numpy for iterate_batches' shuffle
    if knobs.seed_after_load:
        mx.random.seed(seed)
    model.freeze()
    linear_to_lora_layers(model, knobs.num_layers, lora_config(knobs))

    optimizer = _norm_recording(optimizer_class(knobs))(**optimizer_kwargs(knobs))
    dataset = CacheDataset(TextDataset([{"text": t} for t in texts], tokenizer))
    shapes: list[tuple[int, int]] = []

    def recording_iterate_batches(**kwargs) -> Iterator:
        for batch, lengths in mlx_trainer.iterate_batches(**kwargs):
            shapes.append((int(batch.shape[0]), int(batch.shape[1])))
            yield batch, lengths

    recorder = _Recorder(optimizer, shapes, knobs, on_step)
    with tempfile.TemporaryDirectory(prefix="mlx-parity-ref-") as tmp:
        args = mlx_trainer.TrainingArgs(
            batch_size=knobs.batch_size,
            iters=knobs.steps,
            steps_per_report=1,
            steps_per_eval=10**9,
            steps_per_save=10**9,
            max_seq_length=knobs.max_seq_length,
            adapter_file=str(Path(tmp) / "adapters.safetensors"),
            grad_accumulation_steps=knobs.grad_accum,
        )
        # mlx-lm draws a rich progress UI on stdout; our own progress replaces it.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(StopTraining):
            mlx_trainer.train(
                model=model,
                optimizer=optimizer,
                train_dataset=dataset,
                args=args,
                loss=mlx_trainer.default_loss,
                iterate_batches=recording_iterate_batches,
                training_callback=recorder,
            )
    return recorder.log.records
