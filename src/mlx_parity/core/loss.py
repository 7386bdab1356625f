"""The shift loss: next-token cross-entropy over a padded batch, masked by a rule.

Shift first (inputs = batch[:, :-1], targets = batch[:, 1:]); target step t (1..T) predicts
token t. ``inclusive`` keeps offset <= t <= length, as mlx-lm's ``default_loss`` does, which
trains on one pad target whenever the batch is wider than the row; ``exclusive`` keeps
offset <= t < length, real tokens only. The mean is taken in float32.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ..knobs import MaskRule


def target_mask(lengths: mx.array, num_targets: int, rule: MaskRule = "inclusive") -> mx.array:
    """Boolean (batch, num_targets) mask of trained target steps; lengths are (offset, length)."""
    steps = mx.arange(1, num_targets + 1)
    if rule == "inclusive":
        upper = steps <= lengths[:, 1:]
    elif rule == "exclusive":
        upper = steps < lengths[:, 1:]
    else:
        raise ValueError(f"unknown loss mask rule {rule!r}")
    return mx.logical_and(steps >= lengths[:, 0:1], upper)


def shifted_loss(
    model: nn.Module,
    batch: mx.array,
    lengths: mx.array,
    rule: MaskRule = "inclusive",
    by_row: bool = False,
) -> tuple[mx.array, mx.array]:
    """Mean masked cross-entropy and the number of trained tokens; ``by_row`` sums each row
    first, another reduction order (the ``reordered`` variant of ``core/variants.py``)."""
    inputs = batch[:, :-1]
    targets = batch[:, 1:]
    logits = model(inputs)
    mask = target_mask(lengths, targets.shape[1], rule)
    ce = (nn.losses.cross_entropy(logits, targets) * mask).astype(mx.float32)
    ntoks = mask.sum()
    return (ce.sum(axis=1) if by_row else ce).sum() / ntoks, ntoks
