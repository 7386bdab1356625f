"""mlx-tune 0.6.0: ``mlx_tune.SFTTrainer`` on an ``MLXModelWrapper`` (a raw mlx-lm model is
silently mistrained: the trainer takes ``model.model``, the backbone, as the model).

Observed with ``request.mlx_lm()``: ``_train_native`` calls mlx-lm's ``train`` through its module
global ``mlx_train`` with its own AdamW, no callback and the default batches; wrapping that global
is the only hook (it adds the observer's callback, batch iterator and optimizer watch).
``logging_steps=1`` in both modes, so mlx-lm reports every step's own loss.

Faithful mode maps steps, batch size, lr, weight decay, a constant schedule, max_seq_length,
LoRA rank, scale (alpha = scale·r), dropout, keys and last-N layers, and turns validation off
(``val_batches=0``: it draws from numpy's RNG and reorders later epochs). It cannot honour
grad_accum > 1 (accepted, never passed on: every micro-step updates), bias correction (its AdamW
is built without), a seeded LoRA init (``random_state`` is stored, never used), a warmup schedule
(``warmup_steps`` is ignored), and what mlx-lm's loop fixes (clip, padding, mask, compile).

Defaults mode: its own config but for steps, batch size, lr, LoRA rank and max_seq_length:
LoRA alpha 16 on the 7 projections of every layer, a cosine decay over the run, weight decay
0.01, and validation at the first and last step (5 batches of a copy of the training set).
"""

from __future__ import annotations

import sys
import tempfile
from unittest import mock

import mlx_tune.sft_trainer as sft
from mlx_tune import FastLanguageModel, SFTConfig, SFTTrainer
from mlx_tune.model import MLXModelWrapper

from ..trainers import FIXED_BY_MLX_LM

FIXED = {k: (v, "mlx-lm's loop, which it runs, fixes it") for k, v in FIXED_BY_MLX_LM.items()}
FIXED |= {"grad_accum": (1, "accepted but never passed on: every micro-step updates")}
FIXED |= {"bias_correction": (False, "its AdamW is built without bias correction")}
FIXED |= {"seed_after_load": (False, "random_state is stored, never used: LoRA init is unseeded")}
FIXED |= {"schedule": ("constant", "warmup_steps is ignored")}


def train(request) -> None:
    s = request.settings
    model = MLXModelWrapper(request.model, request.tokenizer)  # not the bare model: see above
    lora = dict(r=s.lora_rank, random_state=request.seed)
    config = dict(per_device_train_batch_size=s.batch_size, learning_rate=s.lr, max_steps=s.steps)
    config |= dict(max_seq_length=s.max_seq_length, logging_steps=1, dataset_text_field="text")
    if not request.options.get("defaults"):
        for knob, (value, reason) in FIXED.items():
            if getattr(s, knob) != value:
                request.cannot_honour(knob, reason)
        keys = s.lora_keys and [k.rpartition(".")[2] for k in s.lora_keys]  # short names
        lora |= dict(lora_alpha=s.lora_scale * s.lora_rank, lora_dropout=s.lora_dropout)
        lora |= dict(target_modules=keys)
        config |= dict(weight_decay=s.weight_decay, lr_scheduler_type="constant", val_batches=0)
        config |= dict(num_layers=None if s.num_layers == -1 else s.num_layers)
    FastLanguageModel.get_peft_model(model, **lora)  # recorded; train() applies it
    watch = request.mlx_lm()
    mlx_train = sft.mlx_train

    def watched_train(*, optimizer, **kwargs):
        batches, opt = watch.iterate_batches(), watch.optimizer(optimizer)
        return mlx_train(optimizer=opt, iterate_batches=batches, training_callback=watch, **kwargs)

    def no_fallback():  # called in `except Exception:` around native training (StopTraining too)
        raise sys.exc_info()[1]  # instead of rerunning it all, unobserved, through mlx-lm's CLI

    with tempfile.TemporaryDirectory() as out, mock.patch.object(sft, "mlx_train", watched_train):
        rows = [{"text": t} for t in request.texts]
        trainer = SFTTrainer(model, rows, request.tokenizer, args=SFTConfig(out, **config))
        trainer._train_subprocess = no_fallback
        trainer.train()
