"""The padding rule: how wide a batch is, given its longest row.

mlx-lm pads to one plus the next multiple of ``pad_to``: after the autoregressive shift the
model then sees exactly a multiple of ``pad_to`` positions, and (under the inclusive mask) one
pad token is trained as a target. The ``multiple`` rule drops the +1, as the motivating trainer
did; both clamp to ``max_seq_length``, which can drop the +1 again at the boundary.
"""

from __future__ import annotations

import numpy as np

from ..knobs import PAD_TO, PaddingRule


def padded_width(
    longest: int, max_seq_length: int, rule: PaddingRule = "mlx-lm", pad_to: int = PAD_TO
) -> int:
    """Width of a batch whose longest row has ``longest`` tokens."""
    if longest < 1 or pad_to < 1:
        raise ValueError(f"need longest >= 1 and pad_to >= 1, got {longest}, {pad_to}")
    rounded = pad_to * ((longest + pad_to - 1) // pad_to)
    if rule == "mlx-lm":
        width = 1 + rounded
    elif rule == "multiple":
        width = rounded
    else:
        raise ValueError(f"unknown padding rule {rule!r}")
    return min(width, max_seq_length)


def pad_batch(
    rows: list[list[int]],
    offsets: list[int],
    max_seq_length: int,
    rule: PaddingRule = "mlx-lm",
    pad_to: int = PAD_TO,
) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``rows`` with zeros to the rule's width, truncating rows longer than
    ``max_seq_length``. Returns the int32 batch and its (offset, length) pairs."""
    width = padded_width(max(len(r) for r in rows), max_seq_length, rule, pad_to)
    batch = np.zeros((len(rows), width), np.int32)
    lengths = np.zeros((len(rows), 2), np.int32)
    for i, row in enumerate(rows):
        kept = min(len(row), max_seq_length)
        batch[i, :kept] = row[:kept]
        lengths[i] = (offsets[i], kept)
    return batch, lengths
