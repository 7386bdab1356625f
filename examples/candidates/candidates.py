"""Candidate trainers for the detection suite, written the way a user writes their own MLX loop.

One manual LoRA loop that spells mlx-lm's recipe out by hand (seed, freeze,
``linear_to_lora_layers``, TextDataset tokenization, mlx-lm's batch
order and padding, ``default_loss``, a compiled step with gradient accumulation, AdamW), built
from a :class:`Pieces` record. ``train_mlx_lm`` uses mlx-lm's piece everywhere; every other
candidate swaps exactly one piece for a defect a real trainer shipped or could ship. All but
one of the defects are points of mlx-parity's knob space (a cosine schedule is not), and one
candidate is correct but rounds differently (it sums the loss row by row): it must come out
equivalent, not wrong.

Each function is a plugin: a probe names it ``trainer = "plugin:candidates:train_<name>"``
with ``examples/candidates`` on ``sys.path``. Nothing here imports ``mlx_parity.core``: this is the
trainer under test, not the harness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map, tree_reduce
from mlx_lm.tuner.trainer import default_loss
from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers

from mlx_parity.protocol import TrainRequest

PAD_TO = 32

# --- the pieces -----------------------------------------------------------------------------


def mlx_lm_width(longest: int, max_seq_length: int) -> int:
    """mlx-lm's batch width: one plus the next multiple of 32, clamped to max_seq_length."""
    return min(1 + PAD_TO * ((longest + PAD_TO - 1) // PAD_TO), max_seq_length)


def multiple_width(longest: int, max_seq_length: int) -> int:
    """The next multiple of 32 without mlx-lm's +1 (the motivating trainer's rule)."""
    return min(PAD_TO * ((longest + PAD_TO - 1) // PAD_TO), max_seq_length)


def exclusive_loss(model: nn.Module, batch: mx.array, lengths: mx.array):
    """``default_loss`` with ``steps < length``: the one pad target mlx-lm trains is dropped."""
    inputs = batch[:, :-1]
    targets = batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps < lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


def row_by_row_loss(model: nn.Module, batch: mx.array, lengths: mx.array):
    """``default_loss`` summed per row, then over the rows: the same loss, rounded otherwise."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum(axis=1).sum() / ntoks, ntoks


class MeanAccumulation:
    """mlx-lm: sum the micro-step gradients, divide by the number of steps on update."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def add(self, grad: dict, toks: mx.array, running: Any) -> Any:
        return grad if running is None else tree_map(lambda x, y: x + y, grad, running)

    def average(self, running: Any) -> dict:
        return running if self.steps == 1 else tree_map(lambda x: x / self.steps, running)


class SummedAccumulation(MeanAccumulation):
    """The micro-step gradients summed and never divided: ``grad_accum`` times too large."""

    def average(self, running: Any) -> dict:
        return running


class HalvedAccumulation(MeanAccumulation):
    """The mean, then halved again (a division by 2·steps)."""

    def average(self, running: Any) -> dict:
        return tree_map(lambda g: g * 0.5, super().average(running))


class TokenAccumulation:
    """Weight each micro-step's gradient by its trained tokens, divide by the total on update."""

    def add(self, grad: dict, toks: mx.array, running: Any) -> Any:
        grad = tree_map(lambda g: g * toks.astype(g.dtype), grad)
        if running is None:
            return grad, toks
        return tree_map(lambda x, y: x + y, grad, running[0]), toks + running[1]

    def average(self, running: Any) -> dict:
        grad, total = running
        return tree_map(lambda g: g / total.astype(g.dtype), grad)


def token_accumulation(steps: int) -> MeanAccumulation | TokenAccumulation:
    # Without accumulation there is nothing to weigh: keep mlx-lm's plain gradient.
    return MeanAccumulation(steps) if steps == 1 else TokenAccumulation()


def no_transform(grad: dict) -> dict:
    return grad


def clip_elementwise(grad: dict) -> dict:
    """The legacy default: every gradient element clipped to [-1, 1] before the update."""
    return tree_map(lambda g: mx.clip(g, -1.0, 1.0), grad)


def clip_each_tensor(grad: dict) -> dict:
    """Every gradient tensor scaled down to an L2 norm of at most 1.0, separately."""

    def capped(g: mx.array) -> mx.array:
        norm = mx.sqrt(mx.square(g.astype(mx.float32)).sum())
        return (g * mx.minimum(1.0 / (norm + 1e-6), 1.0)).astype(g.dtype)

    return tree_map(capped, grad)


def adamw(settings, learning_rate) -> optim.Optimizer:
    return optim.AdamW(
        learning_rate=learning_rate,
        weight_decay=settings.weight_decay,
        bias_correction=settings.bias_correction,
    )


def adamw_mlx_defaults(settings, learning_rate) -> optim.Optimizer:
    """AdamW as MLX builds it when given only a learning rate."""
    return optim.AdamW(learning_rate=learning_rate)


def adamw_bias_correction_flipped(settings, learning_rate) -> optim.Optimizer:
    return optim.AdamW(
        learning_rate=learning_rate,
        weight_decay=settings.weight_decay,
        bias_correction=not settings.bias_correction,
    )


def warmup_schedule(settings):
    """mlx-lm's linear warmup to the learning rate, as its config builds it."""
    return build_schedule(
        {
            "name": "linear_schedule",
            "arguments": [settings.lr, settings.lr, 1],
            "warmup": settings.warmup_steps,
        }
    )


def scheduled_lr(settings):
    """The settings' schedule: a constant rate, or mlx-lm's linear warmup."""
    return settings.lr if settings.schedule == "constant" else warmup_schedule(settings)


def warmup_one_step_ahead(settings):
    """The settings' schedule read at step + 1: the first update already past warmup's start."""
    schedule = scheduled_lr(settings)
    return schedule if not callable(schedule) else lambda step: schedule(step + 1)


def cosine_lr(settings):
    return optim.cosine_decay(settings.lr, settings.steps)


def keep_dtype(model: nn.Module) -> None:
    pass


def cast_float16(model: nn.Module) -> None:
    model.set_dtype(mx.float16)


def no_seed(seed: int) -> None:
    pass


def seed_before_lora(seed: int) -> None:
    mx.random.seed(seed)


def seed_after_lora(seed: int) -> None:
    pass  # run() seeds after LoRA init when this is the piece


def given_lora_scale(settings) -> float:
    return settings.lora_scale


def alpha_over_rank(settings) -> float:
    return settings.lora_scale / settings.lora_rank


def configured_layers(settings) -> int:
    return settings.num_layers


def all_layers(settings) -> int:
    return -1


@dataclass(frozen=True)
class Pieces:
    """The swappable parts of the loop; the defaults are mlx-lm's."""

    pad_width: Callable[[int, int], int] = mlx_lm_width
    loss: Callable = default_loss
    accumulation: Callable[[int], Any] = MeanAccumulation
    grad_transform: Callable[[dict], dict] = no_transform  # between averaging and the update
    optimizer: Callable[[Any, Any], optim.Optimizer] = adamw
    learning_rate: Callable[[Any], Any] = scheduled_lr
    lora_layers: Callable[[Any], int] = configured_layers
    lora_scale: Callable[[Any], float] = given_lora_scale
    cast: Callable[[nn.Module], None] = keep_dtype
    seed_lora: Callable[[int], None] = seed_before_lora
    # How the chunks are drawn: "epoch" (mlx-lm), "reshuffle" or "replacement".
    order: str = "epoch"
    # A validation pass that shuffles with the training batches' generator first.
    validation_draw: bool = False
    # Whether grad_accum is honoured at all.
    accumulate: bool = True


MLX_LM = Pieces()

# --- the loop -------------------------------------------------------------------------------


def tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    """mlx-lm's TextDataset: the tokenizer's encoding, plus EOS when it is missing."""
    rows = []
    for text in texts:
        ids = tokenizer.encode(text)
        if ids[-1] != tokenizer.eos_token_id:
            ids.append(tokenizer.eos_token_id)
        rows.append(ids)
    return rows


def draw_chunks(rng: np.random.RandomState, count: int, order: str) -> list[int]:
    """One epoch of chunk indices."""
    if order == "reshuffle":
        return [rng.permutation(count)[0] for _ in range(count)]
    if order == "replacement":
        return list(rng.randint(count, size=count))
    return list(rng.permutation(count))


def iterate_batches(
    rows: list[list[int]],
    batch_size: int,
    max_seq_length: int,
    seed: int,
    width_of,
    order: str = "epoch",
    validation_draw: bool = False,
) -> Iterator[tuple[mx.array, mx.array]]:
    """mlx-lm's order: sort by length, chunk, a seeded permutation of the chunks per epoch."""
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    starts = range(0, len(by_length) - batch_size + 1, batch_size)
    chunks = [by_length[i : i + batch_size] for i in starts]
    rng = np.random.RandomState(seed)
    if validation_draw:
        rng.permutation(len(chunks))
    while True:
        for c in draw_chunks(rng, len(chunks), order):
            members = [rows[j] for j in chunks[c]]
            width = width_of(max(len(r) for r in members), max_seq_length)
            batch = np.zeros((len(members), width), np.int32)
            lengths = []
            for i, row in enumerate(members):
                kept = min(len(row), max_seq_length)
                batch[i, :kept] = row[:kept]
                lengths.append((0, kept))
            yield mx.array(batch), mx.array(lengths)


def l2_norm(grad: dict) -> mx.array:
    total = tree_reduce(
        lambda acc, g: acc + mx.square(g.astype(mx.float32)).sum(), grad, mx.array(0.0)
    )
    return mx.sqrt(total)


def run(request: TrainRequest, pieces: Pieces = MLX_LM) -> None:
    """Fine-tune ``request.model`` with LoRA, reporting every micro-step."""
    model, settings, seed = request.model, request.settings, request.seed

    pieces.cast(model)
    pieces.seed_lora(seed)  # LoRA init draws from MLX's RNG
    model.freeze()
    keys = list(settings.lora_keys) if settings.lora_keys is not None else None
    lora = {
        "rank": settings.lora_rank,
        "scale": pieces.lora_scale(settings),
        "dropout": settings.lora_dropout,
        "keys": keys,
    }
    linear_to_lora_layers(model, pieces.lora_layers(settings), lora)
    if pieces.seed_lora is seed_after_lora:
        mx.random.seed(seed)

    optimizer = pieces.optimizer(settings, pieces.learning_rate(settings))
    every = settings.grad_accum if pieces.accumulate else 1
    accumulation = pieces.accumulation(every)
    loss_and_grad = nn.value_and_grad(model, pieces.loss)
    state = [model.state, optimizer.state, mx.random.state]

    def step(batch, lengths, running, do_update):
        (lvalue, toks), grad = loss_and_grad(model, batch, lengths)
        running = accumulation.add(grad, toks, running)
        if not do_update:
            return lvalue, toks, running, None
        grad = accumulation.average(running)
        norm = l2_norm(grad)
        optimizer.update(model, pieces.grad_transform(grad))
        return lvalue, toks, None, norm

    step = mx.compile(step, inputs=state, outputs=state)

    rows = tokenize(request.tokenizer, request.texts)
    batches = iterate_batches(
        rows,
        settings.batch_size,
        settings.max_seq_length,
        seed,
        pieces.pad_width,
        pieces.order,
        pieces.validation_draw,
    )
    model.train()
    running = None
    for it, (batch, lengths) in zip(range(1, settings.steps + 1), batches, strict=False):
        do_update = it % every == 0
        lvalue, toks, running, norm = step(batch, lengths, running, do_update)
        mx.eval(state, lvalue, toks, running, norm)
        request.report_step(
            it,
            loss=lvalue.item(),
            ntoks=toks.item(),
            input_shape=batch.shape,
            grad_norm=None if norm is None else norm.item(),
            lr=optimizer.learning_rate.item(),
            batch=(batch, lengths),
            updates=optimizer.step.item(),
        )


def swap(**piece) -> Pieces:
    """mlx-lm's pieces with the named ones replaced."""
    return dataclasses.replace(MLX_LM, **piece)


# --- the candidates: each swaps exactly one piece -------------------------------------------


def train_mlx_lm(request: TrainRequest) -> None:
    """No defect: mlx-lm's recipe."""
    run(request, MLX_LM)


def train_pad_no_plus_one(request: TrainRequest) -> None:
    """Batches 32·⌈L/32⌉ wide (core: padding = "multiple")."""
    run(request, swap(pad_width=multiple_width))


def train_exclusive_mask(request: TrainRequest) -> None:
    """Trains only targets t < length (core: loss_mask = "exclusive")."""
    run(request, swap(loss=exclusive_loss))


def train_legacy_clip(request: TrainRequest) -> None:
    """Clips every gradient element at ±1.0 (core: clip = "value:1")."""
    run(request, swap(grad_transform=clip_elementwise))


def train_no_seed(request: TrainRequest) -> None:
    """LoRA init without reseeding (core: seed_after_load = false)."""
    run(request, swap(seed_lora=no_seed))


def train_token_accumulation(request: TrainRequest) -> None:
    """Accumulated gradients weighted by token count (core: accum_norm = "token")."""
    run(request, swap(accumulation=token_accumulation))


def train_bias_correction_flipped(request: TrainRequest) -> None:
    """AdamW with the opposite bias_correction (core: bias_correction flipped)."""
    run(request, swap(optimizer=adamw_bias_correction_flipped))


def train_float16(request: TrainRequest) -> None:
    """Base weights cast to float16 before LoRA (core: dtype = "float16")."""
    run(request, swap(cast=cast_float16))


def train_all_layers(request: TrainRequest) -> None:
    """LoRA on every layer (core: num_layers = -1)."""
    run(request, swap(lora_layers=all_layers))


def train_cosine_schedule(request: TrainRequest) -> None:
    """Cosine-decayed learning rate: a defect no knob describes."""
    run(request, swap(learning_rate=cosine_lr))


def train_reordered_loss(request: TrainRequest) -> None:
    """Correct, but sums the loss row by row: equivalent within float noise, not identical."""
    run(request, swap(loss=row_by_row_loss))


def train_summed_accumulation(request: TrainRequest) -> None:
    """Accumulated gradients summed, not averaged (core: grad_scale = grad_accum)."""
    run(request, swap(accumulation=SummedAccumulation))


def train_halved_gradients(request: TrainRequest) -> None:
    """Accumulated gradients divided twice over (core: grad_scale = 0.5)."""
    run(request, swap(accumulation=HalvedAccumulation))


def train_reshuffled(request: TrainRequest) -> None:
    """A fresh permutation drawn for every batch (core: batch_order = "reshuffle")."""
    run(request, swap(order="reshuffle"))


def train_with_replacement(request: TrainRequest) -> None:
    """Batches drawn with replacement (core: batch_order = "replacement")."""
    run(request, swap(order="replacement"))


def train_validation_first(request: TrainRequest) -> None:
    """A validation pass shuffles with the batch generator first (core: val_draws_rng)."""
    run(request, swap(validation_draw=True))


def train_ignores_accumulation(request: TrainRequest) -> None:
    """An update after every micro-step whatever grad_accum says (core: accumulate = false)."""
    run(request, swap(accumulate=False))


def train_leaf_norm_clip(request: TrainRequest) -> None:
    """Each gradient tensor capped at L2 norm 1.0 (core: clip = "leaf_norm:1")."""
    run(request, swap(grad_transform=clip_each_tensor))


def train_mlx_adamw_defaults(request: TrainRequest) -> None:
    """AdamW built with MLX's defaults (core: optimizer_defaults = "mlx")."""
    run(request, swap(optimizer=adamw_mlx_defaults))


def train_alpha_over_rank(request: TrainRequest) -> None:
    """LoRA scale read as alpha and divided by the rank (core: lora_scale_rule)."""
    run(request, swap(lora_scale=alpha_over_rank))


def train_seeded_after_lora(request: TrainRequest) -> None:
    """MLX's RNG seeded after LoRA init, not before (core: seed_after_load = false)."""
    run(request, swap(seed_lora=seed_after_lora))


def train_warmup_off_by_one(request: TrainRequest) -> None:
    """The warmup schedule one step ahead (core: warmup_offset = 1)."""
    run(request, swap(learning_rate=warmup_one_step_ahead))
