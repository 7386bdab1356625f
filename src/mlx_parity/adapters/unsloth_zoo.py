"""unsloth-zoo 2026.10.9: ``unsloth_zoo.mlx.trainer.MLXTrainer``, LoRA by ``FastMLXModel``.

Observed through the loss functions it builds from its module-level factories (``watch_loss``;
so the step runs eagerly, ``compile=False`` in both modes) and an HF-style ``on_log`` per update
(lr; grad norm with ``report_grad_norm=True``, numerically inert; ``add_step_callback`` would
swallow a non-finite loss's stop).

Faithful: steps (``max_steps`` counts updates; a trailing partial window is stopped), batch size,
grad_accum, lr, weight decay, schedule, max_seq_length, LoRA rank, scale (alpha = scale·r),
dropout, keys, last-N layers, the seed (``random_state`` seeds MLX before the LoRA init) and the
clip policy (unset, every gradient leaf is silently capped at L2 norm 1.0); plain cross-entropy,
no checkpointing. Cannot honour: the inclusive mask (the pad target is never trained), mean
accumulation, no bias correction, an unseeded init, other padding, windows across an epoch end.

Defaults: alpha 16 on the 7 projections of every layer, grad_accum 4, linear decay after 5
warmup updates (the first at lr 0), weight decay 0.001, the leaf clip at 1.0, CCE, checkpointing.
"""

from __future__ import annotations

import os
import tempfile
from unittest import mock

# The CPU workaround: off Apple silicon, unsloth-zoo takes MLX for absent and its import runs a
# CUDA init that needs the unsloth package; this skips that init (MLX mode skips it anyway).
os.environ.setdefault("UNSLOTH_ZOO_DISABLE_GPU_INIT", "1")
import unsloth_zoo.mlx.trainer as uzt  # noqa: E402
from unsloth_zoo.mlx.loader import FastMLXModel  # noqa: E402

FIXED = {"loss_mask": ("exclusive", "its loss never trains the pad target (steps < lengths)")}
FIXED |= {"bias_correction": (True, "its AdamW always corrects bias")}
FIXED |= {"seed_after_load": (True, "get_peft_model always seeds MLX with random_state")}
FIXED |= {"padding": ("mlx-lm", "it pads as mlx-lm does"), "pad_to": (32, "it pads as mlx-lm does")}
CLIP = {"none": "leaf_norm", "value": "value", "global_norm": "norm", "leaf_norm": "leaf_norm"}


def train(request) -> None:
    s, seed = request.settings, request.seed
    lora = dict(r=s.lora_rank, random_state=seed)
    config = dict(per_device_train_batch_size=s.batch_size, learning_rate=s.lr, seed=seed)
    config |= dict(max_seq_length=s.max_seq_length, compile=False, report_grad_norm=True)
    if not request.options.get("defaults"):
        token = ("token" if s.grad_accum > 1 else s.accum_norm, "it weighs gradients by tokens")
        for knob, (value, reason) in (FIXED | {"accum_norm": token}).items():
            if getattr(s, knob) != value:
                request.cannot_honour(knob, reason)
        if s.steps > (epoch := len(request.texts) // s.batch_size) and epoch % s.grad_accum:
            request.cannot_honour("grad_accum", "an epoch's last batch closes its window early")
        keys = s.lora_keys and [k.rpartition(".")[2] for k in s.lora_keys]  # short names
        last = None if s.num_layers == -1 else s.num_layers
        lora |= dict(lora_alpha=s.lora_scale * s.lora_rank, lora_dropout=s.lora_dropout)
        lora |= dict(target_modules=keys, finetune_last_n_layers=last)
        warmup = "constant" if s.schedule == "constant" else "constant_with_warmup"
        config |= dict(gradient_accumulation_steps=s.grad_accum, weight_decay=s.weight_decay)
        config |= dict(lr_scheduler_type=warmup, warmup_steps=s.warmup_steps, use_cce=False)
        config[f"max_grad_{CLIP[s.clip_policy.kind]}"] = s.clip_policy.limit or 0.0
        lora["use_gradient_checkpointing"] = config["gradient_checkpointing"] = False
    args = uzt.MLXTrainingConfig(**config)
    accum = args.gradient_accumulation_steps
    args.max_steps = -(-s.steps // accum)

    class Observer:  # an HF-style callback, whose exceptions the trainer re-raises
        tail = 0  # micro-steps into a trailing partial window (the harness reports them)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if "learning_rate" in (logs or {}):  # a training log: one per update
                request.update(logs["learning_rate"], logs.get("grad_norm"))

        def on_substep_end(self, args, state, control, **kwargs):
            self.tail += state.global_step == s.steps // accum
            control.should_training_stop = self.tail >= s.steps % accum > 0

    def watched(factory):
        return lambda *args, **kwargs: request.watch_loss(factory(*args, **kwargs))

    model = FastMLXModel.get_peft_model(request.model, **lora)
    factories = {n: watched(getattr(uzt, n)) for n in ("make_baseline_loss_fn", "make_cce_loss_fn")}
    with tempfile.TemporaryDirectory() as args.output_dir, mock.patch.multiple(uzt, **factories):
        rows = [{"text": t} for t in request.texts]
        trainer = uzt.MLXTrainer(model, request.tokenizer, rows, args=args)
        trainer.add_callback(Observer())
        trainer.train()
