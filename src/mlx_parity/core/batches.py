"""Batches for the core: mlx-lm's order (sort by length, chunk, shuffle chunks per epoch with
numpy's seeded permutation) with the core's own padding rule."""

from __future__ import annotations

from collections.abc import Iterator

import mlx.core as mx
import numpy as np

from ..knobs import BatchOrder, Knobs
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


def pad_rows(rows: list[list[int]], knobs: Knobs) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` padded by the knobs' rule, each trained on from its first token (offset 0)."""
    return pad_batch(rows, [0] * len(rows), knobs.max_seq_length, knobs.padding, knobs.pad_to)


def iterate_batches(
    rows: list[list[int]], knobs: Knobs, seed: int
) -> Iterator[tuple[mx.array, mx.array]]:
    """Endless (batch, lengths) pairs (:func:`pad_rows`). ``batch_order`` and ``val_draws_rng``
    are the sampling defects of ``mlx_parity/knobs.py``: a fresh permutation per step, draws with
    replacement, a validation pass that shuffles with the same generator before training starts."""
    batch_size = knobs.batch_size
    if len(rows) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} rows, have {len(rows)}")
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    starts = range(0, len(by_length) - batch_size + 1, batch_size)
    chunks = [by_length[i : i + batch_size] for i in starts]
    # RandomState(seed) draws the same permutations as np.random.seed(seed) + np.random.*,
    # which is what mlx-lm's loop uses, without touching numpy's global state.
    rng = np.random.RandomState(seed)
    if knobs.val_draws_rng:
        rng.permutation(len(chunks))
    while True:
        for chunk in _chunk_order(rng, len(chunks), knobs.batch_order):
            batch, lengths = pad_rows([rows[j] for j in chunks[chunk]], knobs)
            yield mx.array(batch), mx.array(lengths)


def _chunk_order(rng: np.random.RandomState, count: int, order: BatchOrder) -> Iterator[int]:
    """One epoch's chunk indices."""
    if order == "epoch":
        yield from rng.permutation(count)
    elif order == "reshuffle":
        for _ in range(count):
            yield rng.permutation(count)[0]
    else:
        yield from rng.randint(count, size=count)
