"""Adapters that probe published MLX trainers out of the box, through protocol v2
(:mod:`mlx_parity.protocol`): ``unsloth_zoo``, ``mlx_tune`` and ``mlx_lm_lora``, registered as
``plugin:unsloth-zoo``, ``plugin:mlx-tune`` and ``plugin:mlx-lm-lora``.

Each maps the probe's settings onto its trainer's own configuration and declares with
``request.cannot_honour`` what the trainer cannot take; with ``options = { defaults = true }``
it runs the trainer's own defaults instead, keeping only the round's steps, batch size, lr,
LoRA rank and max_seq_length (each module says which defaults apply). A module imports its
trainer when a probe loads it, so a missing package is a clear "cannot import" plugin error.
"""
