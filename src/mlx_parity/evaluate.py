"""What a trained model is judged by: teacher-forced losses and the greedy generation.

- ``post_train_loss``: mean next-token loss over the real tokens of the training rows.
- ``cf_loss``: mean loss of the completion's tokens given the prompt (the smoke gate).
- ``generation``: greedy decode from the prompt with mlx-lm's ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx_lm import generate

from .core.batches import encode_rows
from .fixture import Fixture


@dataclass(frozen=True)
class Evaluation:
    post_train_loss: float
    cf_loss: float
    generation: str
    passed: bool


def token_losses(model: nn.Module, ids: list[int]) -> mx.array:
    """Per-position next-token cross-entropy (float32) of one unpadded row."""
    row = mx.array(ids)[None]
    logits = model(row[:, :-1])
    return nn.losses.cross_entropy(logits, row[:, 1:]).astype(mx.float32)[0]


def evaluate(model: nn.Module, tokenizer, fixture: Fixture, max_new_tokens: int) -> Evaluation:
    model.eval()
    rows = encode_rows(tokenizer, list(dict.fromkeys(fixture.rows)))
    # One forward pass per distinct row; the completion's row is usually a training row (the
    # smoke fixture's only one), whose losses are then reused rather than computed again.
    by_row = {tuple(ids): token_losses(model, ids) for ids in rows if len(ids) > 1}
    post = mx.concatenate(list(by_row.values())).mean() if by_row else mx.array(float("nan"))
    # The completion starts where the prompt's and the full text's encodings part, so a tokenizer
    # that merges across the boundary still gives an honest completion span.
    prompt = list(tokenizer.encode(fixture.prompt))
    (full,) = encode_rows(tokenizer, [fixture.prompt + fixture.completion])
    start = 0
    while start < min(len(prompt), len(full)) and prompt[start] == full[start]:
        start += 1
    row_losses = by_row.get(tuple(full))
    if row_losses is None:
        row_losses = token_losses(model, full)
    cf = row_losses[max(start, 1) - 1 :].mean()
    mx.eval(post, cf)
    text = generate(model, tokenizer, prompt=prompt, max_tokens=max_new_tokens, verbose=False)
    return Evaluation(
        post_train_loss=post.item(),
        cf_loss=cf.item(),
        generation=text,
        passed=fixture.answer in text,
    )
