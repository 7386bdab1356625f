"""The padding rule against the batches mlx-lm itself produces, value for value."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from mlx_lm.tuner.trainer import iterate_batches as mlx_iterate_batches

from mlx_parity.core.padding import pad_batch, padded_width

NO_CLAMP = 10**6


def mlx_lm_width(length: int, max_seq_length: int) -> int:
    dataset = [(list(range(1, length + 1)), 0)]
    # mlx-lm prints a truncation warning when a row exceeds max_seq_length.
    with contextlib.redirect_stdout(io.StringIO()):
        batch, _ = next(mlx_iterate_batches(dataset, 1, max_seq_length))
    return batch.shape[1]


@pytest.mark.parametrize("max_seq_length", [NO_CLAMP, 2048, 64, 100, 33, 32])
def test_padded_width_matches_mlx_lm_for_every_length(max_seq_length: int) -> None:
    mismatches = [
        (length, padded_width(length, max_seq_length), mlx_lm_width(length, max_seq_length))
        for length in range(1, 301)
        if padded_width(length, max_seq_length) != mlx_lm_width(length, max_seq_length)
    ]
    assert mismatches == []


def test_multiple_rule_drops_the_plus_one_except_at_the_clamp() -> None:
    assert padded_width(14, 64, "multiple") == 32
    assert padded_width(14, 64, "mlx-lm") == 33
    assert padded_width(33, 2048, "multiple") == 64
    assert padded_width(33, 2048, "mlx-lm") == 65
    # At max_seq_length both rules clamp to the same width.
    assert padded_width(63, 64, "mlx-lm") == padded_width(63, 64, "multiple") == 64


def test_pad_to_is_settable() -> None:
    assert padded_width(14, 2048, "mlx-lm", pad_to=8) == 17
    assert padded_width(14, 2048, "multiple", pad_to=8) == 16


def test_pad_batch_truncates_and_records_lengths() -> None:
    batch, lengths = pad_batch([[5, 6, 7], [8] * 70], [0, 0], 64)
    assert batch.shape == (2, 64)
    assert batch.dtype == np.int32
    assert batch[0, :4].tolist() == [5, 6, 7, 0]
    assert lengths.tolist() == [[0, 3], [0, 64]]


@pytest.mark.parametrize("bad", [0, -3])
def test_padded_width_refuses_empty_rows(bad: int) -> None:
    with pytest.raises(ValueError):
        padded_width(bad, 64)
