"""The reference trainer: mlx-lm's own training code, called the way mlx-lm's LoRA recipe calls it.

``mlx_lm.load`` → ``mx.random.seed`` after load → ``linear_to_lora_layers`` → mlx-lm's
``TextDataset``/``CacheDataset`` → ``mlx_lm.tuner.trainer.train`` with ``default_loss`` and
``iterate_batches``. Nothing here re-types mlx-lm: per-step facts are observed from outside by
``observe.MlxLmObserver`` (the same observer plugins of mlx-lm-shaped trainers use).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.tuner import trainer as mlx_trainer
from mlx_lm.tuner.datasets import CacheDataset, TextDataset
from mlx_lm.tuner.utils import linear_to_lora_layers

from .core.setup import build_optimizer, lora_config
from .knobs import Knobs
from .observe import MlxLmObserver
from .steps import StepCallback, StepLog, StepRecord, StopTraining
from .trainers import BUILTIN_TRAINERS


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

    log = StepLog(on_step)
    observer = MlxLmObserver(log)
    optimizer = observer.optimizer(build_optimizer(knobs))
    dataset = CacheDataset(TextDataset([{"text": t} for t in texts], tokenizer))
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
                iterate_batches=observer.iterate_batches(),
                training_callback=observer,
            )
    return log.records
