"""Small helpers shared by the tests (test modules import this, never each other)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlx_parity.knobs import Knobs
from mlx_parity.matrix import ResolvedProbe
from mlx_parity.probes import Probe
from mlx_parity.steps import StepRecord
from mlx_parity.trainers import lookup

if TYPE_CHECKING:
    from mlx_parity.cell import ModelSource

# The detection suite's candidate trainers (``plugin:candidates:<function>``) and their table.
PLUGINS = Path(__file__).resolve().parents[1] / "examples" / "candidates"


def use_plugins() -> None:
    """Make ``examples/candidates`` importable, so ``plugin:candidates:...`` loads."""
    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))


def probe_of(probe_id: str, trainer: str, knobs: Knobs) -> ResolvedProbe:
    """An ad-hoc probe, resolved as a round would resolve it."""
    return ResolvedProbe(Probe(id=probe_id, trainer=trainer), lookup(trainer), knobs, "any")


def run_trainer(
    source: ModelSource, trainer: str, knobs: Knobs, seed: int, texts: list[str]
) -> list[StepRecord]:
    """A trainer on fresh weights (cast to ``knobs.dtype``); its trace."""
    from mlx_parity.cell import prepare_model  # MLX: only the tests that train pay for it

    model = prepare_model(source, knobs.dtype)
    return lookup(trainer).load()(model, source.tokenizer(), texts, knobs, seed, None)


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
