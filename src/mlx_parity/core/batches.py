"""Batches for the core: mlx-lm's order (sort by length, chunk, shuffle chunks per epoch with
numpy's seeded permutation) with the core's own padding rule."""

from __future__ import annotations

from collections.abc import Iterator

import mlx.core as mx
import numpy as np

from ..knobs import PaddingRule
from .padding import pad_batch


def encode_rows(tokenizer, texts: list[str]) -> list[list[int]]:
    """Tokenize like a plain-text dataset: the tokenizer's encoding plus EOS if missing."""
    rows = []
    for text in texts:
        ids = list(tokenizer.encode(text))
        if not ids or ids[-1] != tokenizer.eos_token_id:
            ids.append(tokenizer.eos_token_id)
        rows.append(ids)
    return rows


def iterate_batches(
    rows: list[list[int]],
    batch_size: int,
    max_seq_length: int,
    seed: int,
    rule: PaddingRule = "mlx-lm",
    pad_to: int = 32,
) -> Iterator[tuple[mx.array, mx.array]]:
    """Endless (batch, lengths) pairs. Offsets are 0: the whole row is trained on."""
    if len(rows) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} rows, have {len(rows)}")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    chunks = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    # RandomState(seed) draws the same permutations as np.random.seed(seed) + np.random.*,
    # which is what mlx-lm's loop uses, without touching numpy's global state.
    rng = np.random.RandomState(seed)
    while True:
        for chunk in rng.permutation(len(chunks)):
            members = [rows[j] for j in chunks[chunk]]
            batch, lengths = pad_batch(members, [0] * len(members), max_seq_length, rule, pad_to)
            yield mx.array(batch), mx.array(lengths)
