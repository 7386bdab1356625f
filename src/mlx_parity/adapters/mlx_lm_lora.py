"""mlx-lm-lora 5.10.2: ``mlx_lm_lora.trainer.sft_trainer.train_sft`` on a model given LoRA the
way its ``utils.from_pretrained`` gives it (freeze, then mlx-lm's ``linear_to_lora_layers``), then
``mx.random.seed(seed)`` as its CLI does, after the LoRA init.

Observed with ``request.mlx_lm()`` through its public arguments: ``training_callback``,
``iterate_batches`` (its own, wrapped) and the optimizer, which the caller builds.

Faithful mode maps steps, batch size, grad_accum (mean), lr, the optimizer (Adam/AdamW, weight
decay, bias correction, schedule: built here, as its caller does), max_seq_length and the LoRA
rank, scale, dropout, keys and last-N layers; no validation set. It cannot honour a seeded LoRA
init (neither its library path nor its CLI seeds MLX before it) and what its copy of mlx-lm's
loop fixes (clip, padding, mask, compile). Not a knob, so only visible in the trace: each step
draws its batch from a fresh permutation (with replacement, no epochs).

Defaults mode: its CLI's defaults but for steps, batch size, lr, LoRA rank and max_seq_length:
LoRA scale 10 on every linear layer of every block, Adam without bias correction, a constant
lr, no accumulation; no validation set (the CLI validates only on a data/valid.jsonl).
"""

from __future__ import annotations

import tempfile
from unittest import mock

import mlx.core as mx
import mlx.optimizers as optim
from mlx_lm.tuner.utils import linear_to_lora_layers
from mlx_lm_lora.trainer import sft_trainer as sft
from mlx_lm_lora.trainer.datasets import CacheDataset, TextDataset

from ..core.setup import build_optimizer, lora_config
from ..trainers import FIXED_BY_MLX_LM


def train(request) -> None:
    s = request.settings
    if request.options.get("defaults"):
        lora, layers, accum = dict(rank=s.lora_rank, scale=10.0, dropout=0.0), -1, 1
        optimizer = optim.Adam(learning_rate=s.lr)
    else:
        lora, layers, accum = lora_config(s), s.num_layers, s.grad_accum
        optimizer = build_optimizer(s)
        for knob, value in FIXED_BY_MLX_LM.items():
            if getattr(s, knob) != value:
                request.cannot_honour(knob, f"its copy of mlx-lm's loop fixes {knob}={value}")
        if s.seed_after_load:
            request.cannot_honour("seed_after_load", "MLX is seeded only after the LoRA init")
    request.model.freeze()
    linear_to_lora_layers(request.model, layers, lora)
    mx.random.seed(request.seed)
    watch = request.mlx_lm()
    dataset = CacheDataset(TextDataset([{"text": t} for t in request.texts], request.tokenizer))
    config = dict(batch_size=s.batch_size, iters=s.steps, gradient_accumulation_steps=accum)
    config |= dict(steps_per_report=1, steps_per_save=s.steps + 1, max_seq_length=s.max_seq_length)
    # On CPU: train_sft sets the wired limit to device_info()["max_recommended_working_set_size"],
    # a key only Metal reports; 0 (no wired limit) is what CPU has anyway.
    info = {"max_recommended_working_set_size": 0, **mx.device_info()}
    with tempfile.TemporaryDirectory() as out, mock.patch.object(mx, "device_info", lambda: info):
        args = sft.SFTTrainingArgs(**config, adapter_file=f"{out}/adapters.safetensors")
        batches = watch.iterate_batches(sft.iterate_batches)
        optimizer = watch.optimizer(optimizer)
        sft.train_sft(
            request.model,
            optimizer,
            dataset,
            args=args,
            iterate_batches=batches,
            training_callback=watch,
        )
