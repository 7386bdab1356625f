"""Small helpers for tests that train: run a trainer on fresh weights and return its trace."""

from __future__ import annotations

from mlx_parity.cell import ModelSource, prepare_model
from mlx_parity.core.trainer import StepRecord
from mlx_parity.knobs import Knobs
from mlx_parity.trainers import resolve_trainer


def run_trainer(
    source: ModelSource, trainer: str, knobs: Knobs, seed: int, texts: list[str]
) -> list[StepRecord]:
    model = prepare_model(source, knobs.dtype)
    return resolve_trainer(trainer)(model, source.tokenizer(), texts, knobs, seed, None)


def losses(records: list[StepRecord]) -> list[float]:
    return [r.loss for r in records]


def text_of_length(tokenizer, n_tokens: int) -> str:
    """A row whose training encoding (BOS + text + EOS) has exactly ``n_tokens`` tokens."""
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    text = ""
    i = 0
    while len(tokenizer.encode(text)) + 1 < n_tokens:
        text += ("" if not text else " ") + words[i % len(words)]
        i += 1
    # Trim characters until the count is exact (single characters are single tokens).
    while len(tokenizer.encode(text)) + 1 > n_tokens:
        text = text[:-1]
    while len(tokenizer.encode(text)) + 1 < n_tokens:
        text += "!"
    assert len(tokenizer.encode(text)) + 1 == n_tokens, text
    return text
